# The README's contract:  make demo  |  make test  [STACK=keras3|keras2]
STACK ?= keras3
ifeq ($(STACK),keras3)
VENV ?= .venv
else
VENV ?= .venv-$(STACK)
endif
PY := $(VENV)/bin/python
NP ?= 2
PYTEST_ARGS ?=
# pytest-xdist workers; TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= 2

# bash with pipefail: a recipe's failure is not hidden by the filter that follows it.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
# horovodrun tags every line with "[rank]<stdout>:"; the demo shows rank 0's output plainly.
UNTAG := sed -u -e 's/^\[[0-9]*\]<std\(out\|err\)>://'

.PHONY: setup demo test bench cluster cluster-down clean

setup:
	@bash tools/setup_venv.sh $(STACK) $(VENV)

demo: setup
	TF_CPP_MIN_LOG_LEVEL=2 $(VENV)/bin/horovodrun -np $(NP) --gloo -H localhost:$(NP) $(PY) recipes/sunspots.py $(DEMO_ARGS) 2>&1 | $(UNTAG)

test: setup
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

bench: setup
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m benchmarks

# A cluster in a box on this machine (root): NODES hosts in network namespaces with sshd
# and Slurm across them (tests/cluster.py); `make cluster-down` removes all of it.
NODES ?= 2
cluster: setup
	$(PY) -m tests.cluster up --nodes $(NODES) --slurm

cluster-down:
	python3 -m tests.cluster down

clean:
	rm -rf .venv .venv-keras2 build *.egg-info .pytest_cache
