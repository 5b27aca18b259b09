"""Property-based tests of checkpoint index handling (Hypothesis): for any sequence of
saves and any damage to the files, `latest` returns the newest checkpoint that is still
intact, or raises CheckpointError, never anything else, and never a damaged file when
the index vouches for the checksums; read_index takes any JSON and returns entries or a
ValueError."""
import json
import os
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bwkeras import checkpoints

QUICK = settings(max_examples=80, deadline=None)


class Stub:
    """Saves a small zip archive, as model.save writes a .keras file."""

    def __init__(self, payload):
        self.payload = payload

    def save(self, path):
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("weights.bin", self.payload)


damage = st.sampled_from(["none", "truncate", "empty", "flip", "delete"])
index_damage = st.sampled_from(["none", "delete", "truncate", "garbage", "outside", "epoch"])


def _damage_file(path, how, rnd):
    data = path.read_bytes() if path.exists() else b""
    if how == "truncate":
        path.write_bytes(data[: rnd.randrange(len(data))])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "flip":
        data = bytearray(data)
        data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
        path.write_bytes(bytes(data))
    elif how == "delete":
        path.unlink()


def _damage_index(path, how):
    if how == "delete":
        path.unlink()
    elif how == "truncate":
        path.write_text(path.read_text()[:15])
    elif how == "garbage":
        path.write_text('{"epoch": "x"}')
    elif how == "outside":
        path.write_text(json.dumps({"epoch": 1, "file": "../../epoch-0001.keras"}))
    elif how == "epoch":
        state = json.loads(path.read_text())
        state["epoch"] = 10 ** 6
        path.write_text(json.dumps(state))


@QUICK
@given(epochs=st.lists(st.integers(1, 20000), min_size=1, max_size=6, unique=True).map(sorted),
       keep=st.integers(1, 4), damages=st.lists(damage, min_size=6, max_size=6),
       index_how=index_damage, seed=st.integers(0, 2 ** 32 - 1))
def test_latest_is_the_newest_intact_checkpoint_or_an_error(epochs, keep, damages, index_how, seed):
    import random

    rnd = random.Random(seed)
    root = tempfile.mkdtemp()
    try:
        folder = checkpoints.directory(root)
        for epoch in epochs:
            checkpoints.save(Stub(os.urandom(64) * 4), folder, epoch, keep=keep)
        kept = epochs[-keep:]
        names = sorted(n for n in os.listdir(folder) if n.endswith(".keras"))
        assert names == sorted(f"epoch-{e:04d}.keras" for e in kept)  # numeric pruning
        damaged = set()
        for epoch, how in zip(kept, damages):
            path = os.path.join(folder, f"epoch-{epoch:04d}.keras")
            before = Path(path).read_bytes()
            _damage_file(Path(path), how, rnd)
            if how != "none" and (not os.path.exists(path) or Path(path).read_bytes() != before):
                damaged.add(epoch)
        _damage_index(Path(folder) / checkpoints.LATEST, index_how)
        intact = [e for e in kept if e not in damaged]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", checkpoints.CheckpointWarning)
            try:
                found = checkpoints.latest(root)
            except checkpoints.CheckpointError:
                found = None
        if index_how == "none":
            # the index's checksums catch every damage: exactly the newest intact one
            assert (found[0] if found else None) == (max(intact) if intact else None)
        else:
            # rebuilt from the files by their zip CRCs: a flip in a header field may pass,
            # so the answer is a kept epoch at least as new as the newest intact one
            if intact:
                assert found is not None and found[0] in kept and found[0] >= max(intact)
        if found is not None:
            assert os.path.dirname(found[1]) == folder
    finally:
        shutil.rmtree(root)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.sampled_from(["epoch", "file", "sha256",
                                                                "checkpoints", "x"]),
                                               children, max_size=5)),
    max_leaves=15)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_read_index_takes_any_json_and_returns_entries_or_a_value_error(value):
    folder = tempfile.mkdtemp()
    try:
        with open(os.path.join(folder, checkpoints.LATEST), "w") as fh:
            json.dump(value, fh)
        try:
            entries = checkpoints.read_index(folder)
        except ValueError:
            return
        assert entries and all(checkpoints._FILE.fullmatch(e["file"]) for e in entries)
        assert [e["epoch"] for e in entries] == sorted({e["epoch"] for e in entries}, reverse=True)
    finally:
        shutil.rmtree(folder)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_read_index_takes_any_bytes(data):
    folder = tempfile.mkdtemp()
    try:
        with open(os.path.join(folder, checkpoints.LATEST), "wb") as fh:
            fh.write(data)
        try:
            checkpoints.read_index(folder)
        except ValueError:
            pass
    finally:
        shutil.rmtree(folder)


def test_a_valid_index_is_read():
    """The control: read_index accepts what save writes."""
    folder = tempfile.mkdtemp()
    try:
        checkpoints.save(Stub(b"w"), folder, 3, keep=2)
        assert [e["epoch"] for e in checkpoints.read_index(folder)] == [3]
    finally:
        shutil.rmtree(folder)
