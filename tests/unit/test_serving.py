"""The gunicorn pieces of ``provisioner serve``: token redaction and JSON refusals."""
from __future__ import annotations

import json
import logging

from gunicorn.http.errors import InvalidHeader, LimitRequestHeaders, LimitRequestLine

from provisioner.web import serving


def test_sign_on_tokens_are_redacted_wherever_they_appear():
    line = 'GET /client/sso/AbC-123_xyz?x=1 HTTP/1.1" 303 "https://h/admin/sso/TOKEN2"'
    safe = serving.redact(line)
    assert "AbC-123_xyz" not in safe and "TOKEN2" not in safe
    assert safe.count("[redacted]") == 2 and "?x=1" in safe
    assert serving.redact("GET /client/ HTTP/1.1") == "GET /client/ HTTP/1.1"


def test_the_log_filter_rewrites_formatted_messages():
    record = logging.LogRecord("werkzeug", logging.INFO, __file__, 1, '"%s" %s',
                               ("GET /client/sso/secret1 HTTP/1.1", 303), None)
    assert serving.TokenSafeFilter().filter(record)
    assert record.getMessage() == '"GET /client/sso/[redacted] HTTP/1.1" 303'


def test_refusals_are_the_apps_json_shape():
    status, reason, code, message = serving.refusal_for(LimitRequestHeaders("too large"))
    assert (status, code) == (431, "request_headers_too_large")
    assert serving.refusal_for(LimitRequestLine(9000, 4094))[0] == 414
    assert serving.refusal_for(InvalidHeader("X"))[2] == "malformed_http"
    assert serving.refusal_for(RuntimeError("app bug")) is None      # left to gunicorn: a 500
    raw = serving.json_refusal(status, reason, code, message)
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large")
    assert f"Content-Length: {len(body)}".encode() in head
    assert json.loads(body) == {"error": {"code": code, "message": message}}
