"""Run the benchmarks: python -m benchmarks [NAME ...] [--quick] [--seed N] [--count N]
[--models mlp,lstm] [--profiles none,1gbit]."""
import argparse
import importlib
import inspect
import json
import os
import pkgutil
import platform
import sys
import time
from pathlib import Path

from bwkeras import atomic

HERE = Path(__file__).parent
# Run only when named: multinode needs root (it starts the cluster in a box); soak runs
# for about 20 minutes of deliberately faulted trainings.
OPT_IN = ("multinode", "soak")


def available():
    return sorted(m.name[: -len("_bench")] for m in pkgutil.iter_modules([str(HERE)])
                  if m.name.endswith("_bench"))


def _names(text):
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of names, got {text!r}")
    return names


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {available()} "
                                                 f"but {', '.join(OPT_IN)}, which run when named)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--seed", type=int, help="random seed (benchmarks that draw at random: soak)")
    parser.add_argument("--count", type=int, help="how many trials (soak)")
    parser.add_argument("--models", type=_names, help="comma-separated models to measure (overlap, multinode)")
    parser.add_argument("--profiles", type=_names, help="comma-separated link profiles (multinode, model_parallel): none, 10gbit, 1gbit")
    args = parser.parse_args(argv)
    if args.count is not None and args.count < 1:
        parser.error(f"--count must be >= 1, got {args.count}")
    names = args.names or [n for n in available() if n not in OPT_IN]
    unknown = sorted(set(names) - set(available()))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; available: {available()}")
    (HERE / "results").mkdir(exist_ok=True)
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}_bench")
        options = {k: v for k, v in (("seed", args.seed), ("count", args.count), ("models", args.models),
                                     ("profiles", args.profiles)) if v is not None}
        unknown = sorted(set(options) - set(inspect.signature(module.run).parameters))
        if unknown:
            parser.error(f"benchmark {name} takes no --{', --'.join(unknown)}")
        started = time.time()
        print(f"== {name}", flush=True)
        result = module.run(quick=args.quick, **options)
        result.setdefault("machine", {"platform": platform.platform(), "cpus": os.cpu_count(),
                                      "python": sys.version.split()[0]})
        result["seconds"] = round(time.time() - started, 1)
        out = HERE / "results" / f"{name}.json"
        atomic.write_json(out, result)  # a crashed benchmark never leaves half a result
        print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2, default=float)[:3000])
        print(f"-> {out.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
