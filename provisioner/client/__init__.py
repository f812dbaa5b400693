"""The client area (contract section 4): end customers manage their own service.

``init_app(app)`` registers the pages (``/client/``, blueprint ``client``) and
the JSON API (``/client/api/v1/``, blueprint ``client_api``), sets the session
cookie's flags and renders every ``ClientError`` as JSON under
``/client/api/`` and as a page elsewhere.

Hooks for other client-area pages (DNS records, device set-up, relay, ...):
- extend ``client/base.html`` (blocks ``title`` and ``content``); it has the nav,
  the suspension banner and ``csrf_field()`` for forms;
- add nav entries with ``app.extensions.setdefault("client_nav", []).append(
  ("blueprint.endpoint", "Label"))`` or a 3-tuple whose third item is a capability
  name ("dns", "relay", "sso", ...): shown only to services whose provider has it;
- in views use ``session.client_service()`` and ``session.require_csrf()``.
"""
from __future__ import annotations

import datetime as dt
from functools import cached_property
from typing import Any

from flask import Flask, current_app, jsonify, render_template, request
from markupsafe import Markup, escape

from ..web.page_headers import private_page_headers
from . import api, views
from .service import PAGES, ClientError, capabilities, client_pages, suspension_reason, _status
from .session import CSRF_FIELD, csrf_token, optional_client_service

SESSION_LIFETIME = dt.timedelta(hours=1)
NAV_KEY = "client_nav"
#: the area's own entries: (endpoint, label, capability or None)
BASE_NAV = (("client.overview", "Overview", None), ("client.mailboxes", "Mailboxes", "mailboxes"),
            ("client.aliases", "Aliases", "aliases"), ("client.lists", "Lists", "lists"))
CSP = ("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'")


def init_app(app: Flask) -> None:
    runtime = app.extensions["provisioner"]
    app.config.update(
        SESSION_COOKIE_NAME="provisioner_client",
        SESSION_COOKIE_PATH="/client",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=runtime.settings.public_url.lower().startswith("https://"),
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
    )
    app.extensions.setdefault(NAV_KEY, [])
    app.register_blueprint(views.bp)
    app.register_blueprint(api.bp)
    from . import extras  # DNS records, device set-up, SMTP relay accounts
    extras.init_app(app)

    @app.errorhandler(ClientError)
    def _client_error(exc: ClientError):
        if request.path.startswith("/client/api/"):
            return jsonify(exc.body()), exc.status
        return render_template("client/message.html", title=_TITLES.get(exc.status, "Something went wrong"),
                               message=exc.message, signed_out=exc.status == 401), exc.status

    @app.after_request
    def _client_headers(response):
        if request.path.startswith("/client"):
            private_page_headers(response, CSP)
        return response

    @app.context_processor
    def _client_context() -> dict[str, Any]:
        if not request.path.startswith("/client"):
            return {}
        return {"client": _ClientContext(), "csrf_token": csrf_token, "csrf_field": _csrf_field}


_TITLES = {401: "Please sign in again", 403: "Not allowed", 404: "Not found", 409: "Not possible right now",
           422: "Please check your input", 429: "Too many attempts", 502: "The e-mail platform failed",
           503: "The e-mail platform is unavailable"}


def _csrf_field() -> Markup:
    return Markup(f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(csrf_token())}">')


class _ClientContext:
    """What ``client/base.html`` shows, computed on first use (one database read)."""

    def __init__(self):
        self._loaded = False
        self._service = None

    @property
    def service(self):
        if not self._loaded:
            self._service, self._loaded = optional_client_service(), True
        return self._service

    @property
    def status(self) -> str | None:
        return _status(self.service) if self.service else None

    @property
    def suspend_reason(self) -> str | None:
        return suspension_reason(self.service) if self.status == "suspended" else None

    @property
    def read_only(self) -> bool:
        return self.status in ("suspended", "terminated")

    @property
    def current(self) -> str | None:
        """The nav entry of the page shown (a mailbox's page belongs to Mailboxes)."""
        endpoint = request.endpoint or ""
        for prefix, entry in (("client.mailbox", "client.mailboxes"), ("client.alias", "client.aliases"),
                              ("client.list", "client.lists")):
            if endpoint.startswith(prefix):
                return entry
        return endpoint

    @cached_property
    def capabilities(self) -> list[str]:
        if self.service is None:
            return []
        return capabilities(current_app.extensions["provisioner"], self.service)

    @property
    def nav(self) -> list[tuple[str, str]]:
        if self.service is None:
            return []
        caps = set(self.capabilities)
        pages = set(client_pages(current_app.extensions["provisioner"], self.service))
        entries = [*BASE_NAV, *current_app.extensions.get(NAV_KEY, [])]
        shown = []
        for entry in entries:
            endpoint, label = entry[0], entry[1]
            needs = entry[2] if len(entry) > 2 else None
            # Mailboxes, aliases and lists also need the plan to include some.
            if needs is None or (needs in pages if needs in PAGES else needs in caps):
                shown.append((endpoint, label))
        return shown
