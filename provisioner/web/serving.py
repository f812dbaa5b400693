"""What ``provisioner serve`` adds to gunicorn: the JSON error shape for requests gunicorn
refuses before the app sees them, and logs that never hold a sign-in token.

- ``JsonErrorWorker``: gunicorn answers a request line or headers over its limits (and
  other unparseable HTTP) itself, with an HTML page. This worker answers those with the
  app's ``{"error": {"code", "message"}}`` instead; anything else stays gunicorn's.
- ``TokenSafeLogger`` and ``TokenSafeFilter``: a single sign-on link carries its token in
  the path (``/client/sso/<token>``); access logs and the development server's request
  log show ``/client/sso/[redacted]`` instead, so whoever reads the logs cannot sign in.
"""
from __future__ import annotations

import json
import logging
import re

from gunicorn import http as gunicorn_http
from gunicorn.glogging import Logger
from gunicorn.util import write_nonblock
from gunicorn.workers.gthread import ThreadWorker

#: path segments that are bearer secrets (sign-on links of the client area and console)
SECRET_PATH = re.compile(r"(/(?:client|admin)/sso/)[^/?#\s\"']+")
REDACTED = r"\1[redacted]"


def redact(text: str) -> str:
    """``text`` with every sign-on token replaced."""
    return SECRET_PATH.sub(REDACTED, text)


_errors = gunicorn_http.errors
#: gunicorn's refusals of a request it could not parse: (status, reason, code, message)
REFUSALS: tuple[tuple[type[Exception], int, str, str, str], ...] = (
    (_errors.LimitRequestHeaders, 431, "Request Header Fields Too Large", "request_headers_too_large",
     "The request's headers are too many or too large."),
    (_errors.LimitRequestLine, 414, "URI Too Long", "request_line_too_long",
     "The request line (method, path and query string) is too long."),
    ((_errors.InvalidRequestLine, _errors.InvalidRequestMethod, _errors.InvalidHTTPVersion,
      _errors.InvalidHeader, _errors.InvalidHeaderName, _errors.ObsoleteFolding,
      _errors.InvalidChunkSize, _errors.ChunkMissingTerminator, _errors.InvalidSchemeHeaders),
     400, "Bad Request", "malformed_http", "The request is not valid HTTP/1.1."),
)


def refusal_for(exc: Exception) -> tuple[int, str, str, str] | None:
    for kinds, status, reason, code, message in REFUSALS:
        if isinstance(exc, kinds):
            return status, reason, code, message
    return None


def json_refusal(status: int, reason: str, code: str, message: str) -> bytes:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


class JsonErrorWorker(ThreadWorker):
    """gunicorn's threaded worker, answering its own refusals in the app's JSON shape."""

    def handle_error(self, req, client, addr, exc):
        refusal = refusal_for(exc)
        if refusal is None:
            return super().handle_error(req, client, addr, exc)
        ip = (addr or ("",))[0]
        # str(exc) may quote the request line: TokenSafeLogger's filter redacts it.
        self.log.warning("refused a request from ip=%s: %s %s", ip, refusal[0], str(exc)[:200])
        try:
            write_nonblock(client, json_refusal(*refusal))
        except Exception:
            self.log.debug("could not send the refusal")


class TokenSafeFilter(logging.Filter):
    """Rewrites a record's message with every sign-on token redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/sso/" in message:
            record.msg, record.args = redact(message), None
        return True


class TokenSafeLogger(Logger):
    """gunicorn's logger, with sign-on tokens redacted from access and error lines (the
    path shows up in several access-log atoms: request line, PATH_INFO, RAW_URI, Referer)."""

    def setup(self, cfg):
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            logger.addFilter(TokenSafeFilter())
