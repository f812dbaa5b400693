"""``provisioner serve`` at its edges: what gunicorn refuses before the app answers in the
app's JSON shape, and a sign-on token never reaches the access log."""
from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest
import requests

from tests.e2e.procs import HTTP_TIMEOUT
from tests.helpers import event_body

pytestmark = pytest.mark.e2e


def _json_error(resp: requests.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text[:300]
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.json()["error"]["code"] == code and resp.json()["error"]["message"]


def test_gunicorns_own_refusals_answer_json(make_stack):
    stack = make_stack(worker_concurrency=None)
    url = f"{stack.base_url}/api/v1/services"
    _json_error(requests.get(url, headers={"X-Big": "x" * 9000}, timeout=HTTP_TIMEOUT),
                431, "request_headers_too_large")
    many = {f"X-H{n}": "1" for n in range(120)}
    _json_error(requests.get(url, headers=many, timeout=HTTP_TIMEOUT), 431, "request_headers_too_large")
    _json_error(requests.get(url + "?q=" + "a" * 5000, timeout=HTTP_TIMEOUT), 414, "request_line_too_long")

    with socket.create_connection(("127.0.0.1", stack.web_port), timeout=HTTP_TIMEOUT) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ") and b"application/json" in head
    assert b'"malformed_http"' in body
    # The server is still serving.
    assert requests.get(f"{stack.base_url}/healthz", timeout=HTTP_TIMEOUT).status_code == 200


def test_sign_on_tokens_stay_out_of_the_access_log(make_stack):
    stack = make_stack()
    assert stack.post(event_body("service.create", "7001", domain="logs.example"), wait=20).status_code == 200
    link = requests.post(f"{stack.base_url}/api/v1/services/7001/sso", timeout=HTTP_TIMEOUT,
                         headers={"Authorization": f"Bearer {stack.admin_key}"}).json()["url"]
    path = urlsplit(link).path
    token = path.rsplit("/", 1)[1]
    assert requests.get(stack.base_url + path, allow_redirects=False, timeout=HTTP_TIMEOUT).status_code == 303
    guess = "guessed-" + token[::-1]
    assert requests.get(f"{stack.base_url}/client/sso/{guess}", timeout=HTTP_TIMEOUT).status_code == 403
    # A refused request line with a token in it is logged by gunicorn itself.
    requests.get(f"{stack.base_url}/client/sso/{token}?pad=" + "a" * 5000, timeout=HTTP_TIMEOUT)
    stack.close()           # flush and stop, so the whole log is on disk
    log = stack.server.log_text()
    assert "/client/sso/[redacted]" in log
    assert token not in log and guess not in log
