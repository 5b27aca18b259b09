"""One-step-ahead forecast comparison: persistence, AR(p) and recurrent networks."""
import numpy as np
import pandas as pd

from .._checks import as_series, integer
from .ar import AutoRegression
from .windows import supervised_split


def rmse(pred, truth):
    """Root mean squared error of `pred` against `truth` (same shape)."""
    return float(np.sqrt(np.mean((np.asarray(pred) - np.asarray(truth)) ** 2)))


def one_step_baselines(series, data):
    """Persistence and AR(p) one-step forecasts of the test windows of `data` (the
    `supervised_split` of `series`), in the series' own units: {"persistence": ...,
    "AR(p)": ...}. AR(p), p the window length, with a constant, is solved exactly on the
    training observations and called directly, in float64."""
    lags = data.x_test.shape[1]
    x_test = data.scaler.inverse_transform(data.x_test)
    ar = AutoRegression(lags=lags, trend="c")
    ar.solve(as_series(series)[: data.train_end])
    return {"persistence": x_test[:, -1], f"AR({lags})": np.asarray(ar(x_test))[:, 0]}


def one_step_scores(predictions, truth):
    """{model: forecasts} scored against `truth`: a DataFrame indexed by model with columns
    rmse, ratio (rmse / the persistence rmse) and improvement (1 - ratio)."""
    table = pd.DataFrame({"rmse": pd.Series({name: rmse(p, truth)
                                             for name, p in predictions.items()})})
    table.index.name = "model"
    table["ratio"] = table["rmse"] / table.loc["persistence", "rmse"]
    table["improvement"] = 1.0 - table["ratio"]
    return table


def one_step_comparison(series, lags=9, cells=("simple", "lstm", "gru"), units=32, epochs=200,
                        batch_size=32, learning_rate=0.005, validation=0.15, test=0.15,
                        patience=25, seed=0, verbose=0):
    """One-step test RMSE of persistence, AR(lags) and a `RecurrentForecaster` per cell.

    All models see the same chronological split of the windows of `series` and are scored
    on the same test targets, in the series' own units:
    - persistence predicts X_t = X_{t-1};
    - AR(lags) with a constant is solved exactly on the training observations;
    - each recurrent model (one layer of `units`) trains on standardised windows (scaler
      fitted on the training part), with Adam, early stopping on the validation loss
      (best weights kept) and Keras' global seed set to `seed` before each model.

    Returns a DataFrame indexed by model ("persistence", "AR(p)", then the cells) with
    columns rmse, ratio (rmse / persistence rmse) and improvement (1 - ratio);
    ``.attrs`` records the split sizes and the first and last test target labels.
    """
    import keras

    from ..models import RecurrentForecaster

    lags = integer("lags", lags, minimum=1)
    integer("epochs", epochs, minimum=1)
    as_series(series)
    data = supervised_split(series, lags, horizon=1, validation=validation, test=test,
                            scale="standard")
    if len(data.x_test) == 0:
        raise ValueError(f"test={test!r} leaves no test windows to score; expected a fraction > 0 or a count >= 1")
    inverse = data.scaler.inverse_transform
    truth = inverse(data.y_test)[:, 0]
    predictions = one_step_baselines(series, data)

    has_val = len(data.x_val) > 0
    for cell in cells:
        keras.utils.set_random_seed(seed)
        model = RecurrentForecaster(cell=cell, units=units)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="mse")
        callbacks = [keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=patience, restore_best_weights=True)] if has_val else []
        model.fit(
            data.x_train, data.y_train, epochs=epochs, batch_size=batch_size, shuffle=True,
            validation_data=(data.x_val, data.y_val) if has_val else None,
            callbacks=callbacks, verbose=verbose,
        )
        predictions[cell] = inverse(model.predict(data.x_test, verbose=0))[:, 0]

    table = one_step_scores(predictions, truth)
    first, last = (np.asarray(data.index_test)[[0, -1]].tolist() if len(data.index_test)
                   else (None, None))
    table.attrs.update({"n_train": len(data.x_train), "n_val": len(data.x_val),
                        "n_test": len(data.x_test), "test_first": first, "test_last": last})
    return table
