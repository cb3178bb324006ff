# Two entry points (see README): `make study` and `make test`. Both create .venv when missing.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PROFILE ?= smoke
DATA   ?= data/synthetic-sysu
# runs at a time: on 2 CPU cores two one-thread runs beat one two-thread run (one per GPU on GPUs)
JOBS   ?= 2

.PHONY: study test install data book book-check lab lab-check kernel clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	.ci/install $(PY) -e '.[test]'   # uv where it installs, else pip (INSTALLER=pip: pip only)
	$(VENV)/bin/mace kernel install --sys-prefix >/dev/null   # the kernel the notebooks name (mace-study)
	@touch $(STAMP)

install: $(STAMP)

data: $(STAMP)
	$(VENV)/bin/mace study data --profile $(PROFILE) --data-root $(DATA)
	$(VENV)/bin/mace data check --dataset sysu --root $(DATA)
	$(VENV)/bin/mace data montage --root $(DATA) --out book/_static/synthetic_montage.png

# Runs what is missing (cached by params hash + code version), then builds the book and prints its index page.
study: data
	$(VENV)/bin/mace study run --profile $(PROFILE) --data-root $(DATA) --jobs $(JOBS)

# Rebuild the book (TOC, runs table, HTML) from what has been executed, without running anything.
book: $(STAMP)
	$(VENV)/bin/mace study book --profile $(PROFILE) --data-root $(DATA)

# Reads the built book in headless Chromium (installed from Debian's packages when missing): no page wider
# than the window at 1400 and 1024 px, no machine path, screenshots in book/_build/screenshots/.
book-check: $(STAMP)
	$(PY) -m mace_core.book.check --html book/_build/html --install

# JupyterLab on the project: notebooks/*.py open as notebooks with the mace-study kernel (README:
# "Working interactively"). `make kernel` registers that kernel in your own Jupyter folder (a JupyterHub).
lab: $(STAMP)
	$(VENV)/bin/mace lab

kernel: $(STAMP)
	$(VENV)/bin/mace kernel install --user

# Opens JupyterLab in headless Chromium with notebooks/00_baseline.py open; saves a screenshot.
lab-check: $(STAMP)
	$(PY) -m mace_core.jupyter.labcheck --install

# Fast tests first, so a failure shows within minutes; then the slow ones (@pytest.mark.slow: the
# ci study, trained once and shared through tests/conftest.py, notebooks, interrupted studies, learning
# runs). Each part prints its 25 slowest tests. Both run on TEST_WORKERS pytest-xdist workers (much of
# the slow part waits on kernels, Slurm and subprocesses); loadgroup keeps the tests that share a
# module's or the session's expensive set-up on one worker (tests/conftest.py). TEST_WORKERS=0: serial.
TEST_WORKERS ?= 2
XDIST := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder)
test: $(STAMP)
	$(PY) -m pytest -q --durations=25 $(XDIST) -m "not slow"
	$(PY) -m pytest -q --durations=25 $(XDIST) -m slow

clean:
	rm -rf runs book/_build book/generated
