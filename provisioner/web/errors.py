"""Every error answers JSON: {"error": {"code", "message", "fields"?}}, never a stack trace."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from ..inputs import InputError, check_url_text
from ..intake import HookError

log = logging.getLogger("provisioner.web")


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
        log.exception("unhandled error")
        return error_response(500, "internal_error", "An internal error occurred.")
