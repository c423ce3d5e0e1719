# The two commands a new machine needs: `make demo` (the main job) and `make test`.
# Both create the virtual environment on first use and reinstall when pyproject.toml changes.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: demo test test-fast lint format bench clean-registry

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch is pinned in the same step as the rest so nothing pulls another (CUDA) build.
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0 -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m transferlab.demo

# Every tier: tests and the notebooks (nbval), real MiniLM, training, browser, GPU where present.
# One pytest-xdist worker per core (at most 4), each test file on one worker (its module
# fixtures built once), torch one thread per worker: two workers on 2 cores take about 2/3 of
# the time one worker with two torch threads takes (most tests start kernels and processes,
# which one thread cannot share out), and no worker's training starves the other's.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)
test: $(STAMP) lint
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \
		$(BIN)/python -m pytest -q --durations=15 -n $(TEST_WORKERS) --dist loadfile \
		tests templates notebooks --nbval-lax

# The inner loop (about 2 minutes on 2 busy cores): no real pre-trained weights, nothing trained, no
# template or notebook run, no browser, no GPU (markers in pyproject.toml).
FAST := not real_model and not training and not browser and not gpu and not slow
test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -q --durations=10 -m "$(FAST)" tests

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/registry_bench.py
