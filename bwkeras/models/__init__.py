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
from .mlp import MLP, OUTPUTS
from .recurrent import CELLS, RecurrentForecaster, SequenceLabeler

__all__ = ["MLP", "OUTPUTS", "RecurrentForecaster", "SequenceLabeler", "CELLS"]
