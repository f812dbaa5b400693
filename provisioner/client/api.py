"""The client area's JSON API (contract section 4): thin views over ``service.py``.

Session cookie plus ``X-CSRF-Token`` on every write. Lists take ``q`` (search),
``page`` and ``per_page`` (at most 500) and answer
``{"items": [...], "page", "per_page", "total"}``; creates answer 201 with the
object. Errors are ``{"error": {"code", "message", "fields"?, "limit"?}}``.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from .. import inputs
from ..web import current_runtime
from . import service as svc
from .session import client_service, close_session, csrf_token, require_csrf
from .service import ClientError, InvalidInput

bp = Blueprint("client_api", __name__, url_prefix="/client/api/v1")


@bp.before_request
def _authenticate():
    # 401 without a session comes before 403 for a missing CSRF token.
    client_service()
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        require_csrf()


@bp.after_request
def _no_store(response):
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _body() -> dict[str, Any]:
    raw = request.get_data(cache=True)
    data = inputs.loads(raw) if raw.strip() else {}
    if not isinstance(data, dict):
        raise ClientError("The body must be a JSON object.", status=400, code="malformed_json")
    return data


def _paging() -> dict[str, Any]:
    problems = {}
    values: dict[str, Any] = {"q": request.args.get("q", "")}
    for name, default, top in (("page", 1, None), ("per_page", 50, svc.MAX_PER_PAGE)):
        raw = request.args.get(name)
        if raw is None:
            values[name] = default
            continue
        if not raw.isdigit() or int(raw) < 1 or (top and int(raw) > top):
            problems[name] = f"Must be a whole number from 1{f' to {top}' if top else ''}."
        else:
            values[name] = int(raw)
    unknown = set(request.args) - {"q", "page", "per_page"}
    problems.update({name: "Unknown query parameter." for name in unknown})
    if problems:
        raise ClientError(f"Invalid query parameter(s): {', '.join(sorted(problems))}.", status=400,
                          code="invalid_query", fields=problems)
    return values


def _page(page: svc.Page, dump) -> dict[str, Any]:
    return {"items": [dump(item) for item in page.items], "page": page.page,
            "per_page": page.per_page, "total": page.total}


def _ctx():
    return current_runtime(), client_service()


@bp.get("/session")
def get_session():
    runtime, service = _ctx()
    return jsonify(svc.session_info(runtime, service, csrf_token()))


@bp.post("/logout")
def logout():
    close_session()
    return "", 204


@bp.post("/webmail")
def webmail():
    """A single sign-on link (extension; providers with SSO): ``{"mailbox", "target"}``,
    ``target`` one of the session's ``sign_ons`` (default: the first, webmail)."""
    runtime, service = _ctx()
    body = _body()
    mailbox, target = body.get("mailbox"), body.get("target")
    if mailbox is not None and not isinstance(mailbox, str):
        raise InvalidInput({"mailbox": "Give a mailbox id."})
    if target is not None and not isinstance(target, str):
        raise InvalidInput({"target": "Give a sign-on target."})
    return jsonify({"url": svc.webmail_url(runtime, service, mailbox, target)})


# --- mailboxes ---------------------------------------------------------------------------------

@bp.get("/mailboxes")
def list_mailboxes():
    runtime, service = _ctx()
    return jsonify(_page(svc.list_mailboxes(runtime, service, **_paging()), svc.mailbox_dict))


@bp.post("/mailboxes")
def create_mailbox():
    runtime, service = _ctx()
    return jsonify(svc.mailbox_dict(svc.create_mailbox(runtime, service, _body()))), 201


@bp.get("/mailboxes/<mailbox_id>")
def get_mailbox(mailbox_id: str):
    runtime, service = _ctx()
    return jsonify(svc.mailbox_dict(svc.get_mailbox(runtime, service, mailbox_id)))


@bp.patch("/mailboxes/<mailbox_id>")
def update_mailbox(mailbox_id: str):
    runtime, service = _ctx()
    return jsonify(svc.mailbox_dict(svc.update_mailbox(runtime, service, mailbox_id, _body())))


@bp.delete("/mailboxes/<mailbox_id>")
def delete_mailbox(mailbox_id: str):
    runtime, service = _ctx()
    svc.delete_mailbox(runtime, service, mailbox_id)
    return "", 204


# --- aliases -----------------------------------------------------------------------------------

@bp.get("/aliases")
def list_aliases():
    runtime, service = _ctx()
    return jsonify(_page(svc.list_aliases(runtime, service, **_paging()), svc.alias_dict))


@bp.post("/aliases")
def create_alias():
    runtime, service = _ctx()
    return jsonify(svc.alias_dict(svc.create_alias(runtime, service, _body()))), 201


@bp.get("/aliases/<alias_id>")
def get_alias(alias_id: str):
    runtime, service = _ctx()
    return jsonify(svc.alias_dict(svc.get_alias(runtime, service, alias_id)))


@bp.patch("/aliases/<alias_id>")
def update_alias(alias_id: str):
    runtime, service = _ctx()
    return jsonify(svc.alias_dict(svc.update_alias(runtime, service, alias_id, _body())))


@bp.delete("/aliases/<alias_id>")
def delete_alias(alias_id: str):
    runtime, service = _ctx()
    svc.delete_alias(runtime, service, alias_id)
    return "", 204


# --- distribution lists --------------------------------------------------------------------------

@bp.get("/lists")
def list_lists():
    runtime, service = _ctx()
    return jsonify(_page(svc.list_lists(runtime, service, **_paging()), svc.list_dict))


@bp.post("/lists")
def create_list():
    runtime, service = _ctx()
    return jsonify(svc.list_dict(svc.create_list(runtime, service, _body()))), 201


@bp.get("/lists/<list_id>")
def get_list(list_id: str):
    runtime, service = _ctx()
    return jsonify(svc.list_dict(svc.get_list(runtime, service, list_id)))


@bp.patch("/lists/<list_id>")
def update_list(list_id: str):
    runtime, service = _ctx()
    return jsonify(svc.list_dict(svc.update_list(runtime, service, list_id, _body())))


@bp.delete("/lists/<list_id>")
def delete_list(list_id: str):
    runtime, service = _ctx()
    svc.delete_list(runtime, service, list_id)
    return "", 204
