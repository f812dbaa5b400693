"""The reseller's invoices on the console's upstreams page (list, PDF, CSV), against the
mailbox.org simulator, with the invoice API tests' runtime."""
from __future__ import annotations

import csv
import io

import requests

from tests.integration.test_console import make_key, page, sign_in
from tests.integration.test_invoices import DEV_PASSWORD, mbo_sim, runtime, sim_invoices  # noqa: F401


def _signed_in(client, runtime, scope="read", source=None):
    assert sign_in(client, make_key(runtime, scope, source)).status_code == 303
    return client


def test_invoices_listed_and_downloaded_as_pdf_and_csv(client, runtime, mbo_sim):
    _signed_in(client, runtime)                            # a read key may read them, as in the API
    html = page(client, "/admin/upstreams")
    assert 'href="/admin/upstreams/mailboxorg/invoices"' in html
    assert 'href="/admin/upstreams/sandbox/invoices"' not in html      # the sandbox has none

    html = page(client, "/admin/upstreams/mailboxorg/invoices")
    expected = sim_invoices(mbo_sim)
    assert "6 invoices" in html
    for invoice in expected:
        assert f'/admin/upstreams/mailboxorg/invoices/{invoice["invoice_id"]}.pdf' in html
        assert invoice["customer"] in html

    first = expected[0]
    response = client.get(f'/admin/upstreams/mailboxorg/invoices/{first["invoice_id"]}.pdf')
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == f'attachment; filename="{first["invoice_id"]}.pdf"'
    assert response.headers["Cache-Control"] == "private, no-store"
    assert response.get_data().startswith(b"%PDF")

    response = client.get("/admin/upstreams/mailboxorg/invoices.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["id", "date", "amount", "currency", "status", "customer", "description"]
    assert {row[0] for row in rows[1:]} == {i["invoice_id"] for i in expected}

    assert client.get("/admin/upstreams/mailboxorg/invoices/BMBO-0000-1999.pdf").status_code == 404
    assert client.get("/admin/upstreams/sandbox/invoices").status_code == 409
    assert client.get("/admin/upstreams/nowhere/invoices.csv").status_code == 404


def test_a_source_scoped_key_is_offered_no_invoices(client, runtime):
    _signed_in(client, runtime, "admin", "default")
    assert "/invoices" not in page(client, "/admin/upstreams")
    for path in ("invoices", "invoices.csv", "invoices/x.pdf"):
        response = client.get(f"/admin/upstreams/mailboxorg/{path}")
        assert response.status_code == 403 and "cover every source" in response.get_data(as_text=True)


def test_an_upstream_failure_is_a_502_page_with_the_safe_message(client, runtime, mbo_sim):
    _signed_in(client, runtime)
    requests.post(f"{mbo_sim.url}/_sim/faults", json={"error_rate": 1.0}, timeout=5)
    response = client.get("/admin/upstreams/mailboxorg/invoices")
    body = response.get_data(as_text=True)
    assert response.status_code == 502 and "127.0.0.1" not in body and DEV_PASSWORD not in body
