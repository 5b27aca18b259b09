"""Model parallelism in one process: the d x k layout, shards of full arrays, shard
initializers, the sharded layers at k = 1 against Keras' own, and bad input."""
import numpy as np
import pytest

import keras
from bwkeras import models
from bwkeras.distributed import model_parallel as mp
from bwkeras.parallel import (ColumnParallelDense, RowParallelDense, ShardedGRU, ShardedLSTM,
                              ShardedSimpleRNN)
from bwkeras.parallel.initializers import shard_initializer

KERAS2 = keras.__version__.startswith("2.")
# The sharded layers are written with keras.ops and Keras 3's layer API; on Keras 2 the
# models refuse model_parallel > 1 with a message that says so (tested below).
needs_keras3 = pytest.mark.skipif(KERAS2, reason="model parallelism needs Keras 3")


def test_groups_of_a_two_by_two_layout():
    model, data = mp.group_ranks(4, 2)
    assert model == [(0, 1), (2, 3)] and data == [(0, 2), (1, 3)]
    # Every group of 2 of 4 ranks needs a process set; none is the global one.
    assert mp.process_set_ranks(4, 2) == [[0, 1], [2, 3], [0, 2], [1, 3]]


@pytest.mark.parametrize("world,k", [(2, 2), (2, 1), (1, 1), (4, 4), (4, 1)])
def test_one_dimensional_layouts_need_no_process_set(world, k):
    # k == N: the model group is every rank (Horovod's global set), data groups single
    # ranks; k == 1: the reverse.
    assert mp.process_set_ranks(world, k) == []


@pytest.mark.parametrize("world,k", [(6, 2), (6, 3), (8, 4)])
def test_each_rank_is_in_one_model_group_and_one_data_group(world, k):
    model, data = mp.group_ranks(world, k)
    assert sorted(r for g in model for r in g) == list(range(world))
    assert sorted(r for g in data for r in g) == list(range(world))
    for rank in range(world):
        layout = mp.Layout(world=world, k=k, rank=rank)
        assert layout.model_ranks in model and layout.data_ranks in data
        assert layout.model_ranks[layout.shard] == rank
        assert layout.data_ranks[layout.data_index] == rank
        # the data group holds the same shard in every model group
        assert {r % k for r in layout.data_ranks} == {layout.shard}


@pytest.mark.parametrize("blocks", [1, 3, 4])
def test_shards_join_back_to_the_full_array(blocks):
    full = np.arange(3 * 72, dtype=np.float32).reshape(3, 72)
    for k in (1, 2, 3):
        pieces = [mp.split_shard(full, 1, k, s, blocks) for s in range(k)]
        assert all(p.shape == (3, 72 // k) for p in pieces)
        np.testing.assert_array_equal(mp.join_shards(pieces, 1, blocks), full)
    # with 4 gate blocks of 6, shard 1 of 2 holds columns 3-5 of every gate
    gates = np.arange(24)
    assert list(mp.split_shard(gates, 0, 2, 1, 4)) == [3, 4, 5, 9, 10, 11, 15, 16, 17, 21, 22, 23]


def test_bad_model_parallel_values_name_the_value_and_what_is_allowed():
    with pytest.raises(ValueError, match=r"model_parallel=3 must divide the number of ranks, got "
                                         r"4 ranks; allowed: \[1, 2, 4\]"):
        mp.check_model_parallel(3, 4)
    with pytest.raises(ValueError, match=r"model_parallel must be an integer >= 1.*got 0"):
        mp.check_model_parallel(0, 4)
    with pytest.raises(ValueError, match=r"model_parallel must be an integer >= 1.*got 2.0"):
        mp.check_model_parallel(2.0, 4)
    with pytest.raises(ValueError, match=r"model_parallel=2 needs 2 ranks.*world size 1.*must be 1 "
                                         r"without a launcher"):
        mp.check_model_parallel(2, 1)
    assert mp.check_model_parallel(2, 4) == 2


def test_models_refuse_model_parallelism_without_a_launcher_or_on_keras2():
    expected = ("model_parallel=2 needs Keras 3 .*this is Keras 2.*use model_parallel=1" if KERAS2
                else "model_parallel=2 needs 2 ranks.*without a launcher")
    for make in (lambda: models.MLP(hidden_units=(8,), model_parallel=2),
                 lambda: models.RecurrentForecaster(units=8, model_parallel=2),
                 lambda: models.SequenceLabeler(units=8, model_parallel=2)):
        with pytest.raises(ValueError, match=expected):
            make()


def test_models_refuse_units_that_k_does_not_divide():
    with pytest.raises(ValueError, match=r"hidden_units\[0\]=5 must be divisible by "
                                         r"model_parallel=2.*e\.g\. 6"):
        models.MLP(hidden_units=(5, 3), model_parallel=2)
    # hidden_units[1] is row-parallel (its inputs are split, its outputs whole): any width
    with pytest.raises(ValueError, match=r"hidden_units\[2\]=7 must be divisible by model_parallel=2"):
        models.MLP(hidden_units=(4, 3, 7), model_parallel=2)
    with pytest.raises(ValueError, match=r"units=10 must be divisible by model_parallel=4"):
        models.RecurrentForecaster(units=10, model_parallel=4)
    with pytest.raises(ValueError, match=r"units=9 must be divisible by model_parallel=2"):
        models.SequenceLabeler(units=9, model_parallel=2)
    with pytest.raises(ValueError, match=r"units=9 must be divisible by model_parallel=2"):
        ColumnParallelDense(9, model_parallel=2)


@needs_keras3
def test_parallel_layers_at_k1_are_keras_layers():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 6)).astype("float32")
    col, row = ColumnParallelDense(8, activation="relu"), RowParallelDense(3)
    y = row(col(x))
    d1, d2 = keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)
    d2(d1(x))
    d1.set_weights(col.get_weights())
    d2.set_weights(row.get_weights())
    np.testing.assert_array_equal(d2(d1(x)), y)
    for layer in (col, row):
        clone = type(layer).from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()


@needs_keras3
@pytest.mark.parametrize("ours,theirs", [(ShardedLSTM, keras.layers.LSTM),
                                         (ShardedGRU, keras.layers.GRU),
                                         (ShardedSimpleRNN, keras.layers.SimpleRNN)])
def test_sharded_recurrent_layers_at_k1_are_keras_layers(ours, theirs):
    x = np.random.default_rng(2).normal(size=(3, 5, 2)).astype("float32")
    x[0, 3:] = 0.0  # masked steps
    mask = np.any(x != 0, axis=-1)
    layer, keras_layer = ours(6, return_sequences=True), theirs(6, return_sequences=True)
    layer(x)
    keras_layer(x)
    assert [tuple(w.shape) for w in layer.weights] == [tuple(w.shape) for w in keras_layer.weights]
    keras_layer.set_weights(layer.get_weights())
    np.testing.assert_array_equal(layer(x, mask=mask), keras_layer(x, mask=mask))
    clone = ours.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    # Bidirectional builds its backward copy from the config
    keras.layers.Bidirectional(ours(4, return_sequences=True))(x)


@needs_keras3
def test_shard_initializers_keep_the_full_weights_statistics_with_distinct_shards():
    full_shape, k = (512, 1024), 4
    glorot = keras.initializers.GlorotUniform(seed=3)
    shards = [np.asarray(shard_initializer(glorot, full_shape, 1, k, s)((512, 256)))
              for s in range(k)]
    whole = np.asarray(glorot(full_shape))
    limit = np.sqrt(6.0 / (512 + 1024))
    for s in shards:
        assert np.abs(s).max() <= limit
        # uniform(-limit, limit) has variance limit^2/3; 131072 draws give the sample
        # variance to ~0.4 %: 3 % is far outside chance and far inside a wrong fan (x1.6)
        assert abs(s.var() / whole.var() - 1) < 0.03
    for a in range(k):
        for b in range(a + 1, k):
            assert not np.allclose(shards[a], shards[b])
    # an initializer that needs the whole matrix is drawn whole and sliced: exact
    orth = keras.initializers.Orthogonal(seed=4)
    part = np.asarray(shard_initializer(orth, (8, 16), 1, 2, 1, blocks=4)((8, 8)))
    np.testing.assert_array_equal(part, mp.split_shard(np.asarray(orth((8, 16))), 1, 2, 1, 4))


def test_plain_models_record_model_parallel_and_save_as_before(tmp_path):
    m = models.RecurrentForecaster(cell="gru", units=4, model_parallel=1)
    x = np.zeros((2, 5, 1), "float32")
    m(x)
    assert m.get_config()["model_parallel"] == 1
    m.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded(x), m(x))
