"""Hostile input answers a clear 4xx naming the problem, never a 5xx, and stores nothing, on
SQLite and PostgreSQL alike: deep nesting, non-finite numbers, NUL bytes and lone surrogates,
oversized headers values and numbers."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from provisioner import apikeys
from provisioner.models import Event, Job, Service
from tests.helpers import Signer, event_body


def counts(runtime) -> tuple[int, int, int]:
    with runtime.db.read() as s:
        return tuple(s.execute(select(func.count()).select_from(m)).scalar() for m in (Event, Job, Service))


@pytest.fixture
def admin_key(runtime):
    with runtime.db.transaction() as session:
        return apikeys.create_api_key(session, "hostile-admin", "admin")[1]


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _refused(r, status: int = 400) -> dict:
    assert r.status_code == status, (r.status_code, r.get_data(as_text=True)[:300])
    error = r.get_json()["error"]
    assert error["code"] and error["message"]
    return error


@pytest.mark.parametrize("depth", [40, 900, 5000])
def test_deeply_nested_hook_bodies_are_refused(client, signer, runtime, depth):
    body = event_body("service.create")
    body["service"]["custom_fields"] = {"deep": "MARKER"}
    raw = json.dumps(body).replace('"MARKER"', nested(depth))
    assert nested(depth) in raw
    error = _refused(signer.post(client, raw))
    assert error["code"] == "malformed_json" and "nested" in error["message"]
    assert counts(runtime) == (0, 0, 0)


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_in_hooks_are_refused(client, signer, runtime, number):
    raw = json.dumps(event_body("service.create")).replace('"Total Mailboxes": 5', f'"Total Mailboxes": {number}')
    assert number in raw
    error = _refused(signer.post(client, raw))
    assert error["code"] == "malformed_json" and "number" in error["message"]
    assert counts(runtime) == (0, 0, 0)


@pytest.mark.parametrize("where", ["service.id", "service.username", "service.suspend_reason", "client.email",
                                   "config_option"])
@pytest.mark.parametrize("bad", ["\\u0000", "\\ud800"])
def test_nul_bytes_and_lone_surrogates_in_hooks_are_refused(client, signer, runtime, where, bad):
    body = event_body("service.create")
    body["service"]["username"] = "owner"
    body["service"]["suspend_reason"] = "none"
    marker = "MARKER"
    if where == "config_option":
        body["service"]["config_options"]["Plan"] = marker
    else:
        section, name = where.split(".")
        body[section][name] = marker + "x"
    raw = json.dumps(body).replace(marker, bad)
    error = _refused(signer.post(client, raw))
    assert error["code"] == "invalid_characters"
    assert counts(runtime) == (0, 0, 0)


def test_a_long_webhook_id_is_refused(client, signer, runtime):
    raw = json.dumps(event_body("service.create"))
    error = _refused(signer.post(client, raw, msg_id="msg_" + "a" * 300))
    assert error["code"] == "invalid_webhook_id" and "255" in error["message"]
    assert counts(runtime) == (0, 0, 0)


def test_a_prefer_wait_with_thousands_of_digits_is_the_longest_wait(client, signer, runtime):
    raw = json.dumps(event_body("service.create"))
    headers = signer.headers(raw)
    r = client.post("/hooks/v1/events", data=raw, headers={**headers, "Prefer": "wait=" + "9" * 5000 + ",wait=0"})
    # Unparseable as a wait of its own: the hook is taken without one (RFC 7240: ignore it).
    assert r.status_code == 202, r.get_data(as_text=True)[:300]
    assert counts(runtime) == (1, 1, 1)


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_dates_that_overflow_in_utc_are_refused(client, signer, runtime, admin_key, when):
    body = event_body("service.create")
    body["occurred_at"] = when
    _refused(signer.post(client, body))
    assert counts(runtime) == (0, 0, 0)
    r = client.post("/api/v1/reconcile", json={"at": when, "dry_run": True},
                    headers={"Authorization": f"Bearer {admin_key}"})
    _refused(r)


@pytest.mark.parametrize("path", ["/api/v1/services/a%00b", "/api/v1/services?domain=a%00b",
                                  "/api/v1/jobs?service_id=%00", "/api/v1/events/%00",
                                  "/api/v1/services/%ED%A0%80"])
def test_nul_bytes_in_paths_and_filters_are_refused(client, admin_key, path):
    error = _refused(client.get(path, headers={"Authorization": f"Bearer {admin_key}"}))
    assert error["code"] == "invalid_characters"


@pytest.mark.parametrize("raw", [nested(3000), '{"reason": "x\\u0000y"}', '{"reason": NaN}',
                                 '{"reason": "\\ud800"}'])
def test_admin_api_bodies_are_refused_alike(client, admin_key, raw):
    r = client.post("/api/v1/services/1042/suspend", data=raw, content_type="application/json",
                    headers={"Authorization": f"Bearer {admin_key}"})
    error = _refused(r)
    assert error["code"] in ("malformed_json", "invalid_characters")


def test_a_405_names_the_allowed_methods(client, admin_key):
    r = client.delete("/api/v1/services", headers={"Authorization": f"Bearer {admin_key}"})
    assert r.status_code == 405
    assert set(r.headers["Allow"].split(", ")) >= {"GET"}
    assert r.get_json()["error"]["code"] == "method_not_allowed"


def test_a_malformed_signature_entry_does_not_hide_a_valid_one(client, signer, runtime):
    raw = json.dumps(event_body("service.create"))
    headers = signer.headers(raw)
    headers["webhook-signature"] = "garbage v1 v2,abc " + headers["webhook-signature"]
    r = client.post("/hooks/v1/events", data=raw, headers=headers)
    assert r.status_code == 202, r.get_data(as_text=True)[:300]
    headers = signer.headers(raw)
    headers["webhook-signature"] = "garbage v1,bm90LWl0"
    assert client.post("/hooks/v1/events", data=raw, headers=headers).status_code == 401
