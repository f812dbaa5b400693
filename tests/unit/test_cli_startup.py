"""`provisioner --version`, the line every command prints at start, and the quiet scheduler logs."""
from __future__ import annotations

import configparser
import logging
import threading

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from click.testing import CliRunner

from provisioner import __version__, cli
from provisioner.logsetup import masked_url, setup_logging, startup_line
from tests.conftest import ROOT


def test_version_is_the_package_version():
    result = CliRunner().invoke(cli.main, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"provisioner {__version__}\n"
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert setup["metadata"]["version"] == "attr: provisioner.__version__"  # one place to bump


def test_the_database_password_is_masked():
    assert masked_url("postgresql+psycopg://prov:s3cr%40t@db.internal:5432/prov") == \
        "postgresql+psycopg://prov:***@db.internal:5432/prov"
    assert masked_url("sqlite:////srv/instance/provisioner.sqlite3") == "sqlite:////srv/instance/provisioner.sqlite3"
    assert "s3cret" not in masked_url("not a url s3cret")


@pytest.fixture
def env(tmp_path):
    return {"PROVISIONER_INSTANCE_DIR": str(tmp_path),
            "PROVISIONER_DATABASE_URL": "postgresql+psycopg://prov:hunter2@127.0.0.1:9/prov",
            "PROVISIONER_PRODUCTS_DIR": str(ROOT / "product_configs"), "PROVISIONER_LOG_LEVEL": "warning"}


def test_a_command_says_where_its_database_logs_and_products_are(env):
    # Port 9 refuses: the command fails after its start-up line, which is what is looked at.
    result = CliRunner().invoke(cli.main, ["jobs", "list"], env=env)
    first = result.stderr.splitlines()[0]
    assert first == (f"provisioner {__version__} jobs list: database postgresql+psycopg://prov:***@127.0.0.1:9/prov, "
                     f"logs stderr (WARNING), products {ROOT / 'product_configs'}")
    assert "hunter2" not in result.output
    assert result.stdout == ""  # the line never mixes with a command's own output


def test_products_check_names_the_directory_it_checks(env, tmp_path):
    result = CliRunner().invoke(cli.main, ["products", "check", str(ROOT / "product_configs")],
                                env={**env, "PROVISIONER_PRODUCTS_DIR": str(tmp_path)})
    assert result.stderr.splitlines()[0].endswith(f"products {ROOT / 'product_configs'}")


def test_simulate_says_its_data_lives_in_memory(monkeypatch):
    monkeypatch.setattr("provisioner.simulators.server.serve_forever", lambda *a, **k: None)
    result = CliRunner().invoke(cli.main, ["simulate", "sandbox"], env={"PROVISIONER_LOG_LEVEL": "INFO"})
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == (f"provisioner {__version__} simulate sandbox: "
                                             "data in memory, lost when it stops, logs stderr (INFO)")


def test_startup_line_without_a_database():
    assert startup_line("x", products_dir="/p") == f"provisioner {__version__} x: logs stderr (INFO), products /p"


@pytest.fixture
def apscheduler_level():
    logger = logging.getLogger("apscheduler")
    before = logger.level
    yield
    logger.setLevel(before)


def test_apscheduler_runs_are_not_logged_but_its_errors_are(apscheduler_level, caplog):
    caplog.set_level(logging.INFO)
    setup_logging("INFO")
    ran = threading.Event()

    def fails():
        ran.set()
        raise RuntimeError("tick broke")

    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(fails, id="fails", name="a failing tick")
    scheduler.start()
    try:
        assert ran.wait(5)
        for _ in range(50):
            if any(r.levelno >= logging.ERROR for r in caplog.records):
                break
            threading.Event().wait(0.05)
    finally:
        scheduler.shutdown(wait=True)
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name.startswith("apscheduler")]
    assert not [m for level, m in lines if level == "INFO"], lines
    assert any(level == "ERROR" and "a failing tick" in m for level, m in lines), lines


def test_debug_brings_apscheduler_back(apscheduler_level):
    setup_logging("DEBUG")
    assert logging.getLogger("apscheduler.executors.default").isEnabledFor(logging.INFO)
    setup_logging("info")
    assert not logging.getLogger("apscheduler.executors.default").isEnabledFor(logging.INFO)


def test_alembic_says_what_it_migrates_and_not_its_every_start_preamble(caplog):
    setup_logging("INFO")
    caplog.set_level(logging.INFO)
    migration = logging.getLogger("alembic.runtime.migration")
    migration.info("Context impl SQLiteImpl.")
    migration.info("Will assume non-transactional DDL.")
    migration.info("Running upgrade %s -> %s, %s", "0006", "0007", "an index")
    assert [r.getMessage() for r in caplog.records if r.name == migration.name] == [
        "Running upgrade 0006 -> 0007, an index"]
