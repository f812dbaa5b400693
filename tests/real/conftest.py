"""Fixtures for tests against a real Modoboa instance with a real Dovecot (tests/real).

``modoboa_real`` (one per test session) is a :class:`tests.real.modoboa_instance.ModoboaInstance`:
its own PostgreSQL database on 127.0.0.1:5432, a private redis, Modoboa under gunicorn and
Dovecot's IMAP on free loopback ports, all stopped and removed at the end.

Without Dovecot, redis, PostgreSQL or Modoboa's virtualenv these tests skip, naming
``make modoboa-deps`` — except under ``CI=true``, where that is a failure: CI must run them.
The start-up and stop times are printed at the end of the run and written to
``test-artifacts/modoboa-real-timings.json``.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.real.modoboa_instance import InstanceError, ModoboaInstance, problems

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
_TIMINGS: dict[str, object] = {}


def _unavailable(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and the real-Modoboa tests cannot run: {reason}. `make modoboa-deps` "
                    "(a prerequisite of `make test`) installs them on Debian as root.", pytrace=False)
    pytest.skip(f"real-Modoboa tests need what `make modoboa-deps` installs: {reason}")


@pytest.fixture(scope="session")
def modoboa_real():
    missing = problems()
    if missing:
        _unavailable("; ".join(missing))
    instance = ModoboaInstance()
    started = time.monotonic()
    try:
        instance.start()
    except (InstanceError, OSError) as exc:
        logs = instance.logs()
        instance.stop()
        pytest.fail(f"the real Modoboa instance did not start: {exc}\n{logs}", pytrace=False)
    except BaseException:
        instance.stop()
        raise
    _TIMINGS.update(instance.timings, cold=instance.template_built,
                    fixture_s=round(time.monotonic() - started, 1))
    yield instance
    failed = getattr(instance, "failed", False)
    if failed:
        print(f"\n===== logs of the real Modoboa instance =====\n{instance.logs()}")
    instance.stop()
    _TIMINGS.update({k: v for k, v in instance.timings.items() if k.startswith("stop")})


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if outcome.get_result().failed and "modoboa_real" in getattr(item, "funcargs", {}):
        item.funcargs["modoboa_real"].failed = True


def pytest_terminal_summary(terminalreporter):
    if not _TIMINGS:
        return
    kind = "cold: template deployed" if _TIMINGS.get("cold") else "warm: template cloned"
    terminalreporter.write_line(f"real Modoboa fixture ({kind}): {json.dumps(_TIMINGS)}")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "modoboa-real-timings.json").write_text(json.dumps(_TIMINGS, indent=2) + "\n")
