"""Upstream price tables for operators: ``GET /api/v1/upstreams/{name}/pricing`` and
``provisioner pricing NAME``, against the ResellerClub simulator and the shipped configs."""
from __future__ import annotations

import json

import pytest
import requests
from click.testing import CliRunner

from provisioner import apikeys
from provisioner.cli import main
from provisioner.devsetup import dev_products_env
from provisioner.simulators.registry import create_simulator_app
from provisioner.simulators.server import SimulatorServer
from tests.conftest import ROOT


@pytest.fixture
def rc_sim():
    with SimulatorServer(create_simulator_app("resellerclub")) as server:
        yield server


@pytest.fixture
def products_env(sandbox_sim, rc_sim) -> dict[str, str]:
    return dev_products_env({"sandbox": sandbox_sim.url, "resellerclub": rc_sim.url})


@pytest.fixture
def get(client, runtime):
    with runtime.db.transaction() as session:
        _, key = apikeys.create_api_key(session, "pricing-test", "read")
    return lambda path: client.get(path, headers={"Authorization": f"Bearer {key}"})


def simulator_prices(sim, kind: str) -> dict:
    path = {"cost": "reseller-price", "price": "customer-price"}[kind]
    return requests.get(f"{sim.url}/api/products/{path}.json",
                        params={"auth-userid": "100001", "api-key": "dev-resellerclub-key"}, timeout=5).json()


# --- the admin API ---------------------------------------------------------------------------

def test_price_table_of_resellerclub(get, rc_sim):
    response = get("/api/v1/upstreams/resellerclub/pricing")
    assert response.status_code == 200
    body = response.get_json()
    assert body["upstream"] == "resellerclub" and body["provider"] == "resellerclub"
    rows = body["items"]
    assert {r["product"] for r in rows} == {"enterpriseemailus", "enterpriseemailin", "eeliteus"}
    cost, price = simulator_prices(rc_sim, "cost"), simulator_prices(rc_sim, "price")
    row = next(r for r in rows if (r["product"], r["accounts"], r["action"], r["months"])
               == ("enterpriseemailin", "6-10", "renew", 12))
    assert row["cost"] == cost["enterpriseemailin"]["email_account_ranges"]["6-10"]["renew"]["12"]
    assert row["price"] == price["enterpriseemailin"]["email_account_ranges"]["6-10"]["renew"]["12"]
    assert row["margin"] == round(row["price"] - row["cost"], 2)
    assert set(rows[0]) == {"product", "accounts", "action", "months", "cost", "price", "margin"}
    assert "dev-resellerclub-key" not in response.get_data(as_text=True)


def test_unknown_upstream_is_404(get):
    response = get("/api/v1/upstreams/nowhere/pricing")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "upstream_not_found"


def test_provider_without_prices_is_409_not_supported(get):
    response = get("/api/v1/upstreams/sandbox/pricing")
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "not_supported" and "sandbox" in error["message"]


def test_upstream_failure_is_502_with_a_safe_message(get, rc_sim):
    requests.post(f"{rc_sim.url}/_sim/faults", json={"error_rate": 1.0}, timeout=5)
    response = get("/api/v1/upstreams/resellerclub/pricing")
    assert response.status_code == 502
    error = response.get_json()["error"]
    assert error["code"] == "upstream_unavailable"
    assert "httpapi" not in error["message"] and "127.0.0.1" not in error["message"]


def test_pricing_needs_an_api_key(client):
    assert client.get("/api/v1/upstreams/resellerclub/pricing").status_code == 401


def test_pricing_is_documented(client):
    doc = client.get("/api/openapi.json").get_json()
    operation = doc["paths"]["/api/v1/upstreams/{name}/pricing"]["get"]
    assert {"200", "401", "404", "409"} <= operation["responses"].keys()
    assert "PriceTable" in doc["components"]["schemas"]


# --- the command -------------------------------------------------------------------------------

@pytest.fixture
def cli(tmp_path, products_env):
    env = {**products_env, "PROVISIONER_PRODUCTS_DIR": str(ROOT / "product_configs"),
           "PROVISIONER_INSTANCE_DIR": str(tmp_path)}
    runner = CliRunner()
    return lambda *args: runner.invoke(main, list(args), env=env)


def test_cli_prints_the_table(cli, rc_sim):
    result = cli("pricing", "resellerclub")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["product", "accounts", "action", "months", "cost", "price", "margin"]
    assert len(lines) == 1 + 3 * 11 * 2 * 4
    cost = simulator_prices(rc_sim, "cost")["enterpriseemailus"]["email_account_ranges"]["1-5"]["add"]["3"]
    price = simulator_prices(rc_sim, "price")["enterpriseemailus"]["email_account_ranges"]["1-5"]["add"]["3"]
    assert ["enterpriseemailus", "1-5", "add", "3", f"{cost:.2f}", f"{price:.2f}",
            f"{price - cost:.2f}"] in [line.split() for line in lines]


def test_cli_json_rows(cli):
    result = cli("pricing", "resellerclub", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows[0]["product"] == "eeliteus" and all(r["margin"] > 0 for r in rows)


@pytest.mark.parametrize("name, text", [("nowhere", "no upstream named 'nowhere'"),
                                        ("sandbox", "has no price table")])
def test_cli_refuses_what_it_cannot_price(cli, name, text):
    result = cli("pricing", name)
    assert result.exit_code == 1 and text in result.output


def test_cli_reports_upstream_errors_without_secrets(cli, rc_sim):
    requests.post(f"{rc_sim.url}/_sim/faults", json={"error_rate": 1.0}, timeout=5)
    result = cli("pricing", "resellerclub")
    assert result.exit_code == 1 and "upstream_unavailable" in result.output
    assert "dev-resellerclub-key" not in result.output
