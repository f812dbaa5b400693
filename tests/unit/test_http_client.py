"""HttpClient against a real local HTTP server (no mocking of requests)."""
from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from provisioner.providers import errors
from provisioner.providers.http import HttpClient, Masker, is_secret_key, parse_retry_after

SECRET = "s3cr3t-KEY/42"          # has a "/" so its URL-escaped form differs
PASSWORD = "hunter2-pw"


class Upstream:
    """A tiny programmable upstream: the path chooses the behaviour."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        req = Request(environ)
        with self.lock:
            self.hits[req.path] += 1
            hits = self.hits[req.path]
        return self.respond(req, hits)(environ, start_response)

    def respond(self, req: Request, hits: int) -> Response:
        parts = req.path.strip("/").split("/")
        head = parts[0]
        if head == "ok":
            return _json({"ok": True, "method": req.method})
        if head == "empty":
            return Response(status=204)
        if head == "status":
            code = int(parts[1])
            headers = {"Retry-After": req.args["retry_after"]} if "retry_after" in req.args else {}
            msg = req.args.get("msg", "upstream says no")
            return _json({"error": {"code": "x", "message": msg}}, code, headers)
        if head == "flaky":             # fails with 503 for the first N hits
            if hits <= int(parts[1]):
                return _json({"error": {"message": "busy"}}, 503)
            return _json({"ok": True, "hits": hits})
        if head == "sleep":
            time.sleep(float(req.args.get("s", "1")))
            return _json({"ok": True})
        if head == "malformed":
            return Response("<html>proxy error</html>", 200, content_type="text/html")
        if head == "echo":              # reflects what was sent, to test masking of answers
            return _json({"query": req.query_string.decode(), "form": req.form.to_dict(),
                          "json": req.get_json(silent=True),
                          "auth": req.headers.get("Authorization", "")})
        if head == "rc-error":          # ResellerClub style: an error inside a 200
            return _json({"status": "ERROR", "message": f"Access Denied for api-key {SECRET}"})
        return _json({"error": {"message": "no route"}}, 404)


def _json(data, status: int = 200, headers=None) -> Response:
    return Response(json.dumps(data), status, headers=headers, content_type="application/json")


class QuietHandler(WSGIRequestHandler):
    """The fake upstream's own access log is not ours to test."""

    def log(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, Upstream]]:
    app = Upstream()
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", app
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _reset(upstream):
    upstream[1].hits.clear()


class FastClient(HttpClient):
    """Records backoff sleeps instead of waiting."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.sleeps: list[float] = []

    def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


_counter = Counter()


def client(url: str, **kw) -> FastClient:
    # a provider name per client keeps metric samples of tests apart
    _counter["n"] += 1
    kw.setdefault("timeout", 2)
    return FastClient(kw.pop("provider", f"t{_counter['n']}"), url, **kw)


def calls(provider: str, action: str, outcome: str) -> float:
    return REGISTRY.get_sample_value(
        "provisioner_upstream_calls_total",
        {"provider": provider, "action": action, "outcome": outcome}) or 0.0


# --- plain answers -----------------------------------------------------------------

def test_json_answer_is_parsed(upstream):
    url, _ = upstream
    resp = client(url).request("GET", "/ok", action="ping")
    assert resp.status == 200 and resp.data == {"ok": True, "method": "GET"}
    assert client(url + "/").get("ok", action="ping") == {"ok": True, "method": "GET"}


def test_empty_answer_is_none(upstream):
    url, _ = upstream
    assert client(url).delete("/empty", action="delete_thing") is None


@pytest.mark.parametrize("status, cls", [
    (400, errors.ValidationError), (401, errors.AuthError), (403, errors.AuthError),
    (404, errors.NotFound), (409, errors.Conflict), (422, errors.ValidationError),
    (429, errors.RateLimited), (500, errors.Unavailable), (503, errors.Unavailable),
    (418, errors.ProviderError),
])
def test_status_mapping(upstream, status, cls):
    url, _ = upstream
    c = client(url, provider="mapping")
    with pytest.raises(errors.ProviderError) as info:
        c.post(f"/status/{status}", action="create_account", json={})
    err = info.value
    assert type(err) is cls
    assert err.status == status and err.action == "create_account"
    assert err.message == f"mapping create_account: HTTP {status}: upstream says no"
    assert str(err) == err.message
    assert err.safe_message == cls.safe_message          # never the upstream's text
    assert err.retryable is (cls in (errors.RateLimited, errors.Unavailable))
    assert "upstream says no" in err.body


# --- retries ----------------------------------------------------------------------

def test_get_is_retried_on_5xx_until_it_succeeds(upstream):
    url, app = upstream
    c = client(url, max_safe_retries=2, backoff=0.1)
    assert c.get("/flaky/2", action="list_accounts") == {"ok": True, "hits": 3}
    assert app.hits["/flaky/2"] == 3
    assert len(c.sleeps) == 2
    assert 0.05 <= c.sleeps[0] <= 0.1 and 0.1 <= c.sleeps[1] <= 0.2   # exponential, jittered


def test_get_gives_up_after_max_retries(upstream):
    url, app = upstream
    c = client(url, max_safe_retries=2)
    with pytest.raises(errors.Unavailable):
        c.get("/status/503", action="get_account")
    assert app.hits["/status/503"] == 3


def test_post_is_not_retried(upstream):
    url, app = upstream
    c = client(url, max_safe_retries=3)
    with pytest.raises(errors.Unavailable):
        c.post("/status/503", action="create_account", json={})
    assert app.hits["/status/503"] == 1 and c.sleeps == []


def test_post_marked_idempotent_is_retried(upstream):
    url, app = upstream
    c = client(url, max_safe_retries=3)
    assert c.post("/flaky/1", action="suspend_account", json={}, idempotent=True)["ok"]
    assert app.hits["/flaky/1"] == 2


def test_client_errors_are_not_retried(upstream):
    url, app = upstream
    c = client(url)
    with pytest.raises(errors.NotFound):
        c.get("/status/404", action="get_account")
    assert app.hits["/status/404"] == 1


def test_retry_after_is_honoured(upstream):
    url, app = upstream
    c = client(url, max_safe_retries=1, retry_after_cap=10)
    with pytest.raises(errors.RateLimited) as info:
        c.get("/status/429", params={"retry_after": "3"}, action="list_accounts")
    assert info.value.retry_after == 3
    assert app.hits["/status/429"] == 2 and c.sleeps[0] >= 3


def test_retry_after_beyond_cap_goes_back_to_the_caller(upstream):
    url, app = upstream
    c = client(url, max_safe_retries=3, retry_after_cap=10)
    with pytest.raises(errors.RateLimited) as info:
        c.get("/status/429", params={"retry_after": "60"}, action="list_accounts")
    assert info.value.retry_after == 60
    assert app.hits["/status/429"] == 1 and c.sleeps == []


def test_parse_retry_after():
    assert parse_retry_after("7") == 7
    assert parse_retry_after("nonsense") is None
    assert parse_retry_after(None) is None
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= parse_retry_after(future) <= 31


# --- timeouts and connection errors -------------------------------------------------

def test_read_timeout_is_unavailable_and_post_not_retried(upstream):
    url, app = upstream
    c = client(url, timeout=0.2, max_safe_retries=2)
    started = time.monotonic()
    with pytest.raises(errors.Unavailable) as info:
        c.post("/sleep", params={"s": "1"}, action="create_account", json={})
    assert time.monotonic() - started < 0.9
    assert "timed out" in info.value.message
    assert app.hits["/sleep"] == 1


def test_read_timeout_on_get_is_retried(upstream):
    url, app = upstream
    c = client(url, max_safe_retries=1)
    with pytest.raises(errors.Unavailable):
        c.get("/sleep", params={"s": "1"}, action="get_account", timeout=0.2)
    assert app.hits["/sleep"] == 2


def test_connection_refused_post_is_retried_as_nothing_was_sent():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = client(f"http://127.0.0.1:{port}", max_safe_retries=2)
    with pytest.raises(errors.Unavailable) as info:
        c.post("/x", action="create_account", json={})
    assert len(c.sleeps) == 2
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize("timeout", [None, 0, (5, None), (1, 2, 3)])
def test_a_timeout_is_required(timeout):
    with pytest.raises(ValueError):
        HttpClient("t", "http://127.0.0.1:9", timeout=timeout)
    with pytest.raises(ValueError):
        HttpClient("t", "http://127.0.0.1:9").request("GET", "/", action="x", timeout=timeout or 0)


# --- malformed answers and provider error mappers ---------------------------------------

def test_malformed_json_is_malformed_response(upstream):
    url, app = upstream
    c = client(url)
    with pytest.raises(errors.MalformedResponse) as info:
        c.get("/malformed", action="get_account")
    assert info.value.retryable and "proxy error" in info.value.message
    assert app.hits["/malformed"] == 1         # a 200 was answered: not retried here
    resp = c.request("GET", "/malformed", action="get_account", expect_json=False)
    assert resp.data is None and "proxy error" in resp.text


def test_error_mapper_maps_errors_inside_200(upstream):
    url, _ = upstream

    def mapper(response, body):
        if isinstance(body, dict) and str(body.get("status", "")).lower() == "error":
            cls = errors.AuthError if "denied" in body["message"].lower() else errors.ProviderError
            return cls(body["message"])
        return None

    c = client(url, error_mapper=mapper, secrets=[SECRET], provider="rc")
    with pytest.raises(errors.AuthError) as info:
        c.get("/rc-error", action="search")
    err = info.value
    assert err.message == "rc search: HTTP 200: Access Denied for api-key ***"
    assert SECRET not in err.body and err.safe_message == errors.AuthError.safe_message
    assert c.get("/ok", action="search")["ok"]           # None falls through


def test_error_mapper_that_fails_gives_malformed(upstream):
    url, _ = upstream
    c = client(url, error_mapper=lambda r, b: b["missing"])
    with pytest.raises(errors.MalformedResponse):
        c.get("/ok", action="x")


def test_mapper_runs_before_status_mapping(upstream):
    url, _ = upstream
    c = client(url, error_mapper=lambda r, b: errors.LimitExceeded("too many")
               if r.status_code == 422 else None)
    with pytest.raises(errors.LimitExceeded) as info:
        c.post("/status/422", action="create_mailbox", json={})
    assert info.value.status == 422 and "too many" in info.value.message


# --- masking ---------------------------------------------------------------------

def test_secrets_never_reach_logs_or_errors(upstream, caplog):
    url, _ = upstream
    caplog.set_level(logging.DEBUG, logger="provisioner.upstream")
    c = client(url, secrets=[SECRET], headers={"Authorization": f"Bearer {SECRET}"})
    body = {"domain": "example.com", "password": PASSWORD,
            "nested": {"Api-Key": "nested-value-1", "list": [{"postmaster_password": "pm-value-2"}]},
            "config": json.dumps({"token": "json-in-string-3"}),
            "note": f"key is {SECRET}"}
    c.post("/echo", action="create_account", json=body, params={"api-key": SECRET, "auth-userid": "77"})
    c.post("/echo", action="add_user", data={"username": "bob", "password": PASSWORD})
    c.post("/echo", action="login", data=f"action=login&pass={PASSWORD}&HPLS-AUTH=sess-value-4")
    c.get(f"/echo/{SECRET}", action="path_secret")
    with pytest.raises(errors.ValidationError) as info:
        c.get("/status/400", action="validate", params={"msg": f"bad password={PASSWORD} key {SECRET}"})

    records = [r.getMessage() for r in caplog.records]
    text = "\n".join(records + [info.value.message, info.value.body, str(info.value)])
    for leaked in (SECRET, PASSWORD, "nested-value-1", "pm-value-2", "json-in-string-3",
                   "sess-value-4", "s3cr3t-KEY%2F42"):
        assert leaked not in text, leaked
    assert "create_account" in text and "add_user" in text and "example.com" in text
    assert "auth-userid=***" in text or "77" in text          # query params are logged
    assert any(r.levelno == logging.INFO and "create_account" in r.getMessage()
               and " 200 " in r.getMessage() for r in caplog.records)


def test_log_bodies_off_keeps_answers_out(upstream, caplog):
    url, _ = upstream
    caplog.set_level(logging.DEBUG, logger="provisioner.upstream")
    client(url).post("/echo", action="login", json={"user": "visible-user"}, log_bodies=False)
    assert "visible-user" not in caplog.text and "login" in caplog.text


def test_added_secret_is_masked_afterwards(upstream, caplog):
    url, _ = upstream
    caplog.set_level(logging.DEBUG, logger="provisioner.upstream")
    c = client(url)
    c.add_secret("session-token-xyz")
    c.post("/echo", action="call", json={"sid_value": "session-token-xyz"})
    assert "session-token-xyz" not in caplog.text


@pytest.mark.parametrize("key", ["password", "PASS", "api-key", "api_key", "apikey", "X-Api-Token",
                                 "Authorization", "hpls-auth", "postmaster_password", "key",
                                 "client_secret", "password_confirmation", "editpassword"])
def test_secret_key_names(key):
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["domain", "status", "productkey", "limits", "passive", "keyword"])
def test_ordinary_key_names(key):
    assert not is_secret_key(key)


def test_masker_texts_and_urls():
    m = Masker([SECRET])
    assert m.query("a=1&api-key=xyz&password=p") == "a=1&api-key=***&password=***"
    assert m.url(f"http://h/x.json?auth-userid=1&q={SECRET}") == "/x.json?auth-userid=***&q=***"
    assert m.text('oops {"password": "p\\"w", "ok": 1}') == 'oops {"password": "***", "ok": 1}'
    assert m.text("Authorization: Bearer abc.def") == "Authorization: ***"
    assert m.body("x" * 5000).endswith("(+3000 chars)")


# --- metrics -------------------------------------------------------------------------

def test_metrics_count_every_attempt_by_outcome(upstream):
    url, _ = upstream
    c = client(url, provider="metrics", max_safe_retries=1)
    before_ok = calls("metrics", "get_account", "ok")
    before_err = calls("metrics", "get_account", "upstream_unavailable")
    before_n = REGISTRY.get_sample_value(
        "provisioner_upstream_call_seconds_count", {"provider": "metrics", "action": "get_account"}) or 0
    c.get("/ok", action="get_account")
    with pytest.raises(errors.Unavailable):
        c.get("/status/500", action="get_account")
    assert calls("metrics", "get_account", "ok") == before_ok + 1
    assert calls("metrics", "get_account", "upstream_unavailable") == before_err + 2
    assert REGISTRY.get_sample_value(
        "provisioner_upstream_call_seconds_count",
        {"provider": "metrics", "action": "get_account"}) == before_n + 3


def test_a_replaced_secret_is_no_longer_masked_but_the_new_one_is():
    client = HttpClient("p", "http://127.0.0.1:9", secrets=["static-pass-1"])
    client.add_secret("token-old-123")
    client.add_secret("token-new-456", replaces="token-old-123")
    masked = client.masker.text("static-pass-1 token-old-123 token-new-456")
    assert "static-pass-1" not in masked and "token-new-456" not in masked
    assert "token-old-123" in masked
