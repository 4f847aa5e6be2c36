# The two set-up commands of the README: `make demo` and `make test`.
# Both create (or reuse) the virtual environment in $(VENV) and install what they need.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stgraph-installed

.PHONY: demo test bench

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# Pinned first: an unpinned torch would pull several GB of CUDA packages.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/stgraph demo

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	# The benchmark scripts, not their shared helpers (benchmarks/_*.py), from the root.
	for b in benchmarks/[a-z]*.py; do PYTHONPATH=. $(PY) $$b || exit 1; done
