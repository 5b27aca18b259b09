"""Validated float64 (x, y) row blocks from arrays, a tf.data.Dataset or any iterable.

The solvers never hold more than one block (plus a few p x p matrices), so memory is
bounded by the block size whatever the number of rows.
"""
import numbers
import sys
import time

import numpy as np

from .._checks import as_float64, integer

DEFAULT_BLOCK_ROWS = 65536
# Past this magnitude the squares and cross products a second-order solve forms overflow
# float64 (max about 1.8e308), and LAPACK is handed inf: refused before it is called.
SCALE_LIMIT = 1e150


def check_scale(name, array, where=""):
    """ValueError when the finite values of `array` reach SCALE_LIMIT; `where` names the
    batch of a stream ("in batch 3 ")."""
    finite = array[np.isfinite(array)]
    if finite.size and float(np.max(np.abs(finite))) >= SCALE_LIMIT:
        raise ValueError(
            f"{name} {where}reaches {float(np.max(np.abs(finite))):.3g}: at that scale the "
            f"squares a second-order solve forms overflow float64 (limit {SCALE_LIMIT:g}); "
            f"rescale {name} to values of order 1 (e.g. divide by its standard deviation) "
            f"and the parameters with it")


def _is_array_like(value):
    if isinstance(value, (np.ndarray, numbers.Number)):
        return True
    if isinstance(value, list):
        # [1.0, 2.0] or [[1, 2], [3, 4]] are data; [(x1, y1), (x2, y2)] is a list of batches.
        return not value or not isinstance(value[0], tuple)
    module = type(value).__module__
    if module.startswith("pandas"):
        return True
    try:
        import tensorflow as tf

        return tf.is_tensor(value)
    except ImportError:  # pragma: no cover
        return False


def _is_dataset(value):
    try:
        import tensorflow as tf

        return isinstance(value, tf.data.Dataset)
    except ImportError:  # pragma: no cover
        return False


def check_finite(name, array, offset=0):
    finite = np.isfinite(array)
    if not finite.all():
        bad = np.argwhere(~finite)[0]
        row = int(bad[0]) + offset
        raise ValueError(
            f"{name} contains NaN or inf (first at row {row}: {float(array[tuple(bad)])!r}); "
            f"remove or impute those rows before solving"
        )


def as_response(name, value, offset=0):
    """y as a 1-D float64 array (n,) from (n,) or (n, 1), finite."""
    y = as_float64(name, value)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{name} must be one response per sample, shape (n,) or (n, 1); got shape {y.shape}")
    check_finite(name, y, offset)
    return y


def check_weights(value, n, offset=0):
    """sample_weight as a float64 (n,) array of finite weights >= 0."""
    w = as_float64("sample_weight", value)
    if w.ndim == 2 and w.shape[1] == 1:
        w = w[:, 0]
    if w.shape != (n,):
        raise ValueError(f"sample_weight must be one weight per sample, shape ({n},); got shape {w.shape}")
    check_finite("sample_weight", w, offset)
    bad = np.flatnonzero(w < 0)
    if bad.size:
        raise ValueError(f"sample_weight must be >= 0; got {float(w[bad[0]])!r} at row {offset + int(bad[0])}")
    return w


def check_batch_size(batch_size):
    if batch_size is None:
        return DEFAULT_BLOCK_ROWS
    return integer("batch_size", batch_size, minimum=1, expected="a positive integer or None")


class BlockSource:
    """Re-iterable (when the data allow it) source of (x_block, y_block) float64 pairs.

    x, y: arrays (numpy, pandas, tensors, lists) split into blocks of `batch_size` rows;
    or y=None and x a tf.data.Dataset / iterable yielding (x_batch, y_batch) pairs.
    prepare_x(array, offset) validates one x block's shape and returns it (float64);
    prepare_y(array, offset) checks a y block's values (e.g. 0/1 outcomes).
    select_x(raw x) picks a model's input columns (e.g. from a DataFrame by name) first.
    Validation (finite values, matching lengths, shapes) happens as blocks are produced,
    so a streamed data set is checked in full without being held in memory.
    check_scale: refuse a streamed block whose x or y reach SCALE_LIMIT (a nonlinear
    solve; arrays in memory are checked by the solver before it builds the source).
    """

    def __init__(self, x, y=None, *, prepare_x, prepare_y=None, batch_size=None, name_x="x",
                 name_y="y", select_x=None, sample_weight=None, check_scale=False):
        self.check_scale = check_scale
        self.prepare_x = prepare_x
        self.select_x = select_x or (lambda block: block)
        self.prepare_y = prepare_y or (lambda block, offset: block)
        self.batch_size = check_batch_size(batch_size)
        self.name_x, self.name_y = name_x, name_y
        self.in_memory = y is not None
        if y is None:
            if isinstance(x, tuple) and len(x) == 2 and all(_is_array_like(v) for v in x) \
                    and not all(isinstance(v, tuple) for v in x):
                x, y = x
                self.in_memory = True
            elif _is_array_like(x):
                raise TypeError(
                    f"y is missing: pass solve(x, y) with arrays, or a tf.data.Dataset / "
                    f"iterable of (x, y) batches as the only argument (got {type(x).__name__})"
                )
        self._w = None
        if self.in_memory:
            self._x, self._y = self._validate_arrays(x, y)
            self.reiterable = True
            self.n_rows = len(self._y)
            if sample_weight is not None:
                self._w = check_weights(sample_weight, self.n_rows)
        else:
            if sample_weight is not None:
                raise TypeError(
                    "sample_weight goes with arrays x, y; a streamed data set carries its "
                    "weights in its batches: (x_batch, y_batch, weight_batch)"
                )
            if not (_is_dataset(x) or hasattr(x, "__iter__")):
                raise TypeError(
                    f"data must be arrays (x, y), a tf.data.Dataset or an iterable of (x, y) "
                    f"batches; got {type(x).__name__}"
                )
            self._stream = x
            self.reiterable = _is_dataset(x) or iter(x) is not x
            self.n_rows = None

    def _validate_arrays(self, x, y):
        xa = as_float64(self.name_x, self.select_x(x))
        ya = as_float64(self.name_y, y)
        nx = xa.shape[0] if xa.ndim else None
        ny = ya.shape[0] if ya.ndim else None
        if nx is None or ny is None:
            raise ValueError(
                f"{self.name_x} and {self.name_y} must be arrays with one row per sample, got "
                f"shapes {xa.shape} and {ya.shape}"
            )
        if nx != ny:
            raise ValueError(
                f"{self.name_x} and {self.name_y} have different lengths: {nx} rows and {ny} rows"
            )
        if nx == 0:
            raise ValueError(f"{self.name_x} and {self.name_y} are empty: need at least one sample")
        ya = self.prepare_y(as_response(self.name_y, ya), 0)
        xa = self.prepare_x(xa, 0)
        check_finite(self.name_x, xa)
        return xa, ya

    def _stream_blocks(self):
        offset = 0
        for i, element in enumerate(self._stream):
            if not (isinstance(element, (tuple, list)) and len(element) in (2, 3)):
                raise ValueError(
                    f"batch {i} of the data is not an (x, y) pair (got {type(element).__name__}"
                    f"{' of length %d' % len(element) if isinstance(element, (tuple, list)) else ''}); "
                    f"the data must yield (x_batch, y_batch) or (x_batch, y_batch, weight_batch)"
                )
            xb = as_float64(self.name_x, self.select_x(element[0]))
            yb = as_float64(self.name_y, element[1])
            if xb.ndim == 0 or yb.ndim == 0:
                raise ValueError(
                    f"batch {i} holds a single sample (x shape {xb.shape}, y shape {yb.shape}); "
                    f"batch the data set first, e.g. dataset.batch(65536)"
                )
            if xb.shape[0] != yb.shape[0]:
                raise ValueError(
                    f"batch {i}: {self.name_x} and {self.name_y} have different lengths: "
                    f"{xb.shape[0]} rows and {yb.shape[0]} rows"
                )
            if xb.shape[0] == 0:
                continue
            yb = self.prepare_y(as_response(self.name_y, yb, offset), offset)
            xb = self.prepare_x(xb, offset)
            check_finite(self.name_x, xb, offset)
            if self.check_scale:
                # Each block as it is read: LAPACK never sees the first bad one, and so
                # prints nothing (its DLASCL complaint on inf goes straight to stderr).
                check_scale(self.name_x, xb, f"in batch {i} ")
                check_scale(self.name_y, yb, f"in batch {i} ")
            wb = check_weights(element[2], len(yb), offset) if len(element) == 3 else None
            yield xb, yb, wb
            offset += yb.shape[0]

    def __iter__(self):
        for xb, yb, _ in self.weighted():
            yield xb, yb

    def weighted(self):
        """(x_block, y_block, weight_block) triples; weight_block is None when unweighted."""
        if self.in_memory:
            step = self.batch_size
            for start in range(0, self.n_rows, step):
                stop = start + step
                yield (self._x[start:stop], self._y[start:stop],
                       None if self._w is None else self._w[start:stop])
            return
        progress = self.progress
        if progress is not None:
            progress.start_pass()
        for xb, yb, wb in self._stream_blocks():
            yield xb, yb, wb
            if progress is not None:
                progress.add(len(yb))
        if progress is not None:
            progress.end_pass()

    progress = None  # a StreamProgress reporting streamed rows, set by the solvers

    def sample(self, rows=None):
        """Up to `rows` (default: the block size) rows strided over all in-memory rows."""
        rows = rows or self.batch_size
        stride = max(1, -(-self.n_rows // rows))
        return self._x[::stride], self._y[::stride]

    def require_reiterable(self, why):
        if not self.reiterable:
            raise TypeError(
                f"{why} needs several passes over the data, but got a one-shot iterator "
                f"({type(self._stream).__name__}); pass a tf.data.Dataset, a list of batches, "
                f"or arrays"
            )


class StreamProgress:
    """Rows read per pass over a streamed data set, on one line of stderr (chief only).

    verbose: True, False, or "auto" (report when the data are streamed: arrays in memory
    solve in moments, streams may take minutes).
    """

    def __init__(self, label, verbose="auto", stream=None, interval=0.5):
        if verbose not in (True, False, "auto"):
            raise ValueError(f"verbose must be True, False or 'auto', got {verbose!r}")
        self.label = label
        self.enabled = bool(verbose)
        self.stream = stream
        self.interval = interval
        self.passes = 0
        self.rows = 0

    @classmethod
    def for_source(cls, source, label, verbose="auto"):
        """Attach a progress report to `source` when it is wanted; returns it (or None)."""
        from .. import distributed as dist

        progress = cls(label, verbose)
        wanted = progress.enabled and (verbose is True or not source.in_memory)
        if wanted and dist.is_chief():
            source.progress = progress
            return progress
        return None

    def start_pass(self):
        self.passes += 1
        self.rows = 0
        self._started = self._shown = time.monotonic()

    def add(self, rows):
        self.rows += rows
        now = time.monotonic()
        if now - self._shown >= self.interval:
            self._shown = now
            self._print(now, end="\r")

    def end_pass(self):
        self._print(time.monotonic(), end="\n")

    def _print(self, now, end):
        rate = self.rows / max(now - self._started, 1e-9)
        which = f" pass {self.passes}" if self.passes > 1 else ""
        stream = self.stream or sys.stderr  # looked up late: redirections made after import count
        stream.write(f"{self.label}{which}: {self.rows:,} rows ({rate:,.0f} rows/s){end}")
        stream.flush()
