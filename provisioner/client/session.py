"""The client session: a signed cookie scoped to one service.

Flask's session cookie (signed with ``PROVISIONER_SECRET_KEY``; ``init_app``
sets HttpOnly, SameSite=Lax, Secure under an https PUBLIC_URL, path /client and
a limited lifetime checked on the server) holds only the service id, a login
token and a CSRF token. The login token names a server-side login
(``logins``), so sign-out, a new sign-in to the service and an operator's
suspension end the session at once, whatever the cookie says.

``client_service()`` gives a view the session's ``Service`` (or raises the
401); ``require_csrf()`` checks the token on every write: the
``X-CSRF-Token`` header (JSON API) or the ``csrf_token`` form field (pages).

Other client-area blueprints use the same two helpers::

    from provisioner.client.session import client_service, require_csrf

    @bp.post("/client/things")
    def add_thing():
        service = client_service()   # 401 without a session
        require_csrf()               # then 403 without the token
"""
from __future__ import annotations

import hmac
import secrets

from flask import g, request, session

from ..models import DesiredStatus, Service
from ..web import current_runtime
from . import logins
from .service import ClientError

SERVICE_KEY = "sid"
LOGIN_KEY = "login"
CSRF_KEY = "csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class NoSession(ClientError):
    status, code = 401, "unauthorized"

    def __init__(self, message: str = "You are not signed in to the client area. "
                                      "Open it again from your billing account."):
        super().__init__(message)


class CsrfFailed(ClientError):
    status, code = 403, "csrf_failed"

    def __init__(self):
        super().__init__("The form or request is missing its security token, or the token is "
                         "out of date. Reload the page and try again.")


def open_session(service_id: str) -> None:
    """Start a fresh session for ``service_id`` (after a redeemed SSO token); the
    service's older sessions, in this browser or another, end."""
    runtime = current_runtime()
    token = logins.open_login(runtime.db, runtime.settings.secret_key, str(service_id))
    session.clear()
    session.permanent = True
    session[SERVICE_KEY] = str(service_id)
    session[LOGIN_KEY] = token
    session[CSRF_KEY] = secrets.token_urlsafe(32)
    g.pop("client_service", None)


def close_session(reason: str = logins.SIGNED_OUT) -> None:
    """Forget the session in the browser and end its login on the server."""
    token = _login_token()
    if token is not None:
        runtime = current_runtime()
        logins.end_login(runtime.db, runtime.settings.secret_key, token, reason)
    session.clear()
    g.pop("client_service", None)


def _login_token() -> str | None:
    value = session.get(LOGIN_KEY)
    return value if isinstance(value, str) and value else None


def session_service_id() -> str | None:
    value = session.get(SERVICE_KEY)
    return value if isinstance(value, str) and value else None


def csrf_token() -> str:
    """The session's CSRF token (empty without a session)."""
    value = session.get(CSRF_KEY)
    return value if isinstance(value, str) else ""


def client_service() -> Service:
    """The session's service, loaded once per request; NoSession (401) if there is none,
    it no longer exists, or it has been terminated."""
    cached = g.get("client_service")
    if cached is not None:
        return cached
    service_id, token = session_service_id(), _login_token()
    if service_id is None or token is None:
        session.clear()
        raise NoSession()
    runtime = current_runtime()
    with runtime.db.read() as db:
        service = db.get(Service, service_id)
    if service is None or service.desired_status == DesiredStatus.TERMINATED:
        close_session(logins.TERMINATED)
        raise NoSession(logins.ENDED_MESSAGES[logins.TERMINATED])
    check = logins.check_login(runtime.db, runtime.settings.secret_key, token, service_id)
    if not check.ok:
        session.clear()
        g.pop("client_service", None)
        message = logins.ENDED_MESSAGES.get(check.reason or "")
        raise NoSession(message) if message else NoSession()
    g.client_service = service
    return service


def optional_client_service() -> Service | None:
    """Like ``client_service`` but None instead of a 401 (templates, nav)."""
    try:
        return client_service()
    except NoSession:
        return None


def require_csrf() -> None:
    """Refuse (403) a write without the session's CSRF token; call it in every write view."""
    expected = csrf_token()
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        given = request.form.get(CSRF_FIELD)
    if not expected or not given or not hmac.compare_digest(expected.encode(), given.encode()):
        raise CsrfFailed()
