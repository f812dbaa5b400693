"""Hostile input answers a clear 4xx naming the problem, never a 5xx, and stores nothing, on
SQLite and PostgreSQL alike: deep nesting, non-finite numbers, NUL bytes and lone surrogates,
oversized headers values and numbers."""
from __future__ import annotations

import datetime as dt
import json
import re
import time
import urllib.parse

import pytest
from sqlalchemy import func, select

from provisioner import apikeys
from provisioner.intake import sign
from provisioner.models import Event, Job, ReconcileRun, Service
from tests.helpers import event_body


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


# --- found by the fuzzers of tests/fuzz (issue 12) ----------------------------------------------

def _admin(admin_key) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_key}"}


def test_a_signature_header_with_non_ascii_text_is_401_not_500(client, signer, runtime):
    raw = json.dumps(event_body("service.create"))
    signed = signer.headers(raw)
    for signature in ("v1,é", "v1,é " + signed["webhook-signature"], "v1,\xff\xfe"):
        headers = {**signed, "webhook-signature": signature}
        r = client.post("/hooks/v1/events", data=raw, headers=headers)
        if signature.startswith("v1,é v1,"):     # the valid entry after it still counts
            assert r.status_code == 202, r.get_data(as_text=True)[:300]
            continue
        assert _refused(r, 401)["code"] == "invalid_signature"
    assert counts(runtime) == (1, 1, 1)


@pytest.mark.parametrize("body", [b"\xef\xbb\xbf{}", b'{"type": "service.create\xff"}', "{}".encode("utf-16")])
def test_a_validly_signed_body_that_is_not_utf8_is_400_naming_the_encoding(client, signer, runtime, body):
    for path in ("/hooks/v1/events", "/hooks/v1/events/validate"):
        timestamp = int(time.time())
        headers = {"webhook-id": "msg_bytes", "webhook-timestamp": str(timestamp), "content-type": "application/json",
                   "webhook-signature": "v1," + sign(signer.secret, "msg_bytes", timestamp, body)}
        error = _refused(client.post(path, data=body, headers=headers))
        assert error["code"] == "malformed_json"
        assert "UTF-8" in error["message"] or "BOM" in error["message"]
    assert counts(runtime) == (0, 0, 0)


def test_signing_bytes_is_the_standard_webhooks_signature(signer):
    raw = json.dumps(event_body("service.create", domain="bücher.example"), ensure_ascii=False)
    at = dt.datetime(2026, 11, 21, 10, tzinfo=dt.timezone.utc)
    headers = signer.headers(raw, "msg_same", at)
    assert headers["webhook-signature"] == "v1," + sign(signer.secret, "msg_same", int(at.timestamp()),
                                                        raw.encode())


@pytest.mark.parametrize("timestamp", ["nan", "inf", "1e9", "{now}.5", "{now}.0", "0x10", "9" * 5000])
def test_a_timestamp_that_is_not_whole_unix_seconds_is_named(client, signer, runtime, timestamp):
    raw = json.dumps(event_body("service.create"))
    headers = {**signer.headers(raw), "webhook-timestamp": timestamp.format(now=int(time.time()))}
    error = _refused(client.post("/hooks/v1/events", data=raw, headers=headers), 401)
    assert error["code"] == "invalid_signature" and "webhook-timestamp" in error["message"]
    assert counts(runtime) == (0, 0, 0)


@pytest.mark.parametrize("dry_run", [0, 0.0, 1, "no", "true", "yes", None])
def test_dry_run_must_be_a_json_boolean(client, runtime, admin_key, dry_run):
    # {"dry_run": 0.0} used to start a real pass (marshmallow read 0 as false).
    r = client.post("/api/v1/reconcile", json={"dry_run": dry_run}, headers=_admin(admin_key))
    error = _refused(r)
    assert error["code"] == "invalid_body" and "dry_run" in error["fields"]
    with runtime.db.read() as s:
        assert s.execute(select(func.count()).select_from(ReconcileRun)).scalar() == 0


@pytest.mark.parametrize("enabled", [0, 1, "false", "no", None])
def test_auto_suspend_enabled_must_be_a_json_boolean(client, signer, runtime, enabled):
    body = event_body("service.create", auto_suspend={"enabled": enabled})
    error = _refused(signer.post(client, body))
    assert error["code"] == "invalid_event" and "service.auto_suspend.enabled" in error["fields"]
    assert counts(runtime) == (0, 0, 0)


#: every list filter that takes free text, and a path that takes it
TEXT_FILTERS = [("/api/v1/services", name) for name in ("source", "domain", "client_id", "product_id", "upstream")] \
    + [("/api/v1/jobs", "source"), ("/api/v1/jobs", "service_id"), ("/api/v1/events", "source"),
       ("/api/v1/events", "service_id"), ("/api/v1/usage", "source"), ("/api/v1/usage", "upstream"),
       ("/api/v1/usage", "product_id"), ("/api/v1/usage", "client_id"), ("/api/v1/notifications", "source"),
       ("/api/v1/notifications", "service_id"), ("/api/v1/services/1042", "source"),
       ("/api/v1/services/1042/usage", "source")]


@pytest.mark.parametrize("path, name", TEXT_FILTERS)
@pytest.mark.parametrize("value", ["", "%20", "%20%09%0D%0A"])
def test_an_empty_filter_is_400_naming_it(client, admin_key, path, name, value):
    error = _refused(client.get(f"{path}?{name}={value}", headers=_admin(admin_key)))
    assert error["code"] == "invalid_query" and error["fields"] == {name: "Must not be empty."}


@pytest.mark.parametrize("path, name", TEXT_FILTERS)
def test_the_document_says_a_filter_is_not_empty(client, path, name):
    document = client.get("/api/openapi.json").get_json()
    template = path.replace("/1042", "/{service_id}")
    parameter = next(p for p in document["paths"][template]["get"]["parameters"] if p["name"] == name)
    schema = parameter["schema"]
    assert schema["minLength"] == 1 and schema["maxLength"] >= 32
    assert not re.search(schema["pattern"], " \t") and re.search(schema["pattern"], " x ")


def test_a_filter_longer_than_its_limit_counts_what_was_sent(client, admin_key):
    # 32 characters of source once trimmed, 33 as sent: the document's maxLength is of what is sent.
    r = client.get("/api/v1/services?source=%20" + "a" * 32, headers=_admin(admin_key))
    error = _refused(r)
    assert error["fields"] == {"source": "Must be at most 32 characters (this is 33)."}
    assert client.get("/api/v1/services?source=" + "a" * 32, headers=_admin(admin_key)).status_code == 200


@pytest.fixture
def live_service(client, signer, runtime):
    assert signer.post(client, event_body("service.create")).status_code == 202
    return "1042"


@pytest.mark.parametrize("path, body, field", [
    ("suspend", {"reason": ""}, "reason"),
    ("suspend", {"reason": " \t\n"}, "reason"),
    ("terminate", {"confirm": "1042", "reason": ""}, "reason"),
    ("terminate", {"confirm": "", "reason": "asked"}, "confirm"),
])
def test_an_empty_reason_or_confirmation_is_400_naming_it(client, admin_key, live_service, runtime, path, body,
                                                          field):
    r = client.post(f"/api/v1/services/1042/{path}", json=body, headers=_admin(admin_key))
    error = _refused(r)
    assert error["code"] == "invalid_body" and error["fields"] == {field: "Must not be empty."}
    assert counts(runtime) == (1, 1, 1)


@pytest.mark.parametrize("path", ["suspend", "terminate"])
def test_the_255_character_reason_limit_is_of_the_reason_as_sent(client, admin_key, live_service, runtime, path):
    extra = {"confirm": "1042"} if path == "terminate" else {}
    for reason in (" " + "x" * 255, "x" * 256):
        r = client.post(f"/api/v1/services/1042/{path}", json={"reason": reason, **extra}, headers=_admin(admin_key))
        error = _refused(r)
        assert error["fields"] == {"reason": "Must be at most 255 characters (this is 256)."}
    assert counts(runtime) == (1, 1, 1)
    r = client.post(f"/api/v1/services/1042/{path}", json={"reason": "x" * 255, **extra}, headers=_admin(admin_key))
    assert r.status_code == 202, r.get_json()


def test_the_document_gives_reasons_the_limits_the_validators_apply(client):
    schemas = client.get("/api/openapi.json").get_json()["components"]["schemas"]
    for name, fields in (("SuspendRequest", ["reason"]), ("TerminateRequest", ["reason", "confirm"])):
        for field in fields:
            schema = schemas[name]["properties"][field]
            assert schema["minLength"] == 1 and schema["maxLength"] == (255 if field == "reason" else 64)
            assert "pattern" in schema


def test_every_operation_documents_the_400_for_bad_text_and_patterns_its_strings(client):
    document = client.get("/api/openapi.json").get_json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert "400" in operation["responses"], (method, path)
            for parameter in operation.get("parameters", []):
                if parameter["in"] in ("path", "query") and parameter["schema"].get("type") == "string":
                    assert "pattern" in parameter["schema"], (method, path, parameter["name"])


@pytest.mark.parametrize("path", ["/api/v1/services/1042", "/api/v1/services/1042/usage"])
def test_single_service_operations_document_the_source_they_take(client, admin_key, live_service, path):
    document = client.get("/api/openapi.json").get_json()
    operation = document["paths"][path.replace("1042", "{service_id}")]["get"]
    assert "source" in [p["name"] for p in operation["parameters"]] and "409" in operation["responses"]
    assert client.get(f"{path}?source=default", headers=_admin(admin_key)).status_code == 200
    assert _refused(client.get(f"{path}?sauce=default", headers=_admin(admin_key)))["code"] == "invalid_query"


@pytest.mark.parametrize("query, ok", [("state=failed", True), ("state=%20failed%20,,queued%20", True),
                                       ("state=,", False), ("state=failed,done", False), ("state=", False)])
def test_comma_separated_filters_match_their_documented_pattern(client, admin_key, query, ok):
    document = client.get("/api/openapi.json").get_json()
    pattern = next(p for p in document["paths"]["/api/v1/jobs"]["get"]["parameters"]
                   if p["name"] == "state")["schema"]["pattern"]
    value = urllib.parse.unquote(query.partition("=")[2])
    assert bool(re.search(pattern, value)) is ok
    r = client.get(f"/api/v1/jobs?{query}", headers=_admin(admin_key))
    assert r.status_code == (200 if ok else 400), r.get_json()


@pytest.mark.parametrize("at, ok", [("1970-01-01T00:00:00Z", True), ("2199-12-31T23:59:59-01:00", True),
                                    ("1969-12-31T23:59:59Z", False), ("2200-01-01T00:00:00Z", False)])
def test_the_reconcile_at_window_is_documented(client, admin_key, at, ok):
    schema = client.get("/api/openapi.json").get_json()["components"]["schemas"]["ReconcileRequest"]
    assert bool(re.search(schema["properties"]["at"]["pattern"], at)) is ok
    r = client.post("/api/v1/reconcile", json={"at": at, "dry_run": True}, headers=_admin(admin_key))
    assert r.status_code == (202 if ok else 400), r.get_json()
    if ok:      # let the pass end before the upstreams' simulators stop
        deadline = time.monotonic() + 20
        while client.get(r.headers["Location"], headers=_admin(admin_key)).get_json()["state"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.1)
