"""One rank of the allreduce benchmark: time Horovod's allreduce of float32 tensors.

    <launcher> python benchmarks/allreduce_worker.py OUT_FILE SIZE_BYTES...

Each size is reduced a few times untimed (negotiation, response cache), then timed call by
call; rank 0 writes {"ranks", "sizes": [{"bytes", "seconds": [...]}]} to OUT_FILE.
"""
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from bwkeras import distributed as dist  # noqa: E402


def repeats(nbytes):
    """About 0.2 s of work at 1 GB/s per size, within [5, 50] calls."""
    return int(min(50, max(5, 2e8 / max(nbytes, 1) / 1e3)))


def main(out_file, sizes):
    hvd = dist.horovod(required=True)
    rows = []
    for nbytes in sizes:
        tensor = tf.ones([max(nbytes // 4, 1)], dtype=tf.float32)
        name = f"bench.{nbytes}"
        for _ in range(3):
            hvd.allreduce(tensor, op=hvd.Sum, name=name).numpy()
        seconds = []
        for _ in range(repeats(nbytes)):
            started = time.perf_counter()
            hvd.allreduce(tensor, op=hvd.Sum, name=name).numpy()  # .numpy(): wait for the result
            seconds.append(time.perf_counter() - started)
        rows.append({"bytes": int(tensor.shape[0]) * 4, "seconds": seconds})
    if dist.rank() == 0:
        with open(out_file, "w") as f:
            json.dump({"ranks": dist.size(), "sizes": rows}, f)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], [int(s) for s in sys.argv[2:]])
