"""The implementation behind ``bwkeras.horovod``: ``horovod.tensorflow.keras``'s API, on
Keras 2 and on Keras 3.

Horovod's own Keras layer stops working with Keras 3: Keras 3's ``fit`` calls
``optimizer.apply`` and never the gradient hooks Horovod's DistributedOptimizer overrides
(each rank would train alone), and its callbacks call Keras 2 functions that are gone.
Here the names and keywords are Horovod's, and so are the semantics:

* ``init`` is Horovod's: it starts Horovod in a lone process too, and leaves ``tf.config``
  alone, so the script's own GPU pinning by ``local_rank()`` still works after it.
* ``DistributedOptimizer`` is Horovod's own on Keras 2; on Keras 3 it is bwkeras'
  wrapper (:mod:`.optimizer`) reducing the gradients as Horovod would: per-tensor
  allreduces (or ``groups``), ``op`` Average or Sum, the predivide factor, compression,
  ``sparse_as_dense``, process sets, local variables, and ``backward_passes_per_step``
  local passes SUMMED unless ``average_aggregated_gradients=True``. A keyword it cannot
  honour is a ValueError naming it.
* the collectives take tensors, eagerly or inside ``tf.function``; ``allreduce`` averages
  unless told otherwise, as Horovod's does (``bwkeras.distributed.allreduce`` sums).

Importing this module (which ``import bwkeras.horovod`` does) also lets Keras 3's
``Model.compile`` accept ``experimental_run_tf_function``: see
:func:`_accept_experimental_run_tf_function`.
"""
import functools
import math
import warnings

import horovod.tensorflow as _hvd
import keras
import tensorflow as tf
from horovod.common.util import split_list
from horovod.tensorflow import (  # noqa: F401  (re-exported by bwkeras.horovod)
    Adasum, Average, Compression, ProcessSet, Sum, add_process_set, ccl_built, cross_rank,
    cross_size, cuda_built, ddl_built, global_process_set, gloo_built, gloo_enabled,
    is_homogeneous, is_initialized, local_rank, local_size, mpi_built, mpi_enabled,
    mpi_threads_supported, nccl_built, rank, remove_process_set, rocm_built, size,
    start_timeline, stop_timeline,
)

from .._keras import KERAS3
from . import optimizer as _optimizer
from . import runtime

__all__ = [
    "init", "shutdown", "is_initialized", "size", "rank", "local_rank", "local_size",
    "cross_rank", "cross_size", "is_homogeneous", "mpi_enabled", "mpi_built", "gloo_enabled",
    "gloo_built", "mpi_threads_supported", "nccl_built", "ddl_built", "ccl_built",
    "cuda_built", "rocm_built", "sycl_built", "start_timeline", "stop_timeline",
    "ProcessSet", "global_process_set", "add_process_set", "remove_process_set",
    "Average", "Sum", "Adasum", "Compression", "DistributedOptimizer", "allreduce",
    "allgather", "broadcast", "reducescatter", "alltoall", "broadcast_variables",
    "broadcast_global_variables", "broadcast_object", "allgather_object", "join", "barrier",
    "load_model",
]


def init(comm=None, process_sets=None):
    """Start Horovod (Horovod's ``hvd.init``): under a launcher or alone (size 1).

    Only Horovod starts: no device setup, so pinning the GPU by ``hvd.local_rank()``
    afterwards, as Horovod's examples do, keeps working.
    """
    runtime.init_horovod(comm=comm, process_sets=process_sets)


def shutdown():
    """Shut Horovod down; ``init()`` may start it again."""
    runtime.shutdown()


def sycl_built():
    """False: this Horovod has no SYCL (Intel GPU) support. Newer Horovod examples ask."""
    built = getattr(_hvd, "sycl_built", None)
    return bool(built()) if built is not None else False


def _require_init():
    if not _hvd.is_initialized():
        raise ValueError("Horovod has not been initialized; use hvd.init().")


# ---- DistributedOptimizer -------------------------------------------------------------

_OP_NAMES = {getattr(_hvd, n): f"hvd.{n}" for n in ("Average", "Sum", "Adasum", "Min", "Max",
                                                     "Product")}

def _check_optimizer_args(optimizer, compression, sparse_as_dense, gradient_predivide_factor,
                          op, backward_passes_per_step, average_aggregated_gradients,
                          num_groups, groups, process_set):
    """Horovod's checks, plus errors where Horovod would silently ignore a keyword."""
    _optimizer._check_args(optimizer, None, backward_passes_per_step)
    if op not in (Average, Sum):
        shown = _OP_NAMES.get(op, repr(op))
        raise ValueError(f"op={shown}: DistributedOptimizer supports only hvd.Average and hvd.Sum "
                         "(as Horovod's Keras DistributedOptimizer)")
    if (isinstance(gradient_predivide_factor, bool)
            or not isinstance(gradient_predivide_factor, (int, float))
            or not math.isfinite(gradient_predivide_factor) or gradient_predivide_factor <= 0):
        raise ValueError("gradient_predivide_factor must be a positive finite number, "
                         f"got {gradient_predivide_factor!r}")
    if gradient_predivide_factor != 1.0 and op != Average:
        raise ValueError(f"gradient_predivide_factor={gradient_predivide_factor!r} applies only "
                         "to op=hvd.Average: it splits the average before and after the sum")
    if not (hasattr(compression, "compress") and hasattr(compression, "decompress")):
        raise ValueError(f"compression must be hvd.Compression.none, hvd.Compression.fp16 or "
                         f"another Horovod compressor, got {compression!r}")
    for key, value in (("sparse_as_dense", sparse_as_dense),
                       ("average_aggregated_gradients", average_aggregated_gradients)):
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be True or False, got {value!r}")
    if num_groups != 0:
        warnings.warn("Parameter `num_groups` has been replaced by `groups` "
                      "and will be removed in v0.23.0.", DeprecationWarning, stacklevel=3)
        if groups is None:
            groups = num_groups
    if groups is not None:
        if isinstance(groups, list):
            if not all(isinstance(g, (list, tuple)) for g in groups):
                raise ValueError("groups should be a non-negative integer or a list of list of "
                                 f"variables, got {groups!r}")
        elif isinstance(groups, bool) or not isinstance(groups, int) or groups <= 0:
            raise ValueError("groups should be a non-negative integer or a list of list of "
                             f"tf.Variable, got {groups!r}")
    if not isinstance(process_set, ProcessSet):
        raise ValueError(f"process_set must be a hvd.ProcessSet, got {process_set!r}")
    return groups


def DistributedOptimizer(optimizer, name=None, device_dense='', device_sparse='',
                         compression=Compression.none, sparse_as_dense=False,
                         gradient_predivide_factor=1.0, op=Average, backward_passes_per_step=1,
                         average_aggregated_gradients=False, num_groups=0, groups=None,
                         process_set=global_process_set, scale_local_gradients=True):
    """Horovod's ``hvd.DistributedOptimizer``: every update uses the gradients reduced
    over all ranks (averaged by default).

    backward_passes_per_step=k: k local passes, then one reduction and one update; their
    gradients are SUMMED, as Horovod does, unless average_aggregated_gradients=True.
    On Keras 3 ``optimizer.iterations`` counts updates (Horovod's Keras 2 wrapper counts
    passes). ``optimizer.variables`` are the wrapped optimizer's own, so checkpoints and
    saved models hold exactly its state and load as the plain optimizer.
    """
    _require_init()
    groups = _check_optimizer_args(optimizer, compression, sparse_as_dense,
                                   gradient_predivide_factor, op, backward_passes_per_step,
                                   average_aggregated_gradients, num_groups, groups, process_set)
    if name is not None and not isinstance(name, str):
        raise ValueError(f"name must be a string or None, got {name!r}")
    if not KERAS3:
        import horovod.tensorflow.keras as hvd_keras  # Keras 2: Horovod's own works

        wrapped = hvd_keras.DistributedOptimizer(
            optimizer, name=name, device_dense=device_dense, device_sparse=device_sparse,
            compression=compression, sparse_as_dense=sparse_as_dense,
            gradient_predivide_factor=gradient_predivide_factor, op=op,
            backward_passes_per_step=backward_passes_per_step,
            average_aggregated_gradients=average_aggregated_gradients, groups=groups,
            process_set=process_set, scale_local_gradients=scale_local_gradients)
        # As bwkeras.distributed does: the saved optimizer loads without Horovod.
        type(wrapped).__module__ = type(optimizer).__module__
        return wrapped
    options = _reduce_options(type(optimizer).__name__, name, device_dense, device_sparse,
                              compression, sparse_as_dense, gradient_predivide_factor, op,
                              groups, process_set, scale_local_gradients)
    return _optimizer._wrap_keras3(optimizer, None, backward_passes_per_step, mixin=_HorovodReduce,
                                   _hvd_average_passes=average_aggregated_gradients,
                                   _hvd_options=options)


def _reduce_options(class_name, name=None, device_dense='', device_sparse='',
                    compression=Compression.none, sparse_as_dense=False,
                    gradient_predivide_factor=1.0, op=Average, groups=None,
                    process_set=global_process_set, scale_local_gradients=True):
    if op == Average:  # Horovod splits the average: 1/f before the sum, f/size after it
        prescale, postscale = 1.0 / gradient_predivide_factor, float(gradient_predivide_factor)
    else:
        prescale = postscale = 1.0
    return {"name": name or f"Distributed{class_name}", "device_dense": device_dense,
            "device_sparse": device_sparse, "compression": compression,
            "sparse_as_dense": sparse_as_dense, "op": op, "prescale_factor": prescale,
            "postscale_factor": postscale, "groups": groups, "process_set": process_set,
            "scale_local_gradients": scale_local_gradients}


class _LocalVariables:
    """The variables registered as local, by identity (a plain object: Keras' attribute
    tracking must not adopt them as optimizer variables)."""

    def __init__(self):
        self.by_id = {}


class _HorovodReduce(_optimizer._DistributedMixin):
    """Horovod's gradient reduction (``horovod.tensorflow._make_allreduce_grads_fn`` and
    the local-variable handling of its Keras wrapper), for Keras 3's ``apply``.

    Variables are matched by identity, not by name as Horovod does: Keras 3 variable names
    are not unique ("kernel" in every Dense layer)."""

    _hvd_options = None

    def register_local_var(self, var):
        """Keep `var`'s gradient local: not reduced, divided by the number of ranks when
        scale_local_gradients (Horovod's default)."""
        if "_hvd_local" not in self.__dict__:
            self._hvd_local = _LocalVariables()
        self._hvd_local.by_id[id(var)] = var

    def _hvd_average(self, grads, variables):
        o = self._hvd_options
        grads = list(grads)
        with tf.name_scope(o["name"] + "_Allreduce"):
            if o["sparse_as_dense"]:
                grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g
                         for g in grads]
            ps = o["process_set"]
            if not (ps.included() and ps.size() > 1):
                return grads  # Horovod's _allreduce_cond: nothing to reduce with
            local = self.__dict__["_hvd_local"].by_id if "_hvd_local" in self.__dict__ else {}
            shared = [i for i, (g, v) in enumerate(zip(grads, variables))
                      if g is not None and id(v) not in local]
            kwargs = {k: o[k] for k in ("device_dense", "device_sparse", "compression", "op",
                                        "prescale_factor", "postscale_factor", "process_set")}
            reduced = list(grads)
            for part in _partition(shared, variables, o["groups"]):
                if o["groups"] is None:
                    (i,) = part
                    reduced[i] = _hvd.allreduce(grads[i], **kwargs)
                elif part:
                    for i, r in zip(part, _hvd.grouped_allreduce([grads[i] for i in part], **kwargs)):
                        reduced[i] = r
            if local and o["scale_local_gradients"]:
                n = ps.size()
                for i, (g, v) in enumerate(zip(grads, variables)):
                    if g is not None and id(v) in local:
                        reduced[i] = (tf.IndexedSlices(g.values / n, g.indices, g.dense_shape)
                                      if isinstance(g, tf.IndexedSlices) else g / n)
            return reduced


def _partition(indices, variables, groups):
    """The gradient positions `indices`, split as Horovod's `groups` says."""
    if groups is None:
        return [[i] for i in indices]
    if isinstance(groups, int):
        return split_list(indices, groups)
    where = {}
    for g, group in enumerate(groups):
        for var in group:
            where.setdefault(id(var), g)
    parts = [[] for _ in groups]
    alone = []
    for i in indices:
        g = where.get(id(variables[i]))
        (alone.append([i]) if g is None else parts[g].append(i))
    return parts + alone


# ---- collectives on tensors -----------------------------------------------------------

def allreduce(value, name=None, average=None, prescale_factor=1.0, postscale_factor=1.0,
              op=None, compression=Compression.none):
    """The reduction of `value` over all ranks; by default the AVERAGE, as Horovod's."""
    _require_init()
    return _hvd.allreduce(tf.convert_to_tensor(value), average=average, op=op, name=name,
                          prescale_factor=prescale_factor, postscale_factor=postscale_factor,
                          compression=compression)


def allgather(value, name=None):
    """Every rank's `value` concatenated along the first axis, in rank order."""
    _require_init()
    return _hvd.allgather(tf.convert_to_tensor(value), name=name)


def broadcast(value, root_rank, name=None):
    """`root_rank`'s `value` on every rank."""
    _require_init()
    return _hvd.broadcast(tf.convert_to_tensor(value), root_rank, name=name)


def reducescatter(value, name=None, op=Average):
    """The reduction of `value` over all ranks, split along the first axis among them."""
    _require_init()
    return _hvd.reducescatter(tf.convert_to_tensor(value), name=name, op=op)


def alltoall(value, splits=None, name=None):
    """Horovod's alltoall: slices of `value` (first axis, by `splits`) sent to each rank;
    with `splits` also the received splits."""
    _require_init()
    return _hvd.alltoall(tf.convert_to_tensor(value), splits=splits, name=name)


def _tf_variable(var):
    # A Keras 3 variable holds a tf.Variable; Horovod's functions need that one.
    return var.value if KERAS3 and isinstance(var, keras.Variable) else var


def broadcast_variables(variables, root_rank, process_set=global_process_set, inplace=False):
    """Overwrite `variables` (tf or Keras variables) with `root_rank`'s values."""
    _require_init()
    return _hvd.broadcast_variables([_tf_variable(v) for v in variables], root_rank,
                                    process_set=process_set, inplace=inplace)


def broadcast_global_variables(root_rank):
    """TensorFlow 1 graphs only, as in Horovod: in TensorFlow 2 use
    ``callbacks.BroadcastGlobalVariablesCallback`` or ``broadcast_variables``."""
    _require_init()
    return _hvd.broadcast_global_variables(root_rank)


def broadcast_object(obj, root_rank=0, session=None, name=None, process_set=global_process_set):
    """`root_rank`'s picklable object on every rank."""
    _require_init()
    return _hvd.broadcast_object(obj, root_rank=root_rank, session=session, name=name,
                                 process_set=process_set)


def allgather_object(obj, session=None, name=None, process_set=global_process_set):
    """A list with every rank's picklable object, in rank order."""
    _require_init()
    return _hvd.allgather_object(obj, session=session, name=name, process_set=process_set)


def join():
    """Horovod's join (uneven data: this rank has no more batches); returns the last rank
    that joined."""
    _require_init()
    return _hvd.join()


def barrier():
    """Return on each rank once every rank has called it."""
    _require_init()
    runtime.barrier(name="hvd.barrier")


def load_model(filepath, custom_optimizers=None, custom_objects=None,
               compression=Compression.none, legacy_opts=False):
    """Load a saved Keras model with its optimizer wrapped in DistributedOptimizer (its
    state kept), as Horovod's ``hvd.load_model``."""
    _require_init()
    if not KERAS3:
        import horovod.tensorflow.keras as hvd_keras

        return hvd_keras.load_model(filepath, custom_optimizers=custom_optimizers,
                                    custom_objects=custom_objects, compression=compression,
                                    legacy_opts=legacy_opts)
    if legacy_opts:
        raise ValueError("legacy_opts=True: Keras 3 has no legacy optimizers "
                         "(keras.optimizers.legacy); load without it")
    objects = {cls.__name__: cls for cls in custom_optimizers or ()}
    objects.update(custom_objects or {})
    model = keras.models.load_model(filepath, custom_objects=objects or None)
    if getattr(model, "optimizer", None) is not None:
        _check_optimizer_args(model.optimizer, compression, False, 1.0, Average, 1, False, 0,
                              None, global_process_set)
        _optimizer._distribute_in_place(
            model.optimizer, _HorovodReduce,
            _hvd_options=_reduce_options(type(model.optimizer).__name__, compression=compression))
    return model


# ---- compile(experimental_run_tf_function=...) on Keras 3 -----------------------------

def _accept_experimental_run_tf_function():
    """Let Keras 3's ``Model.compile`` take ``experimental_run_tf_function`` and ignore it.

    Every Horovod Keras example passes ``experimental_run_tf_function=False``: on
    TensorFlow 2.0-2.3 it made Keras call Horovod's ``get_gradients``. Keras 2.15 already
    dropped it unread ("Always `True`"); Keras 3 rejects it with a TypeError. With this
    package's DistributedOptimizer the gradients are reduced inside ``apply``, whatever runs
    the step, so the keyword means nothing, and dropping it as Keras 2.15 did keeps the
    promise that the import line is the one change a Horovod script needs. Scope: that one
    keyword, on Keras 3, in processes that import ``bwkeras.horovod``; every other keyword
    reaches Keras untouched.
    """
    # Patched where Keras defines it (its Trainer), not on keras.Model: Keras tells a
    # custom compile (one that loading a model must not call) by comparing with that one.
    owner = next(c for c in keras.Model.__mro__ if "compile" in c.__dict__)
    compile_ = owner.__dict__["compile"]
    if getattr(compile_, "_bwkeras_drops_experimental_run_tf_function", False):
        return

    @functools.wraps(compile_)
    def compile(self, *args, **kwargs):
        kwargs.pop("experimental_run_tf_function", None)
        return compile_(self, *args, **kwargs)

    compile._bwkeras_drops_experimental_run_tf_function = True
    owner.compile = compile


if KERAS3:
    _accept_experimental_run_tf_function()
