"""Run the benchmarks: python -m benchmarks [NAME ...] [--quick]."""
import argparse
import importlib
import json
import os
import pkgutil
import platform
import sys
import time
from pathlib import Path

from bwkeras import atomic

HERE = Path(__file__).parent
# Run only when named: multinode needs root (it starts the cluster in a box).
OPT_IN = ("multinode",)


def available():
    return sorted(m.name[: -len("_bench")] for m in pkgutil.iter_modules([str(HERE)])
                  if m.name.endswith("_bench"))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {available()} "
                                                 f"but {', '.join(OPT_IN)}, which run when named)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args(argv)
    names = args.names or [n for n in available() if n not in OPT_IN]
    unknown = sorted(set(names) - set(available()))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; available: {available()}")
    (HERE / "results").mkdir(exist_ok=True)
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}_bench")
        started = time.time()
        print(f"== {name}", flush=True)
        result = module.run(quick=args.quick)
        result.setdefault("machine", {"platform": platform.platform(), "cpus": os.cpu_count(),
                                      "python": sys.version.split()[0]})
        result["seconds"] = round(time.time() - started, 1)
        out = HERE / "results" / f"{name}.json"
        atomic.write_json(out, result)  # a crashed benchmark never leaves half a result
        print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2, default=float)[:3000])
        print(f"-> {out.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
