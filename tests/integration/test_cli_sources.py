"""The commands for billing sources: scoped API keys (create, list, revoke) and reconcile's
bounds on --at, run as an operator would, against a real database."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner

from provisioner.cli import main
from provisioner.db import utcnow
from provisioner.devsetup import new_webhook_secret
from provisioner.models import ApiKey, ReconcileRun
from provisioner.secrets import new_fernet_key
from tests.conftest import ROOT


@pytest.fixture
def cli(tmp_path, database_url, products_env):
    configs = tmp_path / "configs"
    configs.mkdir()
    for path in (ROOT / "product_configs").glob("*.yaml"):
        (configs / path.name).write_text(path.read_text())
    (configs / "billing.yaml").write_text(
        "brand-b:\n  webhook_secrets: ${BRAND_B_SECRETS}\n  lifecycle_authority: billing\n")
    env = {**products_env, "PROVISIONER_PRODUCTS_DIR": str(configs), "PROVISIONER_INSTANCE_DIR": str(tmp_path),
           "PROVISIONER_DATABASE_URL": database_url, "PROVISIONER_WEBHOOK_SECRETS": new_webhook_secret(),
           "BRAND_B_SECRETS": new_webhook_secret(), "PROVISIONER_SECRET_KEY": "cli-test-secret",
           "PROVISIONER_ENCRYPTION_KEY": new_fernet_key()}
    runner = CliRunner()
    return lambda *args: runner.invoke(main, list(args), env=env)


def test_a_key_for_one_source_is_created_listed_and_revoked(cli, runtime, app):
    created = cli("api-key", "create", "brand-b billing", "--scope", "admin", "--source", "brand-b")
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert token.startswith("prov_") and "billing source 'brand-b' only" in created.stderr

    listed = cli("api-key", "list", "--json")
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (row["scope"], row["source"], row["name"]) == ("admin", "brand-b", "brand-b billing")
    assert token not in listed.output and row["prefix"] == token[:10]

    client = app.test_client()
    assert client.get("/api/v1/services", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    revoked = cli("api-key", "revoke", row["prefix"])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    assert client.get("/api/v1/services", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    again = cli("api-key", "revoke", str(row["id"]))
    assert again.exit_code == 1 and "already revoked" in again.output
    # stderr: the start-up line (where the database is), then the answer
    assert cli("api-key", "list").stderr.splitlines()[1:] == ["no API keys"]
    assert "REVOKED" in cli("api-key", "list", "--all").stdout


def test_a_key_for_an_unknown_source_is_refused(cli, runtime):
    result = cli("api-key", "create", "typo", "--scope", "read", "--source", "brand-c")
    assert result.exit_code == 2
    assert "no billing source 'brand-c' (configured: default, brand-b)" in result.output
    with runtime.db.read() as session:
        assert session.query(ApiKey).count() == 0
    unknown = cli("api-key", "revoke", "prov_nothing")
    assert unknown.exit_code == 1 and "no API key with id or prefix" in unknown.output


def test_reconcile_refuses_a_future_instant_unless_it_is_a_dry_run(cli, runtime):
    future = (utcnow() + dt.timedelta(days=3650)).isoformat()
    refused = cli("reconcile", "--at", future)
    assert refused.exit_code == 2 and "may only be a dry run" in refused.output
    assert cli("reconcile", "--at", "9999-12-31T00:00:00Z", "--dry-run").exit_code == 2
    with runtime.db.read() as session:
        assert session.query(ReconcileRun).count() == 0
    unknown = cli("reconcile", "--dry-run", "--source", "brand-c")
    assert unknown.exit_code == 2 and "no billing source 'brand-c'" in unknown.output
    ok = cli("reconcile", "--at", future, "--dry-run", "--source", "brand-b")
    assert ok.exit_code == 0, ok.output
    report = json.loads(ok.stdout)
    assert (report["state"], report["dry_run"], report["source"]) == ("finished", True, "brand-b")
