# Every target bootstraps .venv itself, so `make demo` and `make test` work on a fresh clone.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.bootstrapped
export PATH := $(BIN):$(PATH)
export MELTANO_SEND_ANONYMOUS_USAGE_STATS := false
export MELTANO_DISABLE_TRACKING := true

.PHONY: bootstrap demo dagster plugin-locks test lint bench sizes clean

# The distributions (each directory with a pyproject.toml), installed editable in one pip
# call with the dev workspace (the root pyproject.toml); any pyproject.toml changed
# bootstraps again.
DISTS := dativo $(patsubst %/pyproject.toml,%,$(wildcard taps/*/pyproject.toml targets/*/pyproject.toml orchestration/*/pyproject.toml))

bootstrap: $(STAMP)

$(STAMP): pyproject.toml $(addsuffix /pyproject.toml,$(DISTS))
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { \
	  echo "installing python3-venv (Debian)"; apt-get update -qq && apt-get install -y -qq python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	@# a .venv from before the split holds the single dativo-ingest distribution
	$(BIN)/python -m pip uninstall -q -y dativo-ingest 2>/dev/null || true
	$(BIN)/python -m pip install -q --disable-pip-version-check \
	  $(addprefix -e ./,$(DISTS)) -e '.[dev]'
	touch $(STAMP)

# meltano.yml takes its plugins from plugins/ (the utility `dativo` prints what landed).
# The customers contract's quality rules are recorded per load; the history ends the demo
# with the one failing warning rule (a warning never blocks: the demo exits 0).
demo: bootstrap
	$(BIN)/meltano --environment dev run tap-dativo-csv target-dativo-iceberg
	$(BIN)/meltano --environment dev invoke dativo:table-show
	@echo "== quality of demo.crm.customers: warning rule all_customers_landed fails (6 of 10 rows land, 4 are dead-lettered) =="
	$(BIN)/meltano --environment dev invoke dativo:quality-history demo.crm.customers

# Dagster on this project (docs/orchestration.md): `dagster dev` with one code location
# per tenant (workspace.yaml) and its instance in .dagster/, whose dagster.yaml (the run
# queue, one run per table at a time) is orchestration/dagster_home/dagster.yaml. The UI
# is on http://127.0.0.1:$(DAGSTER_PORT); Ctrl-C stops it.
DAGSTER_PORT ?= 3000
dagster: bootstrap .dagster/dagster.yaml
	DAGSTER_HOME=$(CURDIR)/.dagster DATIVO_MELTANO_PROJECT=$(CURDIR) \
	  $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(DAGSTER_PORT)

.dagster/dagster.yaml: orchestration/dagster_home/dagster.yaml
	mkdir -p .dagster
	cp $< $@

# Rewrite plugins/<type>/<name>--dativo.lock after editing plugins/<type>/<name>.yml
# (meltano.yml explains why the repo's project reads the lockfiles).
plugin-locks: bootstrap
	$(BIN)/python plugins/lock.py

test: bootstrap lint
	$(BIN)/python -m pytest -q

lint: bootstrap
	$(BIN)/ruff check .

bench: bootstrap
	$(BIN)/python -m bench.run

# Each plugin's venv as `meltano install` builds it (README: Plugin venv sizes).
sizes: bootstrap
	$(BIN)/python -m bench.venv_sizes

clean:
	rm -rf output .meltano/run .pytest_cache
	# setuptools reuses an in-tree build/ folder, so a deleted module could reach a later wheel
	rm -rf build */build */*/build *.egg-info */*.egg-info */*/*.egg-info
