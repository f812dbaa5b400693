"""The Alembic migrations build exactly the schema the models describe."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from provisioner import models  # noqa: F401  (registers the tables)
from provisioner.db import Base, Database


def test_migrated_schema_matches_the_models(database_url):
    database = Database(database_url)
    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    database.dispose()
    assert diff == [], f"models and migrations differ; generate a migration: {diff}"


def _fresh_url(tmp_path) -> tuple[str, callable]:
    """A database of its own at no revision: a SQLite file, or a PostgreSQL schema."""
    from sqlalchemy import create_engine, text

    from tests.conftest import PG_URL
    if not PG_URL:
        return f"sqlite:///{tmp_path / 'old.sqlite3'}", lambda: None
    engine = create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS migration_0005 CASCADE"))
        conn.execute(text("CREATE SCHEMA migration_0005"))

    def drop() -> None:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS migration_0005 CASCADE"))
        engine.dispose()
    separator = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{separator}options=-csearch_path%3Dmigration_0005", drop


def test_a_database_from_before_billing_sources_keeps_working_as_the_default_source(tmp_path):
    """0005 on rows written by 0004: every service is the default source's, under its old key."""
    from sqlalchemy import create_engine, text

    from provisioner.migrate import upgrade
    url, drop = _fresh_url(tmp_path)
    try:
        upgrade(url, "0004")
        engine = create_engine(url)
        stamp = "'2026-11-01 09:00:00'"
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO services (id, billing_product_id, product_key, upstream, domain, client_id, client, "
                "config_options, custom_fields, desired_status, limits, observed, usage, created_at, updated_at) "
                f"VALUES ('1042', '12', 'sandbox-mail', 'sandbox', 'old.example', '77', '{{}}', '{{}}', '{{}}', "
                f"'active', '{{}}', '{{}}', '{{}}', {stamp}, {stamp})"))
            conn.execute(text(
                "INSERT INTO events (id, webhook_id, body_digest, type, service_id, occurred_at, received_at, "
                f"payload, outcome) VALUES ('e1', 'msg_old', 'd', 'service.create', '1042', {stamp}, {stamp}, "
                "'{\"service\": {\"id\": \"1042\"}}', 'applied')"))
            conn.execute(text(
                "INSERT INTO jobs (id, service_id, event_id, kind, reason, state, attempts, max_attempts, "
                f"run_after, created_at, updated_at) VALUES ('j1', '1042', 'e1', 'converge', 'service.create', "
                f"'succeeded', 1, 10, {stamp}, {stamp}, {stamp})"))
            conn.execute(text("INSERT INTO api_keys (name, scope, prefix, key_hash, created_at) "
                              f"VALUES ('old', 'admin', 'prov_x', 'h', {stamp})"))
        engine.dispose()
        upgrade(url)
        database = Database(url)
        with database.read() as session:
            service = session.get(models.Service, "1042")
            assert (service.source, service.billing_id, service.auto_suspend_enabled) == ("default", "1042", True)
            event = session.get(models.Event, "e1")
            assert (event.source, event.webhook_id) == ("default", "msg_old")
            job = session.get(models.Job, "j1")
            assert (job.report_outcome, job.source, job.billing_service_id) == (False, "default", "1042")
            assert session.query(models.ApiKey).one().source is None        # an operator key, as before
        with database.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        database.dispose()
    finally:
        drop()


def test_0008_hands_back_a_second_running_job_of_one_service(tmp_path):
    """The old claim could (rarely) leave two running jobs of one service; the unique
    index of 0008 needs one: the later job goes back to the queue, its attempt lost."""
    from sqlalchemy import create_engine, text

    from provisioner.migrate import upgrade
    url, drop = _fresh_url(tmp_path)
    try:
        upgrade(url, "0007")
        engine = create_engine(url)
        stamp = "'2026-12-01 09:00:00'"
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO services (id, source, billing_id, billing_product_id, product_key, upstream, domain, "
                "client_id, client, config_options, custom_fields, desired_status, limits, observed, usage, "
                f"created_at, updated_at) VALUES ('7', 'default', '7', '12', 'sandbox-mail', 'sandbox', "
                f"'seven.example', '1', '{{}}', '{{}}', '{{}}', 'active', '{{}}', '{{}}', '{{}}', {stamp}, {stamp})"))
            for job_id in ("a", "b"):
                conn.execute(text(
                    "INSERT INTO jobs (id, service_id, kind, reason, state, attempts, max_attempts, run_after, "
                    f"lease_owner, lease_expires_at, created_at, updated_at) VALUES ('{job_id}', '7', 'converge', "
                    f"'test', 'running', 1, 5, {stamp}, 'w/{job_id}', {stamp}, {stamp}, {stamp})"))
                conn.execute(text("INSERT INTO job_attempts (job_id, number, worker, started_at) "
                                  f"VALUES ('{job_id}', 1, 'w', {stamp})"))
        engine.dispose()
        upgrade(url)
        database = Database(url)
        with database.read() as session:
            first, second = session.get(models.Job, "a"), session.get(models.Job, "b")
            assert (first.state, first.lease_owner) == ("running", "w/a")
            assert (second.state, second.lease_owner) == ("retrying", None)
            outcomes = dict(session.execute(text("SELECT job_id, outcome FROM job_attempts")).all())
            assert outcomes == {"a": None, "b": "lost"}
        database.dispose()
    finally:
        drop()
