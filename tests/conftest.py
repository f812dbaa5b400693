"""Shared fixtures.

The database is SQLite in a temporary file, or PostgreSQL when
``PROVISIONER_TEST_DATABASE_URL`` names one (``.ci/run`` runs the suite both
ways). Simulators run in-process on loopback; end-to-end tests start real
processes (see tests/e2e).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import text

from provisioner import create_app
from provisioner.config import Settings
from provisioner.db import Base, Database
from provisioner.migrate import upgrade
from provisioner.products import load_catalog
from provisioner.runtime import Runtime
from provisioner.secrets import new_fernet_key
from provisioner.devsetup import dev_products_env, new_webhook_secret
from provisioner.simulators.registry import create_simulator_app
from provisioner.simulators.server import SimulatorServer
from provisioner.worker import Worker
from tests.helpers import Signer

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("PROVISIONER_TEST_DATABASE_URL", "")


def pytest_report_header(config):
    return f"database: {PG_URL or 'SQLite (temporary files)'}"


@pytest.fixture(scope="session")
def pg_schema_ready():
    """On PostgreSQL: drop everything once per run and migrate from scratch."""
    if not PG_URL:
        return None
    database = Database(PG_URL)
    with database.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    database.dispose()
    upgrade(PG_URL)
    return PG_URL


@pytest.fixture
def database_url(tmp_path, pg_schema_ready) -> str:
    if pg_schema_ready:
        database = Database(pg_schema_ready)
        names = ", ".join(t.name for t in reversed(Base.metadata.sorted_tables))
        with database.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        database.dispose()
        return pg_schema_ready
    url = f"sqlite:///{tmp_path / 'test.sqlite3'}"
    upgrade(url)
    return url


@pytest.fixture
def sandbox_sim():
    server = SimulatorServer(create_simulator_app("sandbox"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def products_env(sandbox_sim) -> dict[str, str]:
    """What the example product configs need: dev credentials, the sandbox's URL."""
    return dev_products_env({"sandbox": sandbox_sim.url})


@pytest.fixture
def settings(tmp_path, database_url, products_env) -> Settings:
    return Settings.from_env(
        {}, database_url=database_url, webhook_secrets=[new_webhook_secret()],
        secret_key="test-secret-key", encryption_key=new_fernet_key(),
        instance_dir=str(tmp_path / "instance"), products_dir=str(ROOT / "product_configs"),
        job_backoff_base=0.01, job_backoff_cap=0.05, worker_poll_interval=0.05,
    )


@pytest.fixture
def runtime(settings, products_env):
    rt = Runtime(settings, catalog=load_catalog(settings.products_dir, environ=products_env))
    yield rt
    rt.close()


@pytest.fixture
def app(runtime):
    return create_app(runtime=runtime)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def worker(runtime):
    return Worker(runtime, concurrency=1, name="test-worker")


@pytest.fixture
def signer(settings) -> Signer:
    return Signer(settings.webhook_secrets[0])


