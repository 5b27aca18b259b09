"""Side-by-side measurements; results as JSON in benchmarks/results/.

Each module here named `*_bench.py` defines `run(quick: bool) -> dict` and is run by
`python -m benchmarks [NAME ...] [--quick]` (`make bench`). A result holds ratios
against a peer measured in the same run, never absolute timings alone: the machines
are shared and noisy.
"""
