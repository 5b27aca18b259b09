"""The host-side collectives bwkeras.distributed offers, under real launchers: object
broadcast, all-ranks agreement on errors, and a barrier that waits for every rank."""
import pytest

from launch import check, read_outputs, run_script

JOB = """
import json, os, time
from bwkeras import distributed as dist
dist.init()
r = dist.rank()
out = {"object": dist.broadcast_object({"from": r, "list": [r] * 3})}
# agree: rank 1 fails alone, every rank raises
try:
    dist.agree(ValueError("bad shard") if r == 1 else None)
    out["agree"] = "passed"
except ValueError as exc:
    out["agree"] = str(exc)
out["agreed"] = dist.agreed(lambda: r * 10)
# barrier: rank 0 arrives 1.5 s late; nobody leaves before it arrives
if r == 0:
    time.sleep(1.5)
arrived = time.time()
dist.barrier()
out["left"], out["arrived"] = time.time(), arrived
json.dump(out, open(os.path.join(os.environ["OUT_DIR"], f"rank{r}.json"), "w"))
"""


@pytest.mark.launcher
@pytest.mark.parametrize("launcher", ["horovodrun", "mpirun"])
def test_object_broadcast_agreement_and_barrier(tmp_path, launcher):
    outs = read_outputs(check(run_script(tmp_path, JOB, np=2, launcher=launcher, timeout=120)), 2)
    assert [o["object"] for o in outs] == [{"from": 0, "list": [0, 0, 0]}] * 2
    assert outs[1]["agree"] == "bad shard"                 # the failing rank: its own error
    assert outs[0]["agree"] == "rank 1 of 2 failed: bad shard"
    assert [o["agreed"] for o in outs] == [0, 10]
    late = outs[0]["arrived"]
    assert outs[1]["arrived"] < late - 1.0               # rank 1 really came first
    assert all(o["left"] >= late - 0.05 for o in outs)   # and waited (clocks: one host)
