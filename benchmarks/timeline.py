"""How much of the gradient exchange ran while backprop was still computing, read from a
Horovod timeline (HOROVOD_TIMELINE / horovodrun --timeline-filename, written by rank 0).

The timeline is a Chrome trace: one "process" (pid) per tensor, named after its op; for
every exchange of that tensor a NEGOTIATE_ALLREDUCE phase (from the first rank's request
to the moment every rank has asked: all their inputs exist) and an ALLREDUCE phase (the
exchange itself). The k-th exchange of every gradient tensor belongs to step k.

Per step:
- the exchange is the union of the ALLREDUCE phases of the step's gradient tensors
  (tensors fused into one buffer share their interval: a union, not a sum);
- backprop ends when the last gradient exists on every rank: the latest end of the
  step's negotiations (no tensor can be negotiated before its gradient is computed);
- the overlap is the part of the exchange before that moment, over the whole exchange.
One grouped allreduce after backprop can only start once every gradient exists, so its
overlap is 0 by construction; buckets let the first ones run during backprop.
"""
import json
import statistics


def load(path):
    """The events of a timeline file. Horovod writes it as it goes and may leave the
    closing bracket out (a job that ended abruptly): both are read."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read().strip().rstrip(",")
    if not text.endswith("]"):
        text += "]"
    return json.loads(text)


def _phases(events):
    """{pid: [(name, begin, end), ...]} from the B/E pairs (nested per pid)."""
    open_, out = {}, {}
    for e in events:
        if e.get("ph") == "B":
            open_.setdefault(e["pid"], []).append((e["name"], e["ts"]))
        elif e.get("ph") == "E" and open_.get(e["pid"]):
            name, begin = open_[e["pid"]].pop()
            out.setdefault(e["pid"], []).append((name, begin, e["ts"]))
    return out


def _union(intervals):
    total, end = 0.0, None
    for b, e in sorted(intervals):
        if end is None or b > end:
            total += e - b
            end = e
        elif e > end:
            total += e - end
            end = e
    return total


def _clipped(intervals, limit):
    return [(b, min(e, limit)) for b, e in intervals if b < limit]


def overlap(events, skip=3):
    """{"steps", "overlap" (median fraction), "overlap_min", "overlap_max", "exchange_ms",
    "tensors"} over the steps after the first `skip` (tracing, first collectives)."""
    names = {e["pid"]: e["args"]["name"] for e in events
             if e.get("name") == "process_name" and "name" in e.get("args", {})}
    grads = [pid for pid, name in names.items() if "grad" in name.lower()]
    phases = _phases(events)
    per_tensor = {pid: ([(b, e) for n, b, e in phases.get(pid, []) if n == "NEGOTIATE_ALLREDUCE"],
                        [(b, e) for n, b, e in phases.get(pid, []) if n == "ALLREDUCE"])
                  for pid in grads}
    steps = min((min(len(neg), len(red)) for neg, red in per_tensor.values()), default=0)
    fractions, exchange = [], []
    for k in range(skip, steps):
        backprop_end = max(neg[k][1] for neg, _ in per_tensor.values())
        reduce = [red[k] for _, red in per_tensor.values()]
        whole = _union(reduce)
        if whole <= 0:
            continue
        fractions.append(_union(_clipped(reduce, backprop_end)) / whole)
        exchange.append(whole / 1000.0)
    if not fractions:
        raise ValueError(f"the timeline has no step of gradient exchanges after the first {skip} "
                         f"(gradient tensors found: {len(grads)})")
    return {"steps": len(fractions), "overlap": statistics.median(fractions),
            "overlap_min": min(fractions), "overlap_max": max(fractions),
            "exchange_ms": statistics.median(exchange), "tensors": len(grads)}
