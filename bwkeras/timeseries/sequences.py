"""Variable-length sequences with a label per step: padding and a synthetic task."""
import numpy as np

from .._checks import fraction, integer, real


def pad_sequences(sequences, labels=None, value=0.0, label_value=0, maxlen=None):
    """Stack variable-length sequences into one zero-padded (post-padded) batch.

    sequences: list of arrays of shape (T_i,) or (T_i, features).
    labels: optional list of integer arrays of shape (T_i,), one label per step.
    value: fills padded steps; a model with `mask_value=value` (e.g. SequenceLabeler)
        masks them. No real step may equal it in every feature (it would be masked too).
    label_value: the label stored at padded steps (never counted once masked).
    maxlen: pad to this length (default: the longest sequence); longer ones: ValueError.

    Returns (x, lengths) or, with labels, (x, y, lengths): x float32 (n, T, features),
    y int64 (n, T), lengths int64 (n,).
    """
    if isinstance(sequences, np.ndarray) and sequences.dtype != object:
        sequences = list(sequences)
    if not isinstance(sequences, (list, tuple)) or not sequences:
        raise ValueError(f"sequences must be a non-empty list of arrays, got {type(sequences).__name__}")
    real("value", value)
    arrays = []
    for i, seq in enumerate(sequences):
        a = np.asarray(seq)
        if a.dtype.kind not in "iuf":
            raise ValueError(f"sequence {i} must hold numbers, got dtype {a.dtype}")
        a = a.astype(np.float32)
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2 or a.shape[0] == 0:
            raise ValueError(f"sequence {i} must have shape (T,) or (T, features) with T >= 1, got {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"sequence {i} holds NaN or infinite values")
        if np.any(np.all(a == value, axis=1)):
            t = int(np.flatnonzero(np.all(a == value, axis=1))[0])
            raise ValueError(
                f"sequence {i} step {t} equals the padding value {value!r} in every feature "
                "and would be masked; pick another padding value"
            )
        arrays.append(a)
    widths = {a.shape[1] for a in arrays}
    if len(widths) != 1:
        raise ValueError(f"sequences must share one number of features, got {sorted(widths)}")
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    longest = int(lengths.max())
    if maxlen is None:
        maxlen = longest
    maxlen = integer("maxlen", maxlen, minimum=1)
    if longest > maxlen:
        raise ValueError(f"maxlen={maxlen} is shorter than the longest sequence ({longest} steps)")
    x = np.full((len(arrays), maxlen, widths.pop()), value, dtype=np.float32)
    for i, a in enumerate(arrays):
        x[i, : len(a)] = a
    if labels is None:
        return x, lengths
    if len(labels) != len(arrays):
        raise ValueError(f"got {len(labels)} label sequences for {len(arrays)} sequences")
    y = np.full((len(arrays), maxlen), label_value, dtype=np.int64)
    for i, lab in enumerate(labels):
        lab = np.asarray(lab)
        if lab.shape != (lengths[i],):
            raise ValueError(f"labels {i} must have shape ({lengths[i]},) like its sequence, got {lab.shape}")
        if lab.dtype.kind not in "iu":
            raise ValueError(f"labels {i} must be integers, got dtype {lab.dtype}")
        y[i, : len(lab)] = lab
    return x, y, lengths


def step_mask(lengths, maxlen):
    """Boolean (n, maxlen) array, True at real (unpadded) steps."""
    lengths = np.asarray(lengths)
    return np.arange(maxlen)[None, :] < lengths[:, None]


def regime_switching(n_sequences, min_length=20, max_length=60, n_regimes=2, stay=0.95,
                     noise=0.3, seed=None):
    """Sequences from a hidden Markov regime-switching process, with the true regimes.

    The regime follows a Markov chain that keeps its state with probability `stay` and
    otherwise jumps to one of the other regimes uniformly; the observation is
    mu_k + noise * N(0, 1) with regime means mu_k evenly spaced on [-1, 1]. Lengths
    are uniform on [min_length, max_length]. Returns (sequences, labels): lists of
    float32 arrays (T_i,) and int64 arrays (T_i,).
    """
    n_sequences = integer("n_sequences", n_sequences, minimum=1)
    min_length = integer("min_length", min_length, minimum=1)
    max_length = integer("max_length", max_length, minimum=min_length)
    n_regimes = integer("n_regimes", n_regimes, minimum=2)
    stay = fraction("stay", stay)
    noise = real("noise", noise, low=0, low_open=True)
    rng = np.random.default_rng(seed)
    means = np.linspace(-1.0, 1.0, n_regimes)
    sequences, labels = [], []
    for _ in range(n_sequences):
        length = int(rng.integers(min_length, max_length + 1))
        states = np.empty(length, dtype=np.int64)
        states[0] = rng.integers(n_regimes)
        for t in range(1, length):
            if rng.random() < stay:
                states[t] = states[t - 1]
            else:
                states[t] = (states[t - 1] + rng.integers(1, n_regimes)) % n_regimes
        obs = means[states] + noise * rng.standard_normal(length)
        sequences.append(obs.astype(np.float32))
        labels.append(states)
    return sequences, labels
