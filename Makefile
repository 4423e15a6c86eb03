# The two commands a fresh machine needs are `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

# pytest on 2 xdist workers (loadscope; tests/conftest.py keeps each module, and all Dask tests, on one
# worker), the 25 slowest tests printed; every test has a time limit (pyproject.toml: timeout).
PYTEST_ARGS ?= -n 2 --dist loadscope --durations=25

.PHONY: setup demo test test-fast bench clean

setup:  ## create .venv with the working OpenMMLab stack (idempotent)
	bash scripts/install.sh

demo: setup  ## synth a sample, extract four modalities, train both heads, print a summary
	$(VENV)/bin/migue demo

test: setup  ## the whole test suite (the end-to-end tests included): what CI runs
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup  ## the edit-run loop: everything but the tests marked slow
	$(PY) -m pytest $(PYTEST_ARGS) -m "not slow"

bench: setup  ## speed figures, printed side by side (see benchmarks/RESULTS.md)
	$(PY) benchmarks/demo_time.py
	$(PY) benchmarks/extract_speed.py --baseline --units 32 --modalities rgb,context,face
	$(PY) benchmarks/extract_speed.py --units 256 --videos 30 --modalities pose
	$(PY) benchmarks/train_speed.py
	$(PY) benchmarks/storage.py
	$(PY) benchmarks/ablation_scaling.py

clean:
	rm -rf $(VENV) migue-demo .pytest_cache
