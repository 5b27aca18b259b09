"""Model parallelism on TensorFlow / Keras 3 over Horovod: tensor-parallel layers whose
weights are split over the k ranks of a model group, and whole-model files of them.

- `ColumnParallelDense`, `RowParallelDense`: Megatron's two halves of a Dense pair;
  `dense_stack` builds the pairs for `bwkeras.models.MLP(model_parallel=k)`.
- `ShardedLSTM`, `ShardedGRU`, `ShardedSimpleRNN`: hidden units split over the group,
  one all-gather of the hidden state per time step.
- `ShardedModel`: ``save`` / ``save_weights`` / ``load_weights`` of the whole model.

The layout (which ranks form a model group, which a data group) and the differentiable
collectives live in `bwkeras.distributed.model_parallel`, the only place that talks to
Horovod. Importing this package registers its layers with Keras.
"""
from .layers import ColumnParallelDense, RowParallelDense, ShardedLayer, dense_stack
from .recurrent import (SHARDED_RNN, ShardedGRU, ShardedGRUCell, ShardedLSTM, ShardedLSTMCell,
                        ShardedSimpleRNN, ShardedSimpleRNNCell)
from .saving import ShardedModel, full_weights, set_full_weights, weight_specs

__all__ = ["ColumnParallelDense", "RowParallelDense", "ShardedLayer", "dense_stack",
           "SHARDED_RNN", "ShardedLSTM", "ShardedGRU", "ShardedSimpleRNN", "ShardedLSTMCell",
           "ShardedGRUCell", "ShardedSimpleRNNCell", "ShardedModel", "full_weights", "set_full_weights", "weight_specs"]
