"""Reductions a solve needs across ranks, and the single-process equivalents.

A distributed solve calls the same collectives in the same order on every rank. Errors
found on one rank (NaN in its shard, a batch of the wrong shape) must not leave its peers
waiting in the next collective, so each local phase ends with `agree`
(`bwkeras.distributed.agree`): every rank learns whether any rank failed, and all
raise together.
"""
import numpy as np


class Reducer:
    """Collectives over the ranks of a data-parallel job, or identities in one process.

    distributed: None (default) reduces over all ranks when a launcher started more than one
    process; True insists on it (still fine in one process); False solves this process's
    data alone even under a launcher.
    """

    def __init__(self, distributed=None):
        if distributed not in (None, True, False):
            raise ValueError(f"distributed must be None, True or False, got {distributed!r}")
        self.active = False
        self._dist = None
        if distributed is not False:
            from .. import distributed as dist

            self.active = dist.size() > 1
            self._dist = dist
        self._count = 0

    @property
    def rank(self):
        return self._dist.rank() if self.active else 0

    @property
    def size(self):
        return self._dist.size() if self.active else 1

    def _name(self, tag):
        self._count += 1
        return f"bwkeras.regression.{tag}.{self._count}"

    def sum(self, value):
        """Elementwise sum over ranks (float64)."""
        array = np.asarray(value, dtype=np.float64)
        if not self.active:
            return array.copy()
        return self._dist.allreduce(array, op="sum", name=self._name("sum"))

    def gather_rows(self, value):
        """Every rank's 2-D array stacked along axis 0, in rank order."""
        array = np.asarray(value, dtype=np.float64)
        if not self.active:
            return array.copy()
        return self._dist.allgather(array, name=self._name("gather"))

    def broadcast(self, value):
        """Rank 0's array on every rank, so every rank returns bit-identical results."""
        array = np.asarray(value, dtype=np.float64)
        if not self.active:
            return array.copy()
        return self._dist.broadcast(array, root_rank=0, name=self._name("bcast"))

    def agree(self, error):
        """Raise on every rank if any rank failed; `error` is this rank's exception or None."""
        if not self.active:
            if error is not None:
                raise error
            return
        self._dist.agree(error, name=self._name("agree"))

    def run(self, fn, *args, **kwargs):
        """fn(*args) locally, then `agree` on its errors; returns fn's value."""
        if not self.active:
            return fn(*args, **kwargs)
        return self._dist.agreed(fn, *args, name=self._name("agree"), **kwargs)
