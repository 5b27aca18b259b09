"""RecurrentForecaster and SequenceLabeler: shapes, serialization, masking, bad input."""
import keras
import numpy as np
import pytest

from bwkeras.models import CELLS, RecurrentForecaster, SequenceLabeler
from bwkeras.timeseries import pad_sequences, regime_switching, step_mask

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("cell", CELLS)
def test_forecaster_shapes_and_round_trip(tmp_path, cell):
    keras.utils.set_random_seed(0)
    model = RecurrentForecaster(cell=cell, units=6, layers=2, horizon=3, dropout=0.1)
    x = RNG.normal(size=(10, 8)).astype(np.float32)
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, RNG.normal(size=(10, 3)), epochs=1, verbose=0)
    out = model.predict(x, verbose=0)
    assert out.shape == (10, 3)
    # (batch, time) is the univariate case of (batch, time, 1): the same arithmetic up
    # to float32 rounding in a differently traced graph.
    np.testing.assert_allclose(model.predict(x[..., None], verbose=0), out, rtol=0, atol=1e-6)
    recurrent = [layer for layer in model.layers if isinstance(layer, keras.layers.RNN)]
    assert len(recurrent) == 2
    assert [type(layer) for layer in recurrent] == [
        {"simple": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[cell]] * 2
    path = tmp_path / "forecaster.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, RecurrentForecaster)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), out)


@pytest.mark.parametrize("model", [
    lambda: RecurrentForecaster(cell="gru", units=4),
    lambda: SequenceLabeler(cell="gru", units=4, n_classes=3),
])
def test_wrong_input_rank(model):
    m = model()
    name = type(m).__name__
    for shape in [(5,), (2, 3, 4, 1)]:
        with pytest.raises(ValueError, match=fr"{name} expects input of rank 3 \(batch, time, features\)"
                                             fr".*got rank {len(shape)}"):
            m(np.zeros(shape, dtype=np.float32))


@pytest.mark.parametrize("cls, kwargs, match", [
    (RecurrentForecaster, {"cell": "transformer"}, r"unknown cell 'transformer'; expected one of \('simple', 'lstm', 'gru'\)"),
    (RecurrentForecaster, {"units": 0}, r"units must be an integer >= 1, got 0"),
    (RecurrentForecaster, {"horizon": -1}, r"horizon must be an integer >= 1, got -1"),
    (RecurrentForecaster, {"dropout": 1.0}, r"dropout must be a number in \[0.0, 1.0\), got 1.0"),
    (SequenceLabeler, {"cell": "LSTM"}, r"unknown cell 'LSTM'"),
    (SequenceLabeler, {"n_classes": 1}, r"n_classes must be an integer >= 2, got 1"),
    (SequenceLabeler, {"mask_value": float("nan")}, r"mask_value must be a real number, not NaN"),
])
def test_bad_arguments(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_labels_outside_the_classes_are_rejected():
    model = SequenceLabeler(cell="gru", units=4, n_classes=3)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.ones((2, 4, 1), dtype=np.float32)
    for bad, shown in ((3, "3"), (-1, "-1")):
        y = np.zeros((2, 4), dtype=np.int64)
        y[1, 2] = bad
        with pytest.raises(ValueError, match=fr"labels must be integers in \[0, n_classes\) = \[0, 3\), got {shown}"):
            model.fit(x, y, epochs=1, verbose=0)
        with pytest.raises(ValueError, match=r"= \[0, 3\)"):
            model.evaluate(x, y, verbose=0)
    with pytest.raises(ValueError, match=r"got 0.5"):
        model.fit(x, np.full((2, 4), 0.5), epochs=1, verbose=0)


def _labeling_task(n, seed, maxlen=None):
    seqs, labels = regime_switching(n, min_length=15, max_length=50, stay=0.93, noise=0.5, seed=seed)
    return pad_sequences(seqs, labels=labels, value=0.0, label_value=0, maxlen=maxlen)


@pytest.fixture(scope="module")
def trained_labeler():
    # Regime means -1 / +1 under noise sd 0.5: thresholding each step alone is right only
    # ~97.7% of the time; the recurrent state adds the context of neighbouring steps.
    x, y, lengths = _labeling_task(400, seed=10)
    keras.utils.set_random_seed(10)
    model = SequenceLabeler(cell="lstm", units=16, n_classes=2, bidirectional=True)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    return model


def test_labeler_per_step_accuracy_and_masked_metrics(trained_labeler):
    model = trained_labeler
    x, y, lengths = _labeling_task(150, seed=11)
    valid = step_mask(lengths, x.shape[1])
    probs = model.predict(x, verbose=0)
    assert probs.shape == (*y.shape, 2)
    predicted = probs.argmax(axis=-1)
    accuracy = float(np.mean(predicted[valid] == y[valid]))
    print(f"sequence labeler: per-step test accuracy {accuracy:.4f} on {int(valid.sum())} real steps")
    assert accuracy >= 0.95, accuracy

    # Make every padded step's label wrong: if Keras counted padded steps, its accuracy
    # would fall far below the accuracy on real steps (about 1/3 of all steps are padding).
    adversarial = y.copy()
    adversarial[~valid] = 1 - predicted[~valid]
    assert np.mean(predicted == adversarial) < accuracy - 0.2
    # One batch: Keras' loss is a mean of per-batch (masked) means, exact only for one.
    result = model.evaluate(x, adversarial, batch_size=len(x), verbose=0, return_dict=True)
    # Keras accumulates counts in float32: exact for integers, 1 ulp on the ratio.
    assert result["accuracy"] == pytest.approx(accuracy, abs=1e-6)
    nll = -np.log(np.take_along_axis(probs, adversarial[..., None], axis=-1)[..., 0])
    # float32 log-probabilities summed over ~6000 steps: relative error ~1e-6.
    assert result["loss"] == pytest.approx(float(nll[valid].mean()), rel=1e-4)
    assert result["loss"] < 0.5 * float(nll.mean())


def test_padding_does_not_change_real_steps(trained_labeler, tmp_path):
    x, y, lengths = _labeling_task(20, seed=12)
    x_long, _, _ = _labeling_task(20, seed=12, maxlen=x.shape[1] + 25)
    short = trained_labeler.predict(x, verbose=0)
    long = trained_labeler.predict(x_long, verbose=0)
    valid = step_mask(lengths, x.shape[1])
    # Same float32 arithmetic on the real steps; the backward direction starts from the
    # last real step whatever the padding. 1e-6 allows a different kernel blocking.
    np.testing.assert_allclose(long[:, : x.shape[1]][valid], short[valid], atol=1e-6)

    path = tmp_path / "labeler.keras"
    trained_labeler.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, SequenceLabeler) and loaded.get_config() == trained_labeler.get_config()
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), short)


@pytest.mark.parametrize("cell", ["simple", "gru"])
def test_padded_labels_never_reach_training(cell):
    """Two fits that differ only in the labels of padded steps end with the same weights."""
    x, y, lengths = _labeling_task(64, seed=13)
    other = y.copy()
    other[~step_mask(lengths, x.shape[1])] = 1
    weights = []
    for labels in (y, other):
        keras.utils.set_random_seed(13)
        model = SequenceLabeler(cell=cell, units=4, n_classes=2)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01),
                      loss="sparse_categorical_crossentropy")
        model.fit(x, labels, epochs=2, batch_size=16, shuffle=False, verbose=0)
        weights.append([np.asarray(w) for w in model.weights])
    # Identical inputs and seeds: any padded-step gradient would move the weights by
    # ~lr = 1e-2; float32 reductions in another order stay below 1e-6.
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, atol=1e-6)
