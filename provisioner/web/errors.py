"""Every error answers JSON: {"error": {"code", "message", "fields"?}}, never a stack trace.

A database that cannot be reached (down, restarting, connections cut) answers
``503 database_unavailable`` with ``Retry-After``: the request may well succeed
a moment later, and a billing system retries a 5xx with the same webhook-id
(nothing was stored, or the redelivery finds what was). A generic 500 would say
"bug" where the truth is "try again".
"""
from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from ..db import error_summary, is_unavailable
from ..inputs import InputError, check_url_text
from ..intake import HookError
from .serving import redact

log = logging.getLogger("provisioner.web")

#: seconds a client is asked to wait before trying again while the database is away
DATABASE_RETRY_AFTER = 5


class ApiError(HookError):
    """An API error with a status, a code and a clear message (same shape as hook errors)."""


def error_response(status: int, code: str, message: str, fields: dict | None = None):
    return jsonify(ApiError(status, code, message, fields).body()), status


def check_request() -> None:
    """The path, query string and form fields of every request, before any view reads them."""
    check_url_text(request.path, "the path")
    for name, value in request.args.items(multi=True):
        check_url_text(name, "a query parameter name")
        check_url_text(value, f"query parameter {name[:40]}")
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        for name, value in request.form.items(multi=True):
            check_url_text(name, "a form field name")
            check_url_text(value, f"form field {name[:40]}")


def database_unavailable():
    response, status = error_response(503, "database_unavailable",
                                      "The database cannot be reached right now; try again shortly.")
    response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER)
    return response, status


def init_app(app: Flask) -> None:
    app.before_request(check_request)

    @app.errorhandler(HookError)
    def _hook_error(exc: HookError):
        return jsonify(exc.body()), exc.status

    @app.errorhandler(InputError)
    def _input_error(exc: InputError):
        return error_response(400, exc.code, exc.message, {exc.field: exc.message} if exc.field else None)

    @app.errorhandler(413)
    def _too_large(_exc):
        limit = app.config["MAX_CONTENT_LENGTH"]
        return error_response(413, "body_too_large", f"The body is larger than {limit // 1024} KiB.")

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        response, status = error_response(exc.code or 500, code, exc.description or exc.name)
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            response.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        return response, status

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        if is_unavailable(exc):
            # Expected while the database restarts: one line, no stack trace per request.
            log.warning("database unavailable (%s %s): %s", request.method, redact(request.path),
                        error_summary(exc))
            return database_unavailable()
        log.exception("unhandled error")
        return error_response(500, "internal_error", "An internal error occurred.")
