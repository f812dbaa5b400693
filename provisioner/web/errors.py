"""Every error answers JSON: {"error": {"code", "message", "fields"?}}, never a stack trace."""
from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from ..intake import HookError

log = logging.getLogger("provisioner.web")


class ApiError(HookError):
    """An API error with a status, a code and a clear message (same shape as hook errors)."""


def error_response(status: int, code: str, message: str, fields: dict | None = None):
    return jsonify(ApiError(status, code, message, fields).body()), status


def init_app(app: Flask) -> None:
    @app.errorhandler(HookError)
    def _hook_error(exc: HookError):
        return jsonify(exc.body()), exc.status

    @app.errorhandler(413)
    def _too_large(_exc):
        limit = app.config["MAX_CONTENT_LENGTH"]
        return error_response(413, "body_too_large", f"The body is larger than {limit // 1024} KiB.")

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(exc.code or 500, code, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal_error", "An internal error occurred.")
