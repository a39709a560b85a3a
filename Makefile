# drpoc-chaos — two commands: `make demo` and `make test`. Both are idempotent and run as root on Debian/Ubuntu.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SYSTEM_PACKAGES := strongswan strongswan-starter strongswan-swanctl libcharon-extra-plugins \
	mariadb-server mariadb-client openssh-server openssh-client sudo nftables iproute2 util-linux \
	python3-venv python3-pip
TEST_PACKAGES := chromium tcpdump percona-toolkit
CHAOS := $(BIN)/chaos --no-version-check --no-log-file

.PHONY: demo test system-packages test-packages venv lab-up lab-down lab-status drill review verify scheduler scheduler-down clean

demo: system-packages venv  ## install, bring the lab up, run the seed drill, write the report
	$(BIN)/drpoc lab up
	$(BIN)/drpoc lab status
	@mkdir -p .state
	@rc=0; $(CHAOS) run experiments/vpn_outage.yaml --journal-path .state/demo-journal.json || rc=$$?; \
	$(BIN)/drpoc review journal/ --out reports/; \
	echo; echo "Report: reports/drpoc-review.html (and .md). The lab stays up: 'make lab-down' removes it."; \
	exit $$rc

test: system-packages test-packages venv  ## everything the tests need, lint and type check, then all the tests (the lab ones included)
	$(BIN)/ruff check drpoc_chaos flows benchmarks tests
	$(BIN)/mypy
	$(BIN)/pytest -q -ra

# apt-get only when something is missing: the second run installs nothing.
system-packages:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing: $$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "system packages: all present"; fi

test-packages:
	@missing=$$(for p in $(TEST_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing: $$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "test packages: all present"; fi

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

lab-up: system-packages venv
	$(BIN)/drpoc lab up
lab-down: venv
	$(BIN)/drpoc lab down
lab-status: venv
	$(BIN)/drpoc lab status

drill: venv  ## the seed drill against the lab (or DRPOC_INVENTORY)
	$(CHAOS) run experiments/vpn_outage.yaml
review: venv
	$(BIN)/drpoc review journal/ --out reports/
verify: venv
	$(BIN)/drpoc verify journal/

scheduler: venv  ## local Prefect server + work pool + deployments + worker
	$(BIN)/drpoc schedule up
scheduler-down: venv
	$(BIN)/drpoc schedule down

clean:
	rm -rf .state reports .pytest_cache
