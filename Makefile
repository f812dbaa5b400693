# Two commands on a fresh machine with Python 3.11+ and make:
#   make run    the whole system on SQLite, simulators included (provisioner dev)
#   make test   the whole test suite
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test install system-deps modoboa-deps check bench clean

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

# What the tests against a real Modoboa (tests/real) need: Debian's Dovecot with its
# PostgreSQL driver, Redis, and the build needs of Modoboa's rrdtool bindings; then
# Modoboa's own virtualenv in .cache/modoboa-venv (tests/real/modoboa_env.py, reused
# across runs). Debian's packages would start the system's dovecot and redis on their
# standard ports: a policy-rc.d that forbids every start is in place during the install
# (the one already there, if any, is put back) and the units it installed are not enabled at
# boot, so the machine's own services stay as they were.
MODOBOA_DEBS := dovecot-imapd dovecot-pgsql librrd-dev pkg-config
modoboa-deps: install
	@missing=""; \
	for p in $(MODOBOA_DEBS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing Debian packages:$$missing (services not started)"; \
			policy=/usr/sbin/policy-rc.d; saved=""; \
			if [ -e $$policy ]; then saved=$$(mktemp); cp -p $$policy $$saved; fi; \
			printf '#!/bin/sh\nexit 101\n' > $$policy; chmod 755 $$policy; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
			status=$$?; \
			if [ -n "$$saved" ]; then mv $$saved $$policy; else rm -f $$policy; fi; \
			[ $$status = 0 ] || exit $$status; \
			if command -v systemctl >/dev/null 2>&1; then \
				for unit in dovecot redis-server; do \
					case "$$missing" in *$$unit*) systemctl disable $$unit >/dev/null 2>&1 || true;; esac; \
				done; \
			fi; \
		else \
			echo "missing Debian packages:$$missing (install them with apt-get as root; the real-Modoboa tests are skipped)"; \
		fi; \
	fi
	$(VENV)/bin/python tests/real/modoboa_env.py

run: install
	$(VENV)/bin/provisioner dev

test: install system-deps modoboa-deps
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Every benchmark in its CI size; each prints JSON with its same-run baseline (bench/).
bench: install
	$(VENV)/bin/python bench/hook_intake.py -n 500 -c 8
	$(VENV)/bin/python bench/reconcile_scale.py
	$(VENV)/bin/python bench/pages.py
	$(VENV)/bin/python bench/job_queue.py --jobs 2000 --samples 40
	$(VENV)/bin/python bench/upstream_rate.py --jobs 100 --rate 20 --concurrency 8

check: install
	$(VENV)/bin/provisioner products check

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
