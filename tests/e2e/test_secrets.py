"""Passwords pass through to the upstream and are kept nowhere: no log, no table."""
from __future__ import annotations

import json
from urllib.parse import quote, quote_plus

import pytest

from tests.helpers import event_body, table_dump

pytestmark = pytest.mark.e2e

SERVICE = "8001"
CREATE_PASSWORD = "Zq7-create-Ku4vX93wLp2"
CHANGED_PASSWORD = "Rt5-change-Hm8sN41yQd6"


def _forms(secret: str) -> set[str]:
    """The password as it could appear: raw, URL- or JSON-escaped."""
    return {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}


def test_passwords_are_not_kept_anywhere(stack):
    answers = []
    for kind, password in (("service.create", CREATE_PASSWORD),
                           ("service.change_password", CHANGED_PASSWORD)):
        body = event_body(kind, SERVICE, domain="secrets-e2e.example.com", password=password)
        resp = stack.post(body, wait=20)
        assert resp.status_code == 200, resp.text
        assert resp.json()["job"]["state"] == "succeeded", resp.text
        answers.append(resp.text)
        answers.append(stack.admin_get(f"/api/v1/jobs/{resp.json()['job']['id']}").text)

    # Both reached the upstream: the create carried the first, an update the second.
    calls = stack.sim_calls()
    assert calls.get("accounts.create") == 1 and calls.get("accounts.update", 0) >= 1, calls
    assert stack.scalar("SELECT pending_password FROM services WHERE id = :id", id=SERVICE) is None
    assert stack.count("services") == 1

    # Stop the processes first so that every log line is flushed to its file.
    for proc in stack.procs:
        proc.stop()
    logs = {proc.name: proc.log_text() for proc in stack.procs}
    assert all(logs.values()), "a process wrote no log at all"
    places = {**{f"log of {name}": text for name, text in logs.items()},
              "database": table_dump(stack.database_url),
              "HTTP answers": "\n".join(answers)}
    for secret in (CREATE_PASSWORD, CHANGED_PASSWORD):
        for where, text in places.items():
            leaked = [form for form in _forms(secret) if form in text]
            assert not leaked, f"password {secret[:6]}… found in the {where}"
