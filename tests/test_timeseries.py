"""Sunspot data, autocorrelation, windows, chronological splits and leak-free scaling."""
import json
import pathlib

import numpy as np
import pandas as pd
import pytest

from bwkeras import datasets
from bwkeras.timeseries import (
    Scaler, acf, chronological_split, pad_sequences, regime_switching, step_mask,
    supervised_split, windows,
)

REFDATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "refdata" / "sunspots_ar.json"


def test_sunspots_is_the_reference_series():
    series = datasets.sunspots()
    assert isinstance(series, pd.Series) and series.dtype == np.float64
    assert series.index.name == "year"
    assert series.index[0] == 1700 and series.index[-1] == 2008 and len(series) == 309
    assert (np.diff(series.index) == 1).all()
    if REFDATA.exists():
        ref = json.loads(REFDATA.read_text())
        np.testing.assert_array_equal(series.index, ref["year"])
        np.testing.assert_array_equal(series.to_numpy(), ref["y"])


# ---- acf ---------------------------------------------------------------------------------

@pytest.mark.parametrize("adjusted", [False, True])
def test_acf_equals_statsmodels(adjusted):
    stattools = pytest.importorskip("statsmodels.tsa.stattools")
    rng = np.random.default_rng(0)
    series = {
        "sunspots": datasets.sunspots(),
        "ar1": np.cumsum(rng.normal(size=500)) * 0.1 + rng.normal(size=500),
        "short": rng.normal(size=12),
    }
    for name, x in series.items():
        for nlags in (None, 1, 5, len(x) - 1):
            ours = acf(x, nlags=nlags, adjusted=adjusted)
            theirs = stattools.acf(np.asarray(x), nlags=nlags, adjusted=adjusted, fft=True)
            # statsmodels sums by FFT, we sum directly: both are exact to ~1e-15 of r_0 = 1,
            # so 1e-10 (the bar) leaves five orders of magnitude for rounding.
            np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-10, err_msg=f"{name} {nlags}")
    assert len(acf(datasets.sunspots())) == int(10 * np.log10(309)) + 1


def test_acf_by_definition():
    x = np.array([1.0, 3.0, 2.0, 5.0, 4.0])
    d = x - x.mean()
    r1 = (d[:-1] @ d[1:]) / (d @ d)
    np.testing.assert_allclose(acf(x, nlags=1), [1.0, r1], rtol=1e-15)


def test_acf_bad_input():
    with pytest.raises(ValueError, match=r"nlags must be an integer in \[0, 4\] for 5 observations, got 5"):
        acf(np.arange(5.0), nlags=5)
    with pytest.raises(ValueError, match=r"nlags must be an integer in \[0, 4\].*got -1"):
        acf(np.arange(5.0), nlags=-1)
    with pytest.raises(ValueError, match=r"x must hold finite numbers; found nan at position 2"):
        acf([1.0, 2.0, np.nan, 4.0])
    with pytest.raises(ValueError, match=r"found 'a' of type str at position 1"):
        acf([1.0, "a", 3.0])
    with pytest.raises(ValueError, match=r"x is constant"):
        acf(np.ones(10))
    with pytest.raises(ValueError, match=r"x must be one-dimensional, got shape \(3, 2\)"):
        acf(np.ones((3, 2)))


# ---- windows -----------------------------------------------------------------------------

@pytest.mark.parametrize("lags, horizon, stride", [(3, 1, 1), (4, 2, 1), (2, 3, 2), (5, 1, 3)])
def test_windows_match_a_loop(lags, horizon, stride):
    series = np.arange(20.0) ** 1.5
    x, y = windows(series, lags=lags, horizon=horizon, stride=stride)
    xs, ys = [], []
    start = 0
    while start + lags + horizon <= len(series):
        xs.append(series[start:start + lags])
        ys.append(series[start + lags:start + lags + horizon])
        start += stride
    np.testing.assert_array_equal(x, np.array(xs))
    np.testing.assert_array_equal(y, np.array(ys))
    assert x.shape == (len(xs), lags) and y.shape == (len(xs), horizon)


def test_windows_as_dataset_yields_the_same_arrays():
    series = datasets.sunspots()
    x, y = windows(series, lags=9, horizon=2)
    ds = windows(series, lags=9, horizon=2, as_dataset=True, batch_size=64)
    batches = list(ds.as_numpy_iterator())
    assert [len(b[0]) for b in batches[:-1]] == [64] * (len(batches) - 1)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)


def test_windows_bad_input():
    with pytest.raises(ValueError, match=r"series has 5 observations; need at least 6 \(lags \+ horizon = 4 \+ 2"):
        windows(np.arange(5.0), lags=4, horizon=2)
    for bad in (0, -1):
        with pytest.raises(ValueError, match=fr"lags must be an integer >= 1, got {bad}"):
            windows(np.arange(10.0), lags=bad)
    with pytest.raises(ValueError, match=r"horizon must be an integer >= 1, got 0"):
        windows(np.arange(10.0), lags=2, horizon=0)
    with pytest.raises(ValueError, match=r"found nan at position 3 \(index 1703\)"):
        windows(pd.Series([1.0, 2, 3, np.nan, 5], index=range(1700, 1705)), lags=2)
    with pytest.raises(ValueError, match=r"found 'b' of type str at position 1"):
        windows(pd.Series([1.0, "b", 3.0]), lags=1)
    with pytest.raises(ValueError, match=r"found True of type bool at position 0"):
        windows([True, False, True], lags=1)


# ---- splits and scaling ------------------------------------------------------------------

def test_chronological_split_keeps_time_order():
    x = np.arange(100)
    s = pd.Series(np.arange(100.0) * 2, index=range(1900, 2000))
    x_tr, x_va, x_te, s_tr, s_va, s_te = chronological_split(x, s, validation=0.2, test=10)
    np.testing.assert_array_equal(np.concatenate([x_tr, x_va, x_te]), x)
    assert (len(x_tr), len(x_va), len(x_te)) == (70, 20, 10)
    assert isinstance(s_te, pd.Series) and list(s_te.index) == list(range(1990, 2000))
    a_tr, a_va, a_te = chronological_split(x, validation=0.1, test=0.1, gap=2)
    assert (len(a_tr), len(a_va), len(a_te)) == (76, 10, 10)
    assert a_va[0] == a_tr[-1] + 3 and a_te[0] == a_va[-1] + 3
    with pytest.raises(ValueError, match=r"nothing left to train on: 10 samples"):
        chronological_split(np.arange(10), validation=0.5, test=0.5)
    with pytest.raises(ValueError, match=r"test must be a fraction in \[0, 1\) or a count, got 1.5"):
        chronological_split(np.arange(10), test=1.5)
    with pytest.raises(ValueError, match=r"same length, got lengths \[3, 4\]"):
        chronological_split(np.arange(3), np.arange(4))


def test_scaler_round_trip_and_errors():
    train = np.array([1.0, 2.0, 3.0, 4.0])
    std = Scaler().fit(train)
    np.testing.assert_allclose(std.transform(train), (train - 2.5) / np.std(train))
    np.testing.assert_allclose(std.inverse_transform(std.transform([7.0, -1.0])), [7.0, -1.0])
    mm = Scaler("minmax").fit(train)
    np.testing.assert_allclose(mm.transform(train), [0, 1 / 3, 2 / 3, 1])
    with pytest.raises(ValueError, match=r"not fitted yet"):
        Scaler().transform(train)
    with pytest.raises(ValueError, match=r"unknown scaling method 'robust'"):
        Scaler("robust")
    with pytest.raises(ValueError, match=r"constant data"):
        Scaler().fit([2.0, 2.0])
    restored = Scaler.from_config(mm.get_config())
    assert repr(restored) == repr(mm)
    np.testing.assert_array_equal(restored.transform([0.5, 9.0]), mm.transform([0.5, 9.0]))
    with pytest.raises(ValueError, match=r"not fitted yet"):
        Scaler.from_config(Scaler("minmax").get_config()).transform(train)


def test_supervised_split_fits_the_scaler_on_training_data_only():
    series = datasets.sunspots()
    data = supervised_split(series, lags=9, horizon=3, validation=0.15, test=0.15)
    n_windows = len(series) - 9 - 3 + 1
    gap = 2  # horizon - 1 windows between parts: no target is shared
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) + 2 * gap == n_windows
    # Training windows read and predict exactly the first train_end observations.
    assert data.train_end == len(data.x_train) - 1 + 9 + 3
    train_part = series.to_numpy()[: data.train_end]
    assert data.scaler.center_ == pytest.approx(train_part.mean(), rel=1e-14)
    assert data.scaler.scale_ == pytest.approx(train_part.std(), rel=1e-14)
    # Every target year of a later part comes after every training target year.
    assert data.index_val[0] > data.index_train[-1] + 2
    assert data.index_test[0] > data.index_val[-1] + 2
    np.testing.assert_allclose(
        data.scaler.inverse_transform(data.y_test[-1]), series.to_numpy()[-3:], rtol=1e-12)

    # No leakage: rewriting everything after the training part leaves training data alone.
    altered = series.copy()
    altered.iloc[data.train_end:] *= 100.0
    other = supervised_split(altered, lags=9, horizon=3, validation=0.15, test=0.15)
    assert other.scaler.center_ == data.scaler.center_
    np.testing.assert_array_equal(other.x_train, data.x_train)
    np.testing.assert_array_equal(other.y_train, data.y_train)
    assert not np.allclose(other.y_test, data.y_test)


# ---- padding and the synthetic labeling task ---------------------------------------------

def test_pad_sequences():
    seqs = [np.array([1.0, 2.0]), np.array([3.0, 4.0, 5.0])]
    x, y, lengths = pad_sequences(seqs, labels=[[0, 1], [1, 1, 0]], value=-9.0, label_value=0)
    assert x.shape == (2, 3, 1) and y.shape == (2, 3)
    np.testing.assert_array_equal(x[:, :, 0], [[1, 2, -9], [3, 4, 5]])
    np.testing.assert_array_equal(y, [[0, 1, 0], [1, 1, 0]])
    np.testing.assert_array_equal(step_mask(lengths, 3), [[1, 1, 0], [1, 1, 1]])
    with pytest.raises(ValueError, match=r"sequence 0 step 1 equals the padding value 2.0"):
        pad_sequences(seqs, value=2.0)
    with pytest.raises(ValueError, match=r"labels 1 must have shape \(3,\)"):
        pad_sequences(seqs, labels=[[0, 1], [1, 1]])
    with pytest.raises(ValueError, match=r"maxlen=2 is shorter than the longest sequence \(3 steps\)"):
        pad_sequences(seqs, maxlen=2)


def test_regime_switching_is_a_sticky_chain():
    seqs, labels = regime_switching(200, min_length=30, max_length=40, stay=0.9, noise=0.2, seed=1)
    lengths = np.array([len(s) for s in seqs])
    assert lengths.min() >= 30 and lengths.max() <= 40
    states = np.concatenate(labels)
    obs = np.concatenate(seqs)
    switches = np.concatenate([np.diff(lab) != 0 for lab in labels])
    # ~6900 transitions with P(switch) = 0.1: binomial sd 0.0036, so +-0.02 is > 5 sd.
    assert abs(switches.mean() - 0.1) < 0.02
    # Regime means -1 and +1 with noise sd 0.2 (sd of a mean of ~3500 draws: 0.004).
    np.testing.assert_allclose([obs[states == k].mean() for k in (0, 1)], [-1, 1], atol=0.02)
