"""The console's session in Flask: its own cookie, never Flask's ``session``.

Flask's session cookie belongs to the client area (path /client). The console's
cookie ``provisioner_console`` (path /admin, HttpOnly, SameSite=Lax, Secure under
an https PUBLIC_URL, no Max-Age: it goes with the browser) holds a random token
naming a server-side ``ConsoleLogin`` (``logins``).

In views: ``operator()`` is the signed-in operator (``NotSignedIn`` otherwise);
``require_write()`` refuses a ``read`` key (403) and checks the form's CSRF
token (403) - call it first in every POST view. The sign-in form, before any
session, has a CSRF token of its own bound to a short-lived cookie.
"""
from __future__ import annotations

import hmac
import secrets

from flask import g, request

from ..web import current_runtime
from . import logins

COOKIE = "provisioner_console"
PRE_COOKIE = "provisioner_console_signin"
PATH = "/admin"
CSRF_FIELD = "csrf_token"


class ConsoleError(Exception):
    """A refusal shown as a console page with its status."""

    def __init__(self, status: int, title: str, message: str):
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


class NotSignedIn(ConsoleError):
    def __init__(self, message: str = "Sign in with an API key to use the console."):
        super().__init__(401, "Please sign in", message)


def _secure() -> bool:
    return current_runtime().settings.public_url.lower().startswith("https://")


def _cookie_token(name: str = COOKIE) -> str | None:
    value = request.cookies.get(name)
    return value if value and len(value) <= 128 else None


def optional_operator() -> logins.Operator | None:
    if "console_operator" not in g:
        token = _cookie_token()
        runtime = current_runtime()
        g.console_operator = (logins.check_login(runtime.db, runtime.settings.secret_key, token)
                              if token else None)
    return g.console_operator


def operator() -> logins.Operator:
    found = optional_operator()
    if found is None:
        raise NotSignedIn()
    return found


def csrf_token() -> str:
    found = optional_operator()
    return found.csrf if found else ""


def _matches(expected: str, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(expected.encode(), given.encode())


def require_write() -> logins.Operator:
    """The operator of a write: signed in (401), with an admin-scope key (403), and the
    form carrying the session's CSRF token (403)."""
    who = operator()
    if not who.can_write:
        raise ConsoleError(403, "Not allowed", f"API key {who.prefix}… has the read scope: it may look at "
                                               "everything and change nothing.")
    return require_csrf(who)


def require_csrf(who: logins.Operator) -> logins.Operator:
    if not _matches(who.csrf, request.form.get(CSRF_FIELD)):
        raise csrf_failed()
    return who


def csrf_failed() -> ConsoleError:
    return ConsoleError(403, "Not allowed", "The form is missing its security token, or the token is out of "
                                            "date. Reload the page and try again.")


# --- signing in and out ------------------------------------------------------------------

def sign_in_csrf(response=None) -> str:
    """The sign-in form's token: an HMAC of a random value kept in a short-lived cookie
    (set on ``response`` when the browser has none yet)."""
    nonce = _cookie_token(PRE_COOKIE)
    if nonce is None:
        nonce = secrets.token_urlsafe(24)
        g.console_pre_nonce = nonce
    return logins.csrf_for(current_runtime().settings.secret_key, "signin:" + nonce)


def set_pre_cookie(response) -> None:
    nonce = g.pop("console_pre_nonce", None)
    if nonce is not None:
        response.set_cookie(PRE_COOKIE, nonce, max_age=3600, path=PATH, httponly=True, samesite="Lax",
                            secure=_secure())


def check_sign_in_csrf() -> None:
    nonce = _cookie_token(PRE_COOKIE)
    expected = logins.csrf_for(current_runtime().settings.secret_key, "signin:" + nonce) if nonce else ""
    if not _matches(expected, request.form.get(CSRF_FIELD)):
        raise csrf_failed()


def start(response, token: str) -> None:
    response.set_cookie(COOKIE, token, path=PATH, httponly=True, samesite="Lax", secure=_secure())
    response.delete_cookie(PRE_COOKIE, path=PATH)


def sign_out(response) -> None:
    token = _cookie_token()
    if token is not None:
        runtime = current_runtime()
        logins.end_login(runtime.db, runtime.settings.secret_key, token)
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="Lax", secure=_secure())
    g.console_operator = None
