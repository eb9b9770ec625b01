# csreturns: the two commands a new user needs are `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
VAR    := $(CURDIR)/var
SHARED ?= $(abspath $(CURDIR)/../shared)

export AIRFLOW_HOME            := $(VAR)/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/transforms/orchestration/plugins
export AIRFLOW__CORE__EXECUTOR := LocalExecutor
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN := sqlite:///$(VAR)/airflow/airflow.db?timeout=60
# LocalExecutor's task processes fork from workers that imported what the tasks import once
# (transforms/orchestration/preload.py): a task starts in a fraction of a second instead of several
export AIRFLOW__SCHEDULER__MP_START_METHOD := forkserver
export AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD := transforms.orchestration.preload
export CSRETURNS_LANDING       ?= $(VAR)/landing
export CSRETURNS_REPO          ?= $(VAR)/repository
export CSRETURNS_SHARED        ?= $(SHARED)
export GX_ANALYTICS_ENABLED    := False

.PHONY: demo ui test test-fast bench docs clean chromium fuzz

$(BIN)/csreturns: pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24"
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test,production,clients]"
	@touch $@

## make demo: set up, generate a landing area, run the collection DAGs through Airflow, build the repository
demo: $(BIN)/csreturns
	$(BIN)/python -m transforms.synthetic.demo --landing $(CSRETURNS_LANDING) --repo $(CSRETURNS_REPO)

## make ui: Airflow (api-server, scheduler, dag-processor, triggerer) over the demo's runs and task logs at
## http://localhost:8080; log in as admin with the password it prints (kept in var/airflow/simple_auth_manager_passwords.json.generated)
## (standalone starts its components as `airflow ...` from PATH: the venv's bin goes first)
ui: $(BIN)/csreturns
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/airflow standalone

## make test: the test suite (CI runs this)
## one pytest worker per core (CI has two); a test file's tests stay together in one worker
TEST_WORKERS ?= auto
test: $(BIN)/csreturns chromium
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

## headless Chromium for the report's browser test: Debian's package, installed when missing (as root, with apt)
chromium:
	@test -x /usr/bin/chromium || ! command -v apt-get >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; } || \
	  echo "chromium could not be installed: the browser test of the report will skip"

test-fast: $(BIN)/csreturns
	$(BIN)/python -m pytest -m "not airflow and not services and not slow"

## a few minutes of random mutations of the shared samples through ingest (issue 11); prints how many inputs
## it tried (hypothesis statistics). FUZZ_EXAMPLES=N for more or fewer.
fuzz: $(BIN)/csreturns
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -p no:cacheprovider --timeout=0 --hypothesis-show-statistics \
		tests/test_variants_property.py

bench: $(BIN)/csreturns
	$(BIN)/python bench/ingest.py

## docs/columns.md is generated from schemas/
docs: $(BIN)/csreturns
	$(BIN)/csreturns docs --out docs/columns.md

clean:
	rm -rf $(VAR)
