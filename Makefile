# The README's two commands: `make lab` and `make test`. Both set up .venv idempotently.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The CPU build installs from a local wheel on our machines; users may override (e.g. TORCH=torch).
TORCH  ?= torch==2.13.0
CHROMIUM ?= /usr/bin/chromium
# `make test` runs in TEST_WORKERS processes (pytest-xdist; --dist loadscope keeps each notebook's
# cells, and each test module, in one process), one torch thread each so they do not fight for cores.
TEST_WORKERS ?= 2
TEST_ENV ?= OMP_NUM_THREADS=1

.PHONY: lab test test-fast widgets widgets-check clean-venv course site

$(PY):
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "mechscope needs Python >= 3.10, this is " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Torch first: an unpinned torch pulled in by a dependency would bring GBs of CUDA packages.
$(VENV)/.torch: | $(PY)
	$(PY) -c 'import torch' 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH)"
	@touch $@

$(VENV)/.lab: pyproject.toml $(VENV)/.torch
	$(PY) -m pip install --quiet -e ".[lab]"
	@touch $@

$(VENV)/.dev: pyproject.toml $(VENV)/.torch
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $@

# Jupyter refuses to run as root without --allow-root (containers, classroom VMs).
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: $(VENV)/.lab
	$(VENV)/bin/jupyter lab $(ROOT_FLAG) notebooks/

# A browser for the browser tier: Debian's chromium where installed, else Playwright's own.
$(VENV)/.browser: $(VENV)/.dev
	@if [ -x "$(CHROMIUM)" ]; then echo "browser: $(CHROMIUM)"; \
	else $(PY) -m playwright install chromium; fi
	@touch $@

test: $(VENV)/.dev $(VENV)/.browser
	@$(MAKE) --no-print-directory widgets-check
	$(PY) -m ruff check src tests bench tools
	$(PY) -m ruff format --check src tests bench tools
	$(TEST_ENV) $(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope tests notebooks --nbval-lax -p no:cacheprovider

# Unit tests only (seconds): no notebooks, no browser.
test-fast: $(VENV)/.dev
	$(PY) -m pytest tests/unit -q

# The student and instructor editions of notebooks/ (course/student, course/instructor).
course: $(VENV)/.lab
	$(PY) -m mechscope.course build

# The course site (tutorials executed, widgets live, teaching guide), offline, into site/.
site: $(VENV)/.dev
	$(PY) -m mechscope.publish.site -o site

widgets:
	cd widgets && npm ci --no-audit --no-fund && npm run build

# The committed bundles must equal a fresh build. Needs node/npm; without them this fails
# under CI and is reported (not silently passed) on a user's machine.
widgets-check:
	@if command -v npm >/dev/null 2>&1; then \
		cd widgets && npm ci --no-audit --no-fund --silent && npm run --silent check && npm test --silent; \
	elif [ -n "$$CI" ]; then echo "widgets-check: npm not found (CI requires node/npm)"; exit 1; \
	else echo "widgets-check: npm not found, skipping the bundle check (install node to run it)"; fi

clean-venv:
	rm -rf $(VENV)
