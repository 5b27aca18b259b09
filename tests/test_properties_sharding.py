"""Property-based tests of per-rank sharding (Hypothesis): every rank gets the same number
of samples (so the same number of steps: no rank waits in an allreduce its peers never
reach), the shards are disjoint, and together they cover every sample but the n % size
dropped from the end; (x, y) pairs stay together."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bwkeras.distributed.sharding import epoch_order, per_rank_batch, shard, unseen_share

QUICK = settings(max_examples=300, deadline=None)


@QUICK
@given(n=st.integers(1, 5000), size=st.integers(1, 64), batch=st.integers(1, 128))
def test_shards_are_equal_disjoint_and_cover_all_but_the_remainder(n, size, batch):
    data = np.arange(n)
    if n < size:
        with pytest.raises(ValueError, match="every rank needs at least one"):
            shard(data, rank=0, size=size)
        return
    parts = [shard(data, rank=r, size=size) for r in range(size)]
    lengths = {len(p) for p in parts}
    assert lengths == {n // size}
    steps = {-(-len(p) // batch) for p in parts}  # Keras' steps per epoch, partial batch too
    assert len(steps) == 1
    joined = np.concatenate(parts)
    assert len(np.unique(joined)) == len(joined)  # disjoint
    dropped = np.setdiff1d(data, joined)
    np.testing.assert_array_equal(dropped, np.arange(n - n % size, n))  # the tail, n % size


@QUICK
@given(n=st.integers(1, 500), size=st.integers(1, 16), data=st.data())
def test_tuples_dicts_and_pandas_are_sharded_alike(n, size, data):
    if n < size:
        return
    r = data.draw(st.integers(0, size - 1))
    x = np.arange(n) * 10
    y = pd.Series(np.arange(n), index=np.arange(n) + 1000)
    frame = pd.DataFrame({"a": np.arange(n)})
    xs, ys = shard((x, y), rank=r, size=size)
    np.testing.assert_array_equal(xs, ys.to_numpy() * 10)  # pairs kept together
    parts = shard({"x": x, "f": frame}, rank=r, size=size)
    np.testing.assert_array_equal(parts["x"], parts["f"]["a"].to_numpy() * 10)


@QUICK
@given(n=st.integers(1, 100), m=st.integers(1, 100), size=st.integers(1, 8))
def test_unequal_lengths_and_bad_ranks_are_value_errors(n, m, size):
    if n != m:
        with pytest.raises(ValueError, match="same length"):
            shard((np.zeros(n), np.zeros(m)), rank=0, size=size)
    with pytest.raises(ValueError, match="need 0 <= rank < size"):
        shard(np.zeros(n), rank=size, size=size)


@QUICK
@given(global_batch=st.integers(1, 4096), size=st.integers(1, 64))
def test_per_rank_batch_splits_exactly_or_refuses(global_batch, size):
    if global_batch % size or global_batch < size:
        with pytest.raises(ValueError):
            per_rank_batch(global_batch, size)
    else:
        assert per_rank_batch(global_batch, size) * size == global_batch


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 200), size=st.integers(1, 8))
def test_a_dataset_is_sharded_like_the_arrays(n, size):
    import tensorflow as tf

    if n < size:
        return
    ds = tf.data.Dataset.range(n)
    for r in range(size):
        got = [int(v) for v in shard(ds, rank=r, size=size)]
        np.testing.assert_array_equal(got, shard(np.arange(n), rank=r, size=size))


@QUICK
@given(n=st.integers(1, 3000), sizes=st.lists(st.integers(1, 16), min_size=1, max_size=4),
       batch=st.integers(1, 64), data=st.data())
def test_an_epoch_over_changing_worlds_trains_each_sample_at_most_once(n, sizes, batch, data):
    """An elastic epoch: each world trains some whole steps of its ranks' unseen shares
    (equal step counts), then the world changes; the samples trained are those the count
    `seen` names, never one twice, and only the last world's remainder (< its size) is left."""
    order = epoch_order(n, seed=data.draw(st.integers(0, 99)), epoch=data.draw(st.integers(0, 9)))
    seen, trained = 0, []
    for i, size in enumerate(sizes):
        parts = [unseen_share(order, seen, r, size) for r in range(size)]
        assert len({len(p) for p in parts}) == 1  # equal steps on every rank: no hang
        per = len(parts[0])
        if per == 0:  # fewer unseen samples than ranks: the epoch ends here
            break
        steps = -(-per // batch)
        k = steps if i == len(sizes) - 1 else data.draw(st.integers(0, steps))
        for step in range(k):  # the world's steps, each rank its next batch
            for p in parts:
                trained += list(p[step * batch:(step + 1) * batch])
        seen = min(seen + k * batch * size, seen + per * size)
        assert sorted(trained) == sorted(order[:seen])  # the count names what was trained
    assert len(set(trained)) == len(trained)
    assert n - seen < size  # left out: less than one sample per rank of the last world


def test_unseen_share_refuses_a_position_outside_the_epoch():
    with pytest.raises(ValueError, match="seen must be between 0 and 10"):
        unseen_share(np.arange(10), 11, 0, 2)
