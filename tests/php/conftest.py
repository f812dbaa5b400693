"""Fixtures for the WHMCS module tests: real ``php`` against real provisioner processes.

``php_stack`` (one per test module) is the e2e harness's :class:`tests.e2e.procs.Stack` —
``provisioner simulate sandbox``, ``provisioner serve``, ``provisioner worker`` on one
database — plus a ``provisioner simulate qboxmail`` for the relay product (one-time
secrets), and the module's callback receiver: ``php -S`` serving a temporary WHMCS root
(init.php of the stand-ins, a copy of the module) that the provisioner's callbacks are
sent to. ``whmcs`` is a fresh WHMCS view (its own module log, local API record and
database file) pointing at it; the callback receiver works on the same files.

Without ``php`` (or its curl extension) these tests skip with the reason — except in CI
(``CI=true``), where that is a failure: CI must run them.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from sqlalchemy import text

from provisioner.db import Base, Database
from provisioner.devsetup import new_webhook_secret
from provisioner.migrate import upgrade
from tests.e2e.procs import START_TIMEOUT, Stack, free_port, wait_until
from tests.php.whmcs import MODULE, Whmcs, php_binary, php_problem

DRIVERS = os.path.join(os.path.dirname(__file__), "drivers")

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
    callback_port = free_port()
    callback_secret = new_webhook_secret()
    root = workdir / "whmcs-root"
    module_copy = root / "modules" / "servers" / "provisioner"
    shutil.copytree(MODULE.parent, module_copy)
    shutil.copy(os.path.join(DRIVERS, "init.php"), root / "init.php")
    idle = Whmcs(None, workdir / "whmcs-idle")       # until a test's view takes over
    (root / "stub.json").write_text(json.dumps(idle.stub_config(module=module_copy / "provisioner.php")))
    stack = Stack(workdir, _database_url(workdir, pg_schema_ready),
                  extra_env={"QBOXMAIL_URL": f"http://127.0.0.1:{qbox_port}",
                             "PROVISIONER_CALLBACK_URL":
                                 f"http://127.0.0.1:{callback_port}/modules/servers/provisioner/callback.php",
                             "PROVISIONER_CALLBACK_SECRET": callback_secret,
                             "PROVISIONER_NOTIFY_INTERVAL": "0.5"})
    # SSO links are built on the public URL: this stack's own address.
    stack.env["PROVISIONER_PUBLIC_URL"] = stack.base_url
    stack.callback_secret = callback_secret
    stack.whmcs_root = root
    stack.callback_module = module_copy / "provisioner.php"
    try:
        stack.start()
        callback_log = open(stack.logs_dir / "whmcs-callback.log", "w")
        receiver = subprocess.Popen([php_binary() or "php", "-S", f"127.0.0.1:{callback_port}", "-t", str(root)],
                                    cwd=str(root), stdout=callback_log, stderr=subprocess.STDOUT,
                                    env={**os.environ, "TZ": "UTC"})
        stack.callback_receiver = receiver
        stack.callback_url = f"http://127.0.0.1:{callback_port}/modules/servers/provisioner/callback.php"
        wait_until(lambda: receiver.poll() is None and stack.http.get(stack.callback_url, timeout=2).status_code
                   in (405, 500), timeout=START_TIMEOUT, what="the WHMCS callback receiver (php -S)")
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
        print((stack.logs_dir / "whmcs-callback.log").read_text())
    stack.callback_receiver.terminate()
    stack.callback_receiver.wait(timeout=10)
    stack.close()


@pytest.fixture
def whmcs(php_stack, tmp_path) -> Whmcs:
    php_stack.clear_faults()
    view = Whmcs(php_stack, tmp_path / "whmcs")
    # The callback receiver works on this test's WHMCS files from now on.
    (php_stack.whmcs_root / "stub.json").write_text(json.dumps(view.stub_config(module=php_stack.callback_module)))
    (php_stack.whmcs_root / "problems.log").unlink(missing_ok=True)
    yield view
    problems = php_stack.whmcs_root / "problems.log"
    assert not problems.exists(), f"the callback receiver had PHP problems:\n{problems.read_text()}"
