# The two commands a fresh machine needs are `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test bench clean

setup:  ## create .venv with the working OpenMMLab stack (idempotent)
	bash scripts/install.sh

demo: setup  ## synth a sample, extract four modalities, train both heads, print a summary
	$(VENV)/bin/migue demo

test: setup  ## the whole test suite (the end-to-end tests included)
	$(PY) -m pytest

bench: setup  ## speed figures, printed side by side (see benchmarks/RESULTS.md)
	$(PY) benchmarks/demo_time.py
	$(PY) benchmarks/extract_speed.py --baseline --units 32 --modalities rgb,context,face
	$(PY) benchmarks/extract_speed.py --units 256 --videos 30 --modalities pose
	$(PY) benchmarks/train_speed.py
	$(PY) benchmarks/storage.py
	$(PY) benchmarks/ablation_scaling.py

clean:
	rm -rf $(VENV) migue-demo .pytest_cache
