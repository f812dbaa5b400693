"""Who may do what in the client area.

Two services on the sandbox: every client route (pages and JSON API) tried by
service A's customer with service B's object ids is a 404 and changes nothing;
no session is a 401; a write without the CSRF token (or with a wrong one) is a
403; SSO tokens work once, for 60 s, and attempts are rate-limited; the session
cookie is HttpOnly, SameSite=Lax and scoped to /client.
"""
from __future__ import annotations

import datetime as dt
import re
import time
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text

from provisioner.client import logins, sso
from provisioner.db import utcnow
from tests.helpers import sim_state
from tests.integration.test_client_api import (API, PASSWORD, app, build_app, make_service,  # noqa: F401
                                               send_event, sign_in)

COOKIE = "provisioner_client"
WRITE = ("POST", "PATCH", "DELETE", "PUT")


@pytest.fixture
def two(app, client, signer, worker, runtime):
    """Service A's customer signed in, and service B's objects (ids and its sandbox state)."""
    make_service(client, signer, worker, runtime, "901", "alpha.example")
    make_service(client, signer, worker, runtime, "902", "beta.example")
    b = sign_in(app, runtime, "902")
    ids = {
        "mailbox_id": b.post("/mailboxes", {"local_part": "bea", "password": PASSWORD}).get_json()["id"],
        "alias_id": b.post("/aliases", {"local_part": "info", "target": "bea@beta.example"}).get_json()["id"],
        "list_id": b.post("/lists", {"local_part": "team", "members": ["x@y.example"]}).get_json()["id"],
    }
    a = sign_in(app, runtime, "901")
    # A's own objects exist too, so a 404 is about ownership, not an empty account.
    a.post("/mailboxes", {"local_part": "ann", "password": PASSWORD})
    a.post("/aliases", {"local_part": "info", "target": "ann@alpha.example"})
    a.post("/lists", {"local_part": "team", "members": []})
    return a, ids


def client_routes(app):
    """(method, rule) of every client-area route, static files and the SSO landing aside."""
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/client") or rule.endpoint in ("client.static", "client.sso_login"):
            continue
        routes += [(method, rule.rule) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return routes


def fill(rule: str, ids: dict[str, str]) -> str:
    # Parameters this test has no object for (the extras' record ids) get a placeholder.
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: ids.get(m.group(1), "x1"), rule)


def request(http, method: str, path: str, csrf: str | None, body=None):
    headers = {"X-CSRF-Token": csrf} if csrf else {}
    if path.startswith(API):
        return http.open(path, method=method, json=body if body is not None else {}, headers=headers)
    return http.open(path, method=method, data={"csrf_token": csrf or "", **(body or {})})


BODIES = {  # plausible bodies, so a 404 is not a 422 in disguise
    "mailboxes": {"name": "Mallory", "quota_gb": 1, "password": "Mallory-Was-Here-1", "enabled": False},
    "lists": {"members": ["mallory@evil.example"]},
}


def _body_for(rule: str):
    if "/lists/" in rule:
        return {**BODIES["lists"], "members": "mallory@evil.example"} if not rule.startswith(API) else BODIES["lists"]
    if "/mailboxes/" in rule:
        body = dict(BODIES["mailboxes"])
        if not rule.startswith(API):
            body.update(password_confirm=body["password"], enabled="0", quota_gb="1")
        return body
    return None


def test_every_route_with_another_services_ids_is_404(app, runtime, sandbox_sim, two):
    a, ids = two
    before = [acc for acc in sim_state(sandbox_sim) if acc["domain"] == "beta.example"]
    tried = 0
    for method, rule in client_routes(app):
        if not any(f"<{name}>" in rule for name in ids):
            continue
        path = fill(rule, ids)
        r = request(a.http, method, path, a.csrf, _body_for(rule))
        assert r.status_code == 404, (method, path, r.status_code, r.get_data(as_text=True)[:300])
        tried += 1
    assert tried >= 19, tried
    assert [acc for acc in sim_state(sandbox_sim) if acc["domain"] == "beta.example"] == before
    # A only ever sees its own objects.
    for kind in ("mailboxes", "aliases", "lists"):
        addresses = [item["address"] for item in a.get(f"/{kind}").get_json()["items"]]
        assert addresses and all(x.endswith("@alpha.example") for x in addresses)


def test_no_session_is_401_everywhere(app, runtime, two):
    _, ids = two
    anonymous = app.test_client()
    for method, rule in client_routes(app):
        path = fill(rule, ids)
        r = request(anonymous, method, path, None, _body_for(rule))
        assert r.status_code == 401, (method, path, r.status_code)
        if path.startswith(API):
            assert r.get_json()["error"]["code"] == "unauthorized"
        else:
            assert "sign" in r.get_data(as_text=True).lower()


def test_writes_without_the_csrf_token_are_403(app, runtime, sandbox_sim, two):
    a, _ = two
    own = {"mailbox_id": a.get("/mailboxes").get_json()["items"][0]["id"],
           "alias_id": a.get("/aliases").get_json()["items"][0]["id"],
           "list_id": a.get("/lists").get_json()["items"][0]["id"]}
    before = sim_state(sandbox_sim)
    tried = 0
    for method, rule in client_routes(app):
        if method not in WRITE:
            continue
        path = fill(rule, own)
        for csrf in (None, "not-the-token", a.csrf[:-1]):
            r = request(a.http, method, path, csrf, _body_for(rule) or {"local_part": "zed", "password": PASSWORD,
                                                                        "target": "z@z.example"})
            assert r.status_code == 403, (method, path, csrf, r.status_code)
            tried += 1
    assert tried >= 3 * 16
    assert sim_state(sandbox_sim) == before
    # The right token in a form field works for pages, and in the header for the API.
    assert a.http.post("/client/aliases", data={"csrf_token": a.csrf, "local_part": "new",
                                                "target": "x@y.example"}).status_code == 303
    # A token in a JSON body does not count: the header is required.
    r = a.http.post(API + "/aliases", json={"csrf_token": a.csrf, "local_part": "n2", "target": "x@y.example"})
    assert r.status_code == 403


def test_sso_token_works_once(app, runtime, two):
    url, _ = sso.issue_token(runtime, "901")
    path = urlsplit(url).path
    first, second = app.test_client(), app.test_client()
    assert first.get(path).status_code == 303
    r = second.get(path)
    assert r.status_code == 403 and "cannot be used" in r.get_data(as_text=True)
    assert second.get(API + "/session").status_code == 401
    assert app.test_client().get("/client/sso/made-up-token").status_code == 403
    # Only a hash is stored.
    from provisioner.models import SsoToken
    with runtime.db.read() as s:
        stored = [t.token_hash for t in s.query(SsoToken).all()]
    token = path.rsplit("/", 1)[1]
    assert token not in stored and sso.token_hash(runtime.settings.secret_key, token) in stored


def test_sso_token_expires_after_60_seconds(app, runtime, two, monkeypatch):
    url, expires_at = sso.issue_token(runtime, "901")
    path = urlsplit(url).path
    monkeypatch.setattr(sso, "utcnow", lambda: expires_at + dt.timedelta(seconds=1))
    r = app.test_client().get(path)
    assert r.status_code == 403
    monkeypatch.setattr(sso, "utcnow", lambda: expires_at - dt.timedelta(seconds=1))
    assert app.test_client().get(path).status_code == 303


def test_sso_token_of_a_terminated_service_is_refused(app, client, signer, worker, runtime, two):
    url, _ = sso.issue_token(runtime, "902")
    send_event(client, signer, worker, "service.terminate", "902", "beta.example")
    assert app.test_client().get(urlsplit(url).path).status_code == 403


def test_sso_attempts_are_rate_limited_per_ip(app, runtime, two):
    http = app.test_client()
    guesser = {"REMOTE_ADDR": "198.51.100.9"}
    for _ in range(10):
        assert http.get("/client/sso/guess", environ_base=guesser).status_code == 403
    r = http.get("/client/sso/guess", environ_base=guesser)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    # Even a good token waits; another address is not affected.
    url, _ = sso.issue_token(runtime, "901")
    assert http.get(urlsplit(url).path, environ_base=guesser).status_code == 429
    r = app.test_client().get(urlsplit(url).path, environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert r.status_code == 303


def test_only_refused_links_count_so_one_network_signs_in_freely(app, runtime, two):
    office = {"REMOTE_ADDR": "203.0.113.50"}          # many customers behind one NAT
    for _ in range(sso.FAILURE_LIMIT + 5):
        url, _ = sso.issue_token(runtime, "901")
        assert app.test_client().get(urlsplit(url).path, environ_base=office).status_code == 303


def test_the_limit_is_shared_by_every_process(runtime, two):
    # Two app objects on one database stand for two gunicorn workers (or machines).
    first, second = build_app(runtime), build_app(runtime)
    guesser = {"REMOTE_ADDR": "198.51.100.10"}
    for n in range(sso.FAILURE_LIMIT):
        app = first if n % 2 else second
        assert app.test_client().get("/client/sso/guess", environ_base=guesser).status_code == 403
    assert first.test_client().get("/client/sso/guess", environ_base=guesser).status_code == 429
    assert second.test_client().get("/client/sso/guess", environ_base=guesser).status_code == 429


def test_refusals_age_out_of_the_window(runtime, two):
    start = utcnow()
    for n in range(sso.FAILURE_LIMIT):
        sso.record_failure(runtime, "198.51.100.11", now=start + dt.timedelta(seconds=n))
    wait = sso.failure_wait(runtime, "198.51.100.11", now=start + dt.timedelta(seconds=10))
    assert wait == pytest.approx(50)                  # the oldest of the ten ages out at 60 s
    assert sso.failure_wait(runtime, "198.51.100.11", now=start + dt.timedelta(seconds=60.5)) is None
    assert sso.failure_wait(runtime, "198.51.100.12", now=start) is None
    with runtime.db.read() as s:                      # addresses are kept only as keyed hashes
        assert "198.51.100.11" not in str(s.execute(text("SELECT client FROM sso_failures")).all())


def test_session_cookie_flags(app, runtime, two):
    url, _ = sso.issue_token(runtime, "901")
    http = app.test_client()
    r = http.get(urlsplit(url).path)
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/client" in cookie
    assert "Expires=" in cookie and "Secure" not in cookie            # the test PUBLIC_URL is http
    assert r.headers["Referrer-Policy"] == "same-origin"
    assert r.headers["Cache-Control"] == "private, no-store"


def test_session_cookie_is_secure_under_https(runtime, two):
    runtime.settings.public_url = "https://mail.reseller.example"
    app = build_app(runtime)
    url, _ = sso.issue_token(runtime, "901")
    assert url.startswith("https://mail.reseller.example/client/sso/")
    cookie = app.test_client().get(urlsplit(url).path).headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie


def test_a_tampered_or_stale_cookie_is_no_session(app, runtime, two, monkeypatch):
    a, _ = two
    value = a.http.get_cookie(COOKIE, path="/client").value
    forged = app.test_client()
    forged.set_cookie(COOKIE, value.replace(value[-5:], "AAAAA"), path="/client")
    assert forged.get(API + "/session").status_code == 401
    # The lifetime (an hour) is checked on the server: an old cookie is refused even if a
    # browser kept it.
    import itsdangerous.timed
    later = int(time.time()) + 3601
    monkeypatch.setattr(itsdangerous.timed.TimestampSigner, "get_timestamp", lambda self: later)
    assert a.get("/session").status_code == 401


def test_a_terminated_services_session_ends(app, client, signer, worker, runtime, two):
    b = sign_in(app, runtime, "902")
    send_event(client, signer, worker, "service.terminate", "902", "beta.example")
    r = b.get("/session")
    assert r.status_code == 401


def test_sso_tokens_are_purged_a_day_after_expiry(runtime, two):
    from provisioner.models import SsoToken
    old = utcnow() - dt.timedelta(days=2)
    sso.issue_token(runtime, "901", now=old)
    with runtime.db.read() as s:
        assert s.query(SsoToken).filter(SsoToken.created_at == old).count() == 1
    sso.issue_token(runtime, "901")
    with runtime.db.read() as s:
        assert s.query(SsoToken).filter(SsoToken.created_at == old).count() == 0
        assert s.query(SsoToken).count() == 3          # the two sign-ins of the fixture and the new one


def _cookie(customer) -> str:
    return customer.http.get_cookie(COOKIE, path="/client").value


def _replay(app, value: str):
    """A browser (or a thief) presenting a copy of a cookie."""
    http = app.test_client()
    http.set_cookie(COOKIE, value, path="/client")
    return http.get(API + "/session")


def test_a_signed_out_cookie_stops_working_on_the_server(app, runtime, two):
    a, _ = two
    kept = _cookie(a)
    assert _replay(app, kept).status_code == 200
    assert a.post("/logout", {}).status_code == 204
    r = _replay(app, kept)
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "unauthorized"
    with runtime.db.read() as s:
        reasons = [row.ended_reason for row in s.execute(text("SELECT ended_reason FROM client_logins")).all()]
    assert logins.SIGNED_OUT in reasons


def test_the_sign_out_page_ends_the_login_too(app, runtime, two):
    a, _ = two
    kept = _cookie(a)
    page = a.http.post("/client/logout", data={"csrf_token": a.csrf})
    assert page.status_code == 200 and "signed out" in page.get_data(as_text=True)
    assert _replay(app, kept).status_code == 401


def test_a_new_sign_in_ends_the_services_older_sessions(app, runtime, two):
    a, _ = two
    kept = _cookie(a)
    again = sign_in(app, runtime, "901")              # the customer opens the client area anew
    r = a.get("/session")
    assert r.status_code == 401 and "signed in to again" in r.get_json()["error"]["message"]
    assert _replay(app, kept).status_code == 401
    assert again.get("/session").status_code == 200
    # Another service's sessions are not touched.
    b = sign_in(app, runtime, "902")
    assert sign_in(app, runtime, "901").get("/session").status_code == 200
    assert b.get("/session").status_code == 200


def test_an_operator_suspension_ends_the_session(app, client, runtime, two):
    from provisioner.apikeys import create_api_key
    a, _ = two
    with runtime.db.transaction() as s:
        _, key = create_api_key(s, "ops", "admin")
    r = client.post("/api/v1/services/901/suspend", json={"reason": "abuse report"},
                    headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 202, r.get_json()
    r = a.get("/session")
    assert r.status_code == 401 and "suspended" in r.get_json()["error"]["message"]
    # The billing system may still send the customer in, to read why.
    assert sign_in(app, runtime, "901").get("/session").status_code == 200


def test_an_idle_session_ends_and_use_keeps_it_alive(app, runtime, two, monkeypatch):
    a, _ = two
    start = utcnow()
    monkeypatch.setattr(logins, "utcnow", lambda: start + dt.timedelta(minutes=50))
    assert a.get("/session").status_code == 200       # used: an hour from now again
    monkeypatch.setattr(logins, "utcnow", lambda: start + dt.timedelta(minutes=100))
    assert a.get("/session").status_code == 200
    monkeypatch.setattr(logins, "utcnow", lambda: start + dt.timedelta(minutes=161))
    assert a.get("/session").status_code == 401       # an hour without use


def test_no_session_outlives_its_absolute_cap(app, runtime, two, monkeypatch):
    a, _ = two
    start = utcnow()
    for minutes in range(50, 12 * 60, 50):            # in use all day long
        monkeypatch.setattr(logins, "utcnow", lambda m=minutes: start + dt.timedelta(minutes=m))
        assert a.get("/session").status_code == 200, minutes
    monkeypatch.setattr(logins, "utcnow", lambda: start + logins.ABSOLUTE + dt.timedelta(seconds=1))
    assert a.get("/session").status_code == 401


def test_only_a_hash_of_the_login_token_is_stored(app, runtime, two):
    a, _ = two
    import base64
    import json as _json
    payload = _cookie(a).split(".")[0]
    data = _json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    token = data["login"]
    with runtime.db.read() as s:
        ids = [row.id for row in s.execute(text("SELECT id FROM client_logins")).all()]
    assert token not in ids and logins.login_hash(runtime.settings.secret_key, token) in ids
