# policyfit — the two commands a new user needs:
#   make quickstart   create .venv, install, run the quickstart demo
#   make test         create/update .venv with the test extra, run the test suite
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.install-stamp
PYTEST_WORKERS ?= 2

.PHONY: install install-pref quickstart test lint format clean bench bench-venv bench-venv-obp

install: $(STAMP)

# Re-installs only when pyproject.toml changed (or the venv is new): fast when nothing changed.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,ray,export,serve,tensorboard,maze,pref]"
	@touch $(STAMP)

# The preference extra alone (policyfit pref ...): torch 2.13.0 (CPU), transformers, trl 1.16.0,
# datasets, tokenizers. `make install` includes it, so `make test` runs tests/pref.
install-pref:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[pref]"

quickstart: install
	$(BIN)/policyfit quickstart

# --dist worksteal: an idle worker takes queued tests from the busy one, so a long test near the
# end does not leave the other worker idle (the suite is ~1,100 tests of 0.1 s to 40 s)
test: install
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist worksteal --durations=15 tests

# ruff (style, mccabe complexity <= 12), then import-linter: the layer contracts in pyproject.toml
# (every import runs downward; no cycles inside a package). A new upward import fails here.
lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	PYTHONPATH=src $(BIN)/lint-imports --no-logo

format: install
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

# d3rlpy (the throughput and time-to-score baselines) in its own environment: it pins
# gymnasium==1.0.0 and needs PyTorch; torch==2.13.0 is the CPU build available on this machine.
BENCH_VENV := benchmarks/.venv-d3rlpy
bench-venv: $(BENCH_VENV)/.install-stamp

$(BENCH_VENV)/.install-stamp:
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet torch==2.13.0 d3rlpy mujoco imageio
	@touch $@

# Open Bandit Pipeline 0.5.7 (the OPE parity baseline, benchmarks/obp_parity.py) in its own
# environment: its metadata pins Python < 3.11 and old numpy/torch, so it goes in without deps.
OBP_VENV := benchmarks/.venv-obp
bench-venv-obp: $(OBP_VENV)/.install-stamp

$(OBP_VENV)/.install-stamp:
	@test -x $(OBP_VENV)/bin/python || $(PYTHON) -m venv $(OBP_VENV)
	$(OBP_VENV)/bin/python -m pip install --quiet torch==2.13.0 scikit-learn pandas scipy tqdm matplotlib seaborn pyyaml
	$(OBP_VENV)/bin/python -m pip install --quiet --no-deps --ignore-requires-python obp==0.5.7
	@touch $@

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
