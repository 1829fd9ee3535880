# The two commands: `make run` (the main job on the built-in synthetic data) and `make test`.
# `make train` trains the model once (no sweep).
# Both create .venv and install everything on first use; nothing else needs installing.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Where `make run` keeps its sweep folder; results/optim_loss holds the committed reference run.
RESULTS ?= results

.PHONY: setup system-deps test run train clean

setup: $(STAMP)

# Re-install only when the dependency list changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,schema]'
	# W&B's sweep-config schema lives in `sweeps` (what `wandb[sweeps]` adds). sweeps 0.3
	# declares numpy<2, which conflicts with TensorFlow 2.21 and pandas 3, yet its schema
	# check runs fine on numpy 2: install it without its declared dependencies (the light
	# ones the check imports are the `schema` extra above).
	$(BIN)/python -m pip install --quiet --no-deps 'sweeps>=0.2,<0.4'
	touch $(STAMP)

# Two pytest-xdist workers: much of the suite waits on Ray, subprocesses and timeouts rather
# than on a core (on a 2-core EPYC, 2026-12-05: 1012.74 s with one, 742.78 s with two).
TEST_WORKERS ?= 2

test: setup system-deps
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

# The dashboard's test loads `sweeper dashboard` in headless Chromium: Debian's package,
# installed here when missing (with sudo unless root), so `make test` needs nothing else.
system-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
	  echo "installing Debian's chromium for the dashboard test"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# The write-up's optimizer x loss grid on synthetic data (made on first use), then its report
# (ranking, verdict, plots; results/optim_loss/report.html). Re-running resumes from the
# ledger and runs only what is missing.
run: setup
	$(BIN)/sweeper run search_spaces/optim_loss.yaml --results-dir $(RESULTS)
	$(BIN)/sweeper report $(RESULTS)/optim_loss

train: setup
	$(BIN)/sweeper train --model-path models/deblur.keras

clean:
	rm -rf $(VENV) build *.egg-info
