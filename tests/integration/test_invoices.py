"""The reseller's invoices for operators: ``GET /api/v1/upstreams/{name}/invoices`` (list),
``.../invoices/{id}.pdf`` and ``.../invoices.csv``, against the mailbox.org simulator."""
from __future__ import annotations

import csv
import io

import pytest
import requests

from provisioner import apikeys
from provisioner.devsetup import dev_products_env
from provisioner.products import load_catalog
from provisioner.runtime import Runtime
from provisioner.simulators.registry import create_simulator_app
from provisioner.simulators.server import SimulatorServer

DEV_USER, DEV_PASSWORD = "dev-reseller", "dev-mailboxorg-password"
ACCOUNTS = ("prov-5001", "prov-5002")


def rpc(url: str, method: str, params: dict, session: str | None = None) -> dict:
    headers = {"HPLS-AUTH": session} if session else {}
    body = requests.post(f"{url}/v1/", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
                         headers=headers, timeout=5).json()
    assert "result" in body, body
    return body["result"]


@pytest.fixture
def mbo_sim():
    server = SimulatorServer(create_simulator_app("mailboxorg")).start()
    session = rpc(server.url, "auth", {"user": DEV_USER, "pass": DEV_PASSWORD})["session"]
    for name in ACCOUNTS:          # what the reseller's customers were billed for
        rpc(server.url, "account.add", {"account": name, "password": "Customer-Pass-1", "plan": "reseller",
                                        "tarifflimits": {"standard": 2}}, session)
    yield server
    server.stop()


@pytest.fixture
def runtime(settings, sandbox_sim, mbo_sim):
    env = dev_products_env({"sandbox": sandbox_sim.url, "mailboxorg": mbo_sim.url})
    rt = Runtime(settings, catalog=load_catalog(settings.products_dir, environ=env))
    yield rt
    rt.close()


@pytest.fixture
def get(client, runtime):
    with runtime.db.transaction() as session:
        _, key = apikeys.create_api_key(session, "invoices-test", "read")
    return lambda path: client.get(path, headers={"Authorization": f"Bearer {key}"})


def sim_invoices(sim) -> list[dict]:
    state = requests.get(f"{sim.url}/_sim/state", timeout=5).json()["accounts"]
    return [{**i, "customer": a["id"]} for a in state for i in a["native"]["invoices"]]


def test_invoice_list_is_a_page_of_every_customer_invoice(get, mbo_sim):
    response = get("/api/v1/upstreams/mailboxorg/invoices")
    assert response.status_code == 200
    body = response.get_json()
    expected = sim_invoices(mbo_sim)
    assert body["total"] == len(expected) == 6 and body["page"] == 1 and len(body["items"]) == 6
    assert {(i["id"], i["customer"]) for i in body["items"]} == {(i["invoice_id"], i["customer"]) for i in expected}
    first = body["items"][0]
    assert set(first) == {"id", "date", "amount", "currency", "status", "customer", "description"}
    assert [i["date"] for i in body["items"]] == sorted((i["date"] for i in body["items"]), reverse=True)
    native = next(i for i in expected if i["invoice_id"] == first["id"])
    assert first["amount"] == float(native["amount"]) and first["currency"] == "EUR"
    assert first["status"] == native["status"] and first["date"] == native["date"]
    assert "token" not in response.get_data(as_text=True)

    second = get("/api/v1/upstreams/mailboxorg/invoices?page=2&per_page=4").get_json()
    assert second["total"] == 6 and len(second["items"]) == 2 and second["per_page"] == 4
    assert get("/api/v1/upstreams/mailboxorg/invoices?per_page=0").status_code == 400


def test_invoice_pdf_download(get):
    [invoice, *_] = get("/api/v1/upstreams/mailboxorg/invoices").get_json()["items"]
    response = get(f"/api/v1/upstreams/mailboxorg/invoices/{invoice['id']}.pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == f'attachment; filename="{invoice["id"]}.pdf"'
    pdf = response.get_data()
    assert pdf.startswith(b"%PDF") and pdf.rstrip().endswith(b"%%EOF")
    assert invoice["id"].encode() in pdf and invoice["customer"].encode() in pdf


def test_unknown_invoice_is_404(get):
    response = get("/api/v1/upstreams/mailboxorg/invoices/BMBO-0000-1999.pdf")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "invoice_not_found"


def test_invoice_csv_export(get):
    listed = get("/api/v1/upstreams/mailboxorg/invoices").get_json()["items"]
    response = get("/api/v1/upstreams/mailboxorg/invoices.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="mailboxorg-invoices.csv"'
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["id", "date", "amount", "currency", "status", "customer", "description"]
    assert len(rows) == 1 + len(listed)
    by_id = {row[0]: row for row in rows[1:]}
    for item in listed:
        row = by_id[item["id"]]
        assert row[1:] == [item["date"], f"{item['amount']:.2f}", item["currency"], item["status"],
                           item["customer"], item["description"]]


@pytest.mark.parametrize("path", ["invoices", "invoices.csv", "invoices/BMBO-1-2026.pdf"])
def test_unknown_upstream_is_404(get, path):
    response = get(f"/api/v1/upstreams/nowhere/{path}")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "upstream_not_found"


@pytest.mark.parametrize("path", ["invoices", "invoices.csv", "invoices/x.pdf"])
def test_provider_without_invoices_is_409_not_supported(get, path):
    response = get(f"/api/v1/upstreams/sandbox/{path}")
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "not_supported" and "sandbox" in error["message"]


def test_upstream_failure_is_502_with_a_safe_message(get, mbo_sim):
    requests.post(f"{mbo_sim.url}/_sim/faults", json={"error_rate": 1.0}, timeout=5)
    response = get("/api/v1/upstreams/mailboxorg/invoices.csv")
    assert response.status_code == 502
    error = response.get_json()["error"]
    assert error["code"] == "upstream_unavailable"
    assert "127.0.0.1" not in error["message"] and DEV_PASSWORD not in response.get_data(as_text=True)


def test_invoices_need_an_api_key(client):
    assert client.get("/api/v1/upstreams/mailboxorg/invoices").status_code == 401
    assert client.get("/api/v1/upstreams/mailboxorg/invoices.csv").status_code == 401


def test_invoices_are_documented(client):
    doc = client.get("/api/openapi.json").get_json()
    listing = doc["paths"]["/api/v1/upstreams/{name}/invoices"]["get"]
    assert {"200", "401", "404", "409", "502"} <= listing["responses"].keys()
    pdf = doc["paths"]["/api/v1/upstreams/{name}/invoices/{invoice_id}.pdf"]["get"]
    assert "application/pdf" in pdf["responses"]["200"]["content"]
    assert "text/csv" in doc["paths"]["/api/v1/upstreams/{name}/invoices.csv"]["get"]["responses"]["200"]["content"]
    assert {"Invoice", "InvoicePage"} <= doc["components"]["schemas"].keys()
