# Two entry points, each doing all the set-up on a fresh machine:
#   make run    -> local virtualenv, install, `forecast fit --ticker ^GSPC`
#   make test   -> local virtualenv, install with test and Ray extras (and Debian's postgresql), the whole test suite
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
RAY    := $(VENV)/.installed-ray
TICKER ?= ^GSPC

.PHONY: setup postgres run test backtest bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	# CPU-only machine: take the CPU build of torch first, so the package's own
	# `torch>=2.4` range is already met and pip does not pull a multi-GB CUDA build.
	if ! command -v nvidia-smi >/dev/null 2>&1; then $(PY) -m pip install -q torch==2.13.0; fi
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# Ray, the optional cluster engine (--executor ray): its tests start a real two-node cluster on 127.0.0.1.
$(RAY): $(STAMP)
	$(PY) -m pip install -q -e '.[test,ray]'
	touch $(RAY)

run: setup
	$(VENV)/bin/forecast fit --ticker '$(TICKER)'

# The sweep's many-machine test starts a PostgreSQL server of its own: install Debian's package when it is
# missing (CI runs as root; under CI=true that test must run, never skip).
postgres:
	@if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
		else \
			echo "note: PostgreSQL is missing and needs root and apt-get to install; its test skips outside CI"; \
		fi; \
	fi

test: setup $(RAY) postgres
	$(PY) -m pytest -q

backtest: setup
	$(VENV)/bin/forecast backtest --ticker '$(TICKER)'

clean:
	rm -rf $(VENV) runs mlruns mlflow.db
