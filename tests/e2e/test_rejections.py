"""Hooks that must be refused, over real HTTP, and leave nothing behind."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from provisioner.devsetup import new_webhook_secret
from tests.helpers import event_body

pytestmark = pytest.mark.e2e


def _error(resp, status: int, code: str | None = None) -> dict:
    assert resp.status_code == status, f"expected {status}, got {resp.status_code}: {resp.text}"
    assert resp.headers["Content-Type"].startswith("application/json"), resp.headers
    error = resp.json()["error"]
    assert error["message"], error
    if code is not None:
        assert error["code"] == code, error
    return error


def test_rejected_hooks_write_nothing(stack):
    create = event_body("service.create", "9001", domain="rejected-e2e.example.com")

    # Signed with a secret the provisioner does not know.
    _error(stack.post(create, secret=new_webhook_secret()), 401, "invalid_signature")

    # No signature at all.
    raw, headers = stack.signed(create)
    del headers["webhook-signature"]
    _error(stack.post_raw(raw, headers), 401)

    # Correctly signed, but ten minutes ago.
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)
    _error(stack.post(create, timestamp=old), 401, "stale_timestamp")

    # A correct signature over a body that is not JSON.
    _error(stack.post('{"type": "service.create", "service": '), 400, "malformed_json")

    # JSON that does not match the schema: the answer names the fields.
    bad = event_body("service.create", "9001", domain="not a domain")
    bad["type"] = "service.explode"
    error = _error(stack.post(bad), 400)
    assert set(error["fields"]) >= {"type", "service.domain"}, error

    # Over 256 KiB.
    huge = dict(create, service={**create["service"], "custom_fields": {"blob": "x" * (300 * 1024)}})
    _error(stack.post(json.dumps(huge)), 413)

    # A billing product id no product config claims.
    _error(stack.post(event_body("service.create", "9001", domain="rejected-e2e.example.com",
                                 product_id="99999")), 422, "unknown_product")

    # An option outside its range: the answer names the option.
    error = _error(stack.post(event_body("service.create", "9001", domain="rejected-e2e.example.com",
                                         options={"Total Mailboxes": 10001, "Mailbox Quota (GB)": 10})), 422)
    named = error["message"] + " ".join(error.get("fields") or {})
    assert "Total Mailboxes" in named, error

    # A suspension for a service billing never created here.
    _error(stack.post(event_body("service.suspend", "9002", domain="never-e2e.example.com")),
           404, "service_not_found")

    # Nothing half-written anywhere.
    assert stack.count("events") == 0
    assert stack.count("jobs") == 0
    assert stack.count("job_attempts") == 0
    assert stack.count("services") == 0
    assert stack.sim_accounts() == []
    assert stack.sim_calls().get("accounts.create", 0) == 0
