# Two commands on a fresh machine with Python 3.11+ and make:
#   make run    the whole system on SQLite, simulators included (provisioner dev)
#   make test   the whole test suite
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test install check clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(VENV)/bin/provisioner dev

test: install
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

check: install
	$(VENV)/bin/provisioner products check

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
