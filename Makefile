# Two commands do all set-up on a fresh machine:
#   make demo   - virtualenv + pinned dependencies + eoembed, then the demo workflow
#   make test   - the same set-up, then the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.eoembed-installed
CORES ?= 2

.PHONY: demo test install clean-results lint dryrun slurm-deps

$(STAMP): requirements/core.txt requirements/zoo.txt requirements/test.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/test.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

install: $(STAMP)

demo: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --cores $(CORES)

test: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q

lint: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --lint

dryrun: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake -n

# System packages of the real-SLURM test (tests/test_slurm.py): slurmd, slurmctld, munge (root, apt).
slurm-deps:
	bash tests/slurm/cluster.sh install

clean-results:
	rm -rf results .snakemake
