# Two commands on a fresh machine with Python 3.11+ and make:
#   make run    the whole system on SQLite, simulators included (provisioner dev)
#   make test   the whole test suite
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test install system-deps check bench clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Debian packages the tests drive for real: php (with curl, and intl for IDN domains) for
# the WHMCS module, chromium for the client area. Installed only when missing; needs root (as on CI machines).
system-deps:
	@missing=""; \
	command -v php >/dev/null 2>&1 || missing="$$missing php-cli"; \
	php -m 2>/dev/null | grep -qix curl || missing="$$missing php-curl"; \
	php -m 2>/dev/null | grep -qix intl || missing="$$missing php-intl"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing Debian packages:$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else \
			echo "missing Debian packages:$$missing (install them with apt-get as root; their tests are skipped)"; \
		fi; \
	fi

run: install
	$(VENV)/bin/provisioner dev

test: install system-deps
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Every benchmark in its CI size; each prints JSON with its same-run baseline (bench/).
bench: install
	$(VENV)/bin/python bench/hook_intake.py -n 500 -c 8
	$(VENV)/bin/python bench/reconcile_scale.py
	$(VENV)/bin/python bench/pages.py
	$(VENV)/bin/python bench/queue.py --jobs 2000 --samples 40

check: install
	$(VENV)/bin/provisioner products check

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
