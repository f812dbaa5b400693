"""Fixtures for the WHMCS module tests: real ``php`` against real provisioner processes.

``php_stack`` (one per test module) is the e2e harness's :class:`tests.e2e.procs.Stack` —
``provisioner simulate sandbox``, ``provisioner serve``, ``provisioner worker`` on one
database — plus a ``provisioner simulate qboxmail`` for the relay product (one-time
secrets). ``whmcs`` is a fresh WHMCS view (its own module log, local API record and
database file) pointing at it.

Without ``php`` (or its curl extension) these tests skip with the reason — except in CI
(``CI=true``), where that is a failure: CI must run them.
"""
from __future__ import annotations

import os

import pytest
from sqlalchemy import text

from provisioner.db import Base, Database
from provisioner.migrate import upgrade
from tests.e2e.procs import START_TIMEOUT, Stack, free_port, wait_until
from tests.php.whmcs import Whmcs, php_problem

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", autouse=True)
def _php_available():
    """Runs before any other fixture of a test module here (autouse, module scope)."""
    problem = php_problem()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and the WHMCS module tests cannot run: {problem}. make test installs php-cli "
                    "and php-curl on Debian when it runs as root.", pytrace=False)
    pytest.skip(f"WHMCS module tests need PHP 8.1+ with the curl extension: {problem}")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        item.session.__dict__.setdefault("_php_failed", set()).add(item.module.__name__)


def _database_url(workdir, pg_url: str | None) -> str:
    if pg_url:
        database = Database(pg_url)
        names = ", ".join(t.name for t in reversed(Base.metadata.sorted_tables))
        with database.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        database.dispose()
        return pg_url
    url = f"sqlite:///{workdir / 'php.sqlite3'}"
    upgrade(url)
    return url


@pytest.fixture(scope="module")
def php_stack(request, tmp_path_factory, pg_schema_ready):
    workdir = tmp_path_factory.mktemp("whmcs-stack")
    qbox_port = free_port()
    stack = Stack(workdir, _database_url(workdir, pg_schema_ready),
                  extra_env={"QBOXMAIL_URL": f"http://127.0.0.1:{qbox_port}"})
    # SSO links are built on the public URL: this stack's own address.
    stack.env["PROVISIONER_PUBLIC_URL"] = stack.base_url
    try:
        stack.start()
        qbox = stack._proc("qboxmail-simulator", ["simulate", "qboxmail", "--port", str(qbox_port)])
        stack.qbox_url = f"http://127.0.0.1:{qbox_port}"
        wait_until(lambda: stack.http.get(f"{stack.qbox_url}/_sim/state", timeout=2).status_code == 200,
                   timeout=START_TIMEOUT, what="the qboxmail simulator", alive=qbox.check_alive)
    except BaseException:
        print(stack.log_tails())
        stack.close()
        raise
    yield stack
    if request.module.__name__ in request.session.__dict__.get("_php_failed", set()):
        print(f"\n===== process logs of {request.module.__name__} =====\n{stack.log_tails()}")
    stack.close()


@pytest.fixture
def whmcs(php_stack, tmp_path) -> Whmcs:
    php_stack.clear_faults()
    return Whmcs(php_stack, tmp_path / "whmcs")
