# Two entry points do all set-up on a fresh machine:
#   make demo   creates .venv, installs jepaworld and the Fashion-MNIST Debian package, runs the embedded demo
#   make test   same set-up, then the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
STAMP  := $(VENV)/.installed

.PHONY: demo test test-sims lint format bench setup data clean

setup: $(STAMP) data

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and exactly pinned, so pip takes the local CPU wheel instead of a CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# Fashion-MNIST ships as a Debian package; install it when missing (needs root or passwordless sudo).
data:
	@if [ ! -f $(FMNIST) ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; \
	  elif sudo -n true 2>/dev/null; then sudo apt-get update -qq && sudo apt-get install -y -qq dataset-fashion-mnist; \
	  else echo "Fashion-MNIST missing: run 'sudo apt-get install dataset-fashion-mnist', then make again." >&2; exit 1; fi; \
	fi

demo: setup
	$(BIN)/jepaworld demo

test: setup
	$(BIN)/python -m pytest -q

# The optional simulators (PointMaze, PushT, dm_control reacher) are large; their tests skip without them.
test-sims: setup
	$(BIN)/pip install -q -e '.[pointmaze,pusht,reacher]'
	$(BIN)/python -m pytest -q tests/test_envs.py tests/test_planning.py

lint:
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format:
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

bench: setup
	$(BIN)/python benchmarks/ijepa_vs_mae.py

clean:
	rm -rf $(VENV) runs
