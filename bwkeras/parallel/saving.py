"""Whole-model files of a sharded model: `ShardedModel`, a mixin for ``keras.Model``
subclasses that take ``model_parallel=k``.

A sharded model saves what the same model in one process would save: its twin, built with
``model_parallel=1`` and given the gathered full weights, writes an ordinary ``.keras``
(or ``.weights.h5``) file that ``keras.models.load_model`` opens in a lone process.
Every rank calls `save` (the gathers are collectives of each model group); the chief alone
writes. `load_weights` goes the other way: every rank reads the whole-model file (so it
must be on a file system every rank sees) and keeps its own shard.
"""
import numpy as np

from ..distributed import model_parallel as mp
from ..distributed import runtime
from .layers import ShardedLayer


def weight_specs(model):
    """For each of `model.weights`, None (replicated) or the (axis, blocks, k, shard) of
    its shard, from the model's `ShardedLayer`s."""
    specs = {}
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, ShardedLayer):
            for w, spec in zip(layer.weights, layer.shard_specs()):
                if spec is not None:
                    specs[id(w)] = spec + (layer.model_parallel, layer.shard)
    return [specs.get(id(w)) for w in model.weights]


def full_weights(model):
    """The whole model's weights as numpy arrays, in `model.weights` order: a collective
    over each model group (call on every rank of it)."""
    out = []
    for i, (w, spec) in enumerate(zip(model.weights, weight_specs(model))):
        value = np.asarray(w.numpy() if hasattr(w, "numpy") else w)
        if spec is not None:
            axis, blocks, k, _ = spec
            value = mp.gather_shards(value, axis, k, blocks, name=f"bwkeras.full_weights.{i}")
        out.append(value)
    return out


def set_full_weights(model, weights):
    """Give every weight of `model` its shard of the whole model's `weights` (numpy
    arrays in `model.weights` order, as the same model in one process lists them)."""
    variables = model.weights
    if len(weights) != len(variables):
        raise ValueError(f"{type(model).__name__} holds {len(variables)} weights, got "
                         f"{len(weights)} full weights")
    for w, full, spec in zip(variables, weights, weight_specs(model)):
        part = np.asarray(full)
        if spec is not None:
            axis, blocks, k, shard = spec
            part = mp.split_shard(part, axis, k, shard, blocks)
        if tuple(part.shape) != tuple(w.shape):
            raise ValueError(f"weight {w.path} of {type(model).__name__} has shape "
                             f"{tuple(w.shape)} on this rank; the full weights give "
                             f"{tuple(part.shape)}: not the same model")
        w.assign(part)


class ShardedModel:
    """Mixin, first among the bases of a ``keras.Model`` subclass whose constructor takes
    ``model_parallel`` (stored as ``self.model_parallel``) and builds its layers from
    its config alone. With model_parallel == 1 every method is Keras' own."""

    def _sharded(self):
        return getattr(self, "model_parallel", 1) > 1

    def plain_twin(self):
        """The same model for one process (model_parallel=1), built, with no weights set."""
        config = {**self.get_config(), "model_parallel": 1}
        twin = type(self).from_config(config)
        shapes = getattr(self, "_build_shapes_dict", None) or {}
        if len(shapes) != 1:
            raise ValueError(f"{type(self).__name__} must be built (called once) before its "
                             "whole-model weights exist")
        (shape,) = shapes.values()
        twin(np.zeros([1 if n is None else int(n) for n in shape], dtype=twin.compute_dtype))
        return twin

    def full_weights(self):
        """`full_weights` of this model (a collective over its model group)."""
        return full_weights(self)

    def set_full_weights(self, weights):
        """`set_full_weights` of this model: each rank keeps its shard of `weights`."""
        set_full_weights(self, weights)

    def count_full_params(self):
        """The number of parameters of the whole model (of the same model in one process):
        this rank's, with each sharded weight counted once per shard. No communication."""
        total = 0
        for w, spec in zip(self.weights, weight_specs(self)):
            size = int(np.prod(w.shape))
            total += size * (spec[2] if spec is not None else 1)
        return total

    def gather_whole(self):
        """The whole model, gathered: on the chief, the plain twin (`plain_twin`) holding
        every shard's weights; None on every other rank. A collective of the first model
        group (call it on every rank); the model itself when it is not sharded."""
        if not self._sharded():
            return self
        twin = None
        if mp.layout().data_index == 0:
            weights = full_weights(self)
            if runtime.is_chief():
                twin = self.plain_twin()
                twin.set_weights(weights)
        return twin

    def _write_whole(self, write):
        """Gather the whole model on the first model group, `write(twin)` on the chief;
        every rank returns once the file is written, or raises if the chief failed."""
        error = None
        try:
            twin = self.gather_whole()
            if twin is not None:
                write(twin)
        except (ValueError, TypeError, OSError) as exc:
            error = exc
        runtime.agree(error, name="bwkeras.save_whole")

    def save(self, filepath, overwrite=True, **kwargs):
        """Every rank calls; the chief writes the whole model as the same model in one
        process would (architecture and weights, no optimizer state when sharded)."""
        if not self._sharded():
            return super().save(filepath, overwrite=overwrite, **kwargs)
        self._write_whole(lambda twin: twin.save(filepath, overwrite=overwrite, **kwargs))

    def save_weights(self, filepath, overwrite=True, **kwargs):
        """Every rank calls; the chief writes the whole model's weights (.weights.h5)."""
        if not self._sharded():
            return super().save_weights(filepath, overwrite=overwrite, **kwargs)
        self._write_whole(lambda twin: twin.save_weights(filepath, overwrite=overwrite, **kwargs))

    def load_weights(self, filepath, skip_mismatch=False, **kwargs):
        """Load a whole-model file (.keras or .weights.h5, written by this model sharded
        or not, or by the same model in one process); each rank keeps its shard."""
        if not self._sharded():
            return super().load_weights(filepath, skip_mismatch=skip_mismatch, **kwargs)

        def load():
            twin = self.plain_twin()
            twin.load_weights(filepath, skip_mismatch=skip_mismatch, **kwargs)
            set_full_weights(self, twin.get_weights())
        runtime.agreed(load, name="bwkeras.load_whole")
