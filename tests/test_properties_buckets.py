"""Property-based tests of the gradient buckets (Hypothesis): every gradient is in exactly
one bucket, buckets follow backprop's order (last variable first), and each bucket but
the last closes on the first gradient that brings it to the size: no bucket is bigger
than it needs to be, none (but the last) smaller."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bwkeras.distributed.optimizer import buckets

QUICK = settings(max_examples=300, deadline=None)


@QUICK
@given(sizes=st.lists(st.integers(0, 5000), max_size=40), cap=st.one_of(st.none(), st.integers(1, 8000)))
def test_buckets_cover_every_gradient_once_in_backprop_order_and_close_at_the_size(sizes, cap):
    groups = buckets(sizes, cap)
    flat = [i for g in groups for i in g]
    assert flat == list(reversed(range(len(sizes))))       # each once, last variable first
    assert all(groups)                                      # no empty bucket
    if cap is None:
        assert len(groups) == (1 if sizes else 0)
        return
    for g in groups[:-1]:
        assert sum(sizes[i] for i in g) >= cap              # full ...
        assert sum(sizes[i] for i in g[:-1]) < cap          # ... by its last gradient only
    if groups:
        assert sum(sizes[i] for i in groups[-1][:-1]) < cap


def test_the_mlp_of_the_benchmarks_goes_in_two_buckets_at_the_default_size():
    # 784-512-512-10 float32: kernels and biases in the model's order
    from bwkeras.distributed.optimizer import DEFAULT_BUCKET_BYTES

    sizes = [784 * 512 * 4, 512 * 4, 512 * 512 * 4, 512 * 4, 512 * 10 * 4, 10 * 4]
    assert buckets(sizes, DEFAULT_BUCKET_BYTES) == [[5, 4, 3, 2], [1, 0]]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "1MB"])
def test_a_bad_bucket_size_is_named(bad):
    import keras

    from bwkeras import distributed as dist

    with pytest.raises(ValueError, match=f"bucket_bytes must be an integer >= 1 .*got {bad!r}"):
        dist.DistributedOptimizer(keras.optimizers.SGD(0.1), bucket_bytes=bad)
