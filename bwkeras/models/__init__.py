"""Neural-network models, each a registered, serializable ``keras.Model`` subclass.

- `MLP`: the tutorial's multilayer perceptron Z = sigma(alpha_0 + alpha X),
  T = beta_0 + beta Z, f(X) = g(T), with any number of hidden layers.
- `RecurrentForecaster`: SimpleRNN / LSTM / GRU over a window of past values, predicting
  the next `horizon` values (many-to-one).
- `SequenceLabeler`: one class label per time step of variable-length, padded sequences,
  with masking so padded steps neither train nor count in metrics.

All train with plain ``compile`` / ``fit`` in one process or under a launcher with
``bwkeras.distributed``, and survive ``model.save("m.keras")`` / ``keras.models.load_model``.
"""
from .._lazy import lazy_attributes

# Loaded on first use (they import TensorFlow), so importing the package costs nothing.
__getattr__, __dir__, __all__ = lazy_attributes(__name__, {
    "MLP": ".mlp",
    "OUTPUTS": ".mlp",
    "RecurrentForecaster": ".recurrent",
    "SequenceLabeler": ".recurrent",
    "CELLS": ".recurrent",
})
