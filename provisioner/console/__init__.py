"""The operator console: server-rendered pages under ``/admin/`` over ``provisioner.admin``.

Sign-in is with an API key (``admin`` acts, ``read`` only looks, a source-scoped key
sees its own source only); the session is kept on the server (``logins``) behind a
cookie of its own (``session``). Pages work without JavaScript and share the client
area's stylesheet. ``init_app(app)`` registers the blueprint, renders refusals as
pages and sets the security headers on every console answer.
"""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from . import operations, views  # noqa: F401  (operations adds its pages to views.bp)
    app.register_blueprint(views.bp)
