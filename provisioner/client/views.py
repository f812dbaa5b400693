"""The client area's pages: server-rendered, plain POST forms and redirects, no JavaScript.

Every write is a POST carrying the session's CSRF token; a form with problems is
shown again (status 422 and the like) with each message next to its field, and
a success redirects (303) to a page that says what was done.
"""
from __future__ import annotations

from typing import Any, Callable

from flask import Blueprint, current_app, redirect, render_template, request, url_for

from ..web import current_runtime
from . import service as svc
from . import sso
from .service import ClientError, InvalidInput, LimitExceeded
from .session import client_service, close_session, open_session, require_csrf

bp = Blueprint("client", __name__, url_prefix="/client", template_folder="templates",
               static_folder="static", static_url_path="/static")

PER_PAGE = 25

#: what a redirect after a change says; ``{what}`` is the object's address
NOTICES = {
    "mailbox_added": "Mailbox {what} was added.",
    "mailbox_saved": "The settings of {what} were saved.",
    "password_changed": "The password of {what} was changed.",
    "mailbox_enabled": "Mailbox {what} was enabled.",
    "mailbox_disabled": "Mailbox {what} was disabled: it no longer receives mail or signs in.",
    "mailbox_deleted": "Mailbox {what} was deleted.",
    "alias_added": "Alias {what} was added.",
    "alias_deleted": "Alias {what} was deleted.",
    "alias_saved": "Alias {what} now forwards to its new address.",
    "list_added": "Distribution list {what} was added.",
    "list_saved": "The members of {what} were saved.",
    "list_deleted": "Distribution list {what} was deleted.",
}


def _ctx():
    return current_runtime(), client_service()


def _notice(service) -> str | None:
    template = NOTICES.get(request.args.get("done", ""))
    if template is None:
        return None
    what = request.args.get("what", "")
    # Only an address of this service's domain is echoed, never arbitrary text.
    if not (len(what) <= 254 and what.lower().endswith("@" + service.domain.lower())
            and svc.LOCAL_RE.match(what.rsplit("@", 1)[0].lower())):
        what = "it"
    return template.format(what=what)


def _done(endpoint: str, done: str, what: str, **values):
    return redirect(url_for(endpoint, done=done, what=what, **values), 303)


def _form_errors(exc: ClientError, limit_fields: dict[str, str] | None = None,
                 known: tuple[str, ...] = ()) -> dict[str, str]:
    """A refusal as messages keyed by form field (``_form`` for the whole form)."""
    if isinstance(exc, LimitExceeded):
        return {(limit_fields or {}).get(exc.limit, "_form"): exc.message}
    if isinstance(exc, InvalidInput) and exc.fields:
        errors: dict[str, str] = {}
        for name, message in exc.fields.items():
            key = name if name in known else "_form"
            errors[key] = message if key == name else f"{errors.get('_form', '')} {message}".strip()
        return errors
    return {"_form": exc.message}


def _int_arg(name: str, default: int = 1) -> int:
    raw = request.args.get(name, "")
    return int(raw) if raw.isdigit() and int(raw) >= 1 else default


def _listing(call: Callable[[], svc.Page]) -> tuple[svc.Page | None, str | None, int]:
    """A list for a page: (page, problem, status); a problem shows on the page instead."""
    try:
        return call(), None, 200
    except (svc.NotReady, svc.UpstreamFailed, svc.NotSupported) as exc:
        return None, exc.message, exc.status


# --- sign-in, overview, sign-out ---------------------------------------------------------------

@bp.get("/sso/<token>")
def sso_login(token: str):
    runtime, address = current_runtime(), request.remote_addr or "unknown"
    wait = sso.failure_wait(runtime, address)
    if wait is not None:
        response = current_app.make_response((render_template(
            "client/message.html", title="Too many attempts",
            message="There were too many sign-in attempts from your network. Wait a minute, then "
                    "open the client area again from your billing account."), 429))
        response.headers["Retry-After"] = str(max(1, int(wait + 0.999)))
        return response
    service_id = sso.redeem(runtime, token)
    if service_id is None:
        sso.record_failure(runtime, address)
        return render_template(
            "client/message.html", title="This sign-in link cannot be used",
            message="Sign-in links work once and only for a minute. Open the client area again "
                    "from your billing account."), 403
    open_session(service_id)
    return redirect(url_for("client.overview"), 303)


@bp.post("/logout")
def logout():
    client_service()
    require_csrf()
    close_session()
    return render_template("client/message.html", title="Signed out",
                           message="You have signed out of the client area.")


@bp.get("/")
def overview():
    runtime, service = _ctx()
    view = svc.overview(runtime, service)
    mailboxes, problem = [], None
    if view["sso"] and "mailboxes" in view["capabilities"]:
        page, problem, _ = _listing(lambda: svc.list_mailboxes(runtime, service, per_page=svc.MAX_PER_PAGE))
        mailboxes = page.items if page else []
    return render_template("client/overview.html", view=view, mailboxes=mailboxes, problem=problem)


@bp.post("/webmail")
def webmail():
    runtime, service = _ctx()
    require_csrf()
    try:
        url = svc.webmail_url(runtime, service, request.form.get("mailbox") or None,
                              request.form.get("target") or None)
    except ClientError as exc:
        return render_template("client/message.html", title="The sign-in could not be opened",
                               message=exc.message), exc.status
    return redirect(url, 303)


# --- mailboxes --------------------------------------------------------------------------------------

def _mailbox_form_context(runtime, service) -> dict[str, Any]:
    provider = svc.provider_for(runtime, service)
    limits = service.limits or {}
    types = svc.offered_types(provider, limits)
    return {"types": [(t, svc.TYPE_LABELS.get(t, t.title())) for t in types],
            "max_quota": svc._limit(limits, "mailbox_quota_gb")}


def _mailbox_limit_fields(types: list) -> dict[str, str]:
    fields = {"mailbox_quota_gb": "quota_gb", **{name: "quota_gb" for name in svc.TOTAL_STORAGE_LIMITS}}
    if len(types) > 1:
        fields.update({n: "type" for n in ("enhanced_mailboxes", "light_mailboxes", "standard_mailboxes",
                                           "premium_mailboxes")})
    return fields


def _limit_reached(service, name: str, used_key: str | None = None) -> str | None:
    limit = svc._limit(service.limits or {}, name)
    used = (service.usage or {}).get(used_key or name)
    if limit is not None and isinstance(used, int) and used >= limit:
        return svc.limit_message(name, limit)
    return None


@bp.get("/mailboxes")
def mailboxes():
    runtime, service = _ctx()
    q = request.args.get("q", "").strip()
    page, problem, status = _listing(
        lambda: svc.list_mailboxes(runtime, service, q=q, page=_int_arg("page"), per_page=PER_PAGE))
    return render_template("client/mailboxes.html", page=page, q=q, problem=problem,
                           notice=_notice(service), full=_limit_reached(service, "mailboxes"),
                           **_mailbox_form_context(runtime, service)), status


@bp.route("/mailboxes/new", methods=["GET", "POST"])
def mailbox_new():
    runtime, service = _ctx()
    context = _mailbox_form_context(runtime, service)
    values: dict[str, Any] = {"type": context["types"][0][0] if context["types"] else "basic"}
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        require_csrf()
        form = request.form
        values = {"local_part": form.get("local_part", ""), "name": form.get("name", ""),
                  "quota_gb": form.get("quota_gb", ""), "type": form.get("type") or values["type"]}
        data = {**values, "password": form.get("password", "")}
        if form.get("password") != form.get("password_confirm"):
            errors["password_confirm"] = "The two passwords are not the same."
            status = 422
        else:
            try:
                box = svc.create_mailbox(runtime, service, data)
                return _done("client.mailboxes", "mailbox_added", box.address)
            except ClientError as exc:
                errors = _form_errors(exc, _mailbox_limit_fields(context["types"]),
                                      ("local_part", "password", "name", "quota_gb", "type"))
                status = exc.status
    return render_template("client/mailbox_new.html", values=values, errors=errors, **context), status


def _mailbox_page(runtime, service, box, errors=None, status=200, form=None, values=None):
    return render_template("client/mailbox_edit.html", box=box, errors=errors or {}, form=form,
                           values=values or {}, notice=_notice(service),
                           **_mailbox_form_context(runtime, service)), status


@bp.get("/mailboxes/<mailbox_id>")
def mailbox_edit(mailbox_id: str):
    runtime, service = _ctx()
    return _mailbox_page(runtime, service, svc.get_mailbox(runtime, service, mailbox_id))


def _mailbox_change(mailbox_id: str, form_name: str, data: dict[str, Any], done: str,
                    known: tuple[str, ...], values: dict[str, Any] | None = None,
                    precheck: dict[str, str] | None = None):
    runtime, service = _ctx()
    require_csrf()
    box = svc.get_mailbox(runtime, service, mailbox_id)
    if precheck:
        return _mailbox_page(runtime, service, box, precheck, 422, form_name, values)
    try:
        changed = svc.update_mailbox(runtime, service, box.id, data)
    except ClientError as exc:
        types = _mailbox_form_context(runtime, service)["types"]
        errors = _form_errors(exc, _mailbox_limit_fields(types), known)
        return _mailbox_page(runtime, service, box, errors, exc.status, form_name, values)
    return _done("client.mailbox_edit", done, changed.address or box.address, mailbox_id=box.id)


@bp.post("/mailboxes/<mailbox_id>/settings")
def mailbox_settings(mailbox_id: str):
    form = request.form
    values = {"name": form.get("name", ""), "quota_gb": form.get("quota_gb", ""), "type": form.get("type")}
    data: dict[str, Any] = {"name": values["name"]}
    if values["quota_gb"].strip():
        data["quota_gb"] = values["quota_gb"]
    if values["type"]:
        data["type"] = values["type"]
    return _mailbox_change(mailbox_id, "settings", data, "mailbox_saved", ("name", "quota_gb", "type"), values)


@bp.post("/mailboxes/<mailbox_id>/password")
def mailbox_password(mailbox_id: str):
    form = request.form
    precheck = None
    if form.get("password", "") != form.get("password_confirm", ""):
        precheck = {"password_confirm": "The two passwords are not the same."}
    return _mailbox_change(mailbox_id, "password", {"password": form.get("password", "")},
                           "password_changed", ("password",), precheck=precheck)


@bp.post("/mailboxes/<mailbox_id>/enabled")
def mailbox_enabled(mailbox_id: str):
    enabled = request.form.get("enabled") == "1"
    return _mailbox_change(mailbox_id, "enabled", {"enabled": enabled},
                           "mailbox_enabled" if enabled else "mailbox_disabled", ())


@bp.route("/mailboxes/<mailbox_id>/delete", methods=["GET", "POST"])
def mailbox_delete(mailbox_id: str):
    runtime, service = _ctx()
    if request.method == "POST":
        require_csrf()
    box = svc.get_mailbox(runtime, service, mailbox_id)
    error, status = None, 200
    if request.method == "POST":
        try:
            svc.delete_mailbox(runtime, service, box.id)
            return _done("client.mailboxes", "mailbox_deleted", box.address)
        except ClientError as exc:
            error, status = exc.message, exc.status
    return render_template("client/confirm_delete.html", what="mailbox", address=box.address,
                           warning="All mail in this mailbox will be deleted. This cannot be undone.",
                           action=url_for("client.mailbox_delete", mailbox_id=box.id),
                           back=url_for("client.mailbox_edit", mailbox_id=box.id), error=error), status


# --- aliases ---------------------------------------------------------------------------------------

def _aliases_page(runtime, service, values=None, errors=None, status=200):
    q = request.args.get("q", "").strip()
    page, problem, list_status = _listing(
        lambda: svc.list_aliases(runtime, service, q=q, page=_int_arg("page"), per_page=PER_PAGE))
    return render_template("client/aliases.html", page=page, q=q, problem=problem, values=values or {},
                           errors=errors or {}, notice=_notice(service),
                           full=_limit_reached(service, "aliases")), (status if status != 200 else list_status)


@bp.get("/aliases")
def aliases():
    runtime, service = _ctx()
    return _aliases_page(runtime, service)


@bp.post("/aliases")
def alias_new():
    runtime, service = _ctx()
    require_csrf()
    values = {"local_part": request.form.get("local_part", ""), "target": request.form.get("target", "")}
    try:
        alias = svc.create_alias(runtime, service, values)
    except ClientError as exc:
        return _aliases_page(runtime, service, values, _form_errors(exc, {}, ("local_part", "target")),
                             exc.status)
    return _done("client.aliases", "alias_added", alias.address)


@bp.route("/aliases/<alias_id>", methods=["GET", "POST"])
def alias_edit(alias_id: str):
    runtime, service = _ctx()
    if request.method == "POST":
        require_csrf()
    alias = svc.get_alias(runtime, service, alias_id)
    values = {"target": alias.target}
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        values = {"target": request.form.get("target", "")}
        try:
            changed = svc.update_alias(runtime, service, alias.id, values)
            return _done("client.aliases", "alias_saved", changed.address)
        except ClientError as exc:
            errors, status = _form_errors(exc, {}, ("target",)), exc.status
    return render_template("client/alias_edit.html", alias=alias, values=values, errors=errors,
                           notice=_notice(service)), status


@bp.route("/aliases/<alias_id>/delete", methods=["GET", "POST"])
def alias_delete(alias_id: str):
    runtime, service = _ctx()
    if request.method == "POST":
        require_csrf()
    alias = svc.get_alias(runtime, service, alias_id)
    error, status = None, 200
    if request.method == "POST":
        try:
            svc.delete_alias(runtime, service, alias.id)
            return _done("client.aliases", "alias_deleted", alias.address)
        except ClientError as exc:
            error, status = exc.message, exc.status
    return render_template("client/confirm_delete.html", what="alias", address=alias.address,
                           warning=f"Mail to {alias.address} will no longer reach {alias.target}.",
                           action=url_for("client.alias_delete", alias_id=alias.id),
                           back=url_for("client.aliases"), error=error), status


# --- distribution lists -----------------------------------------------------------------------------

def _list_limit(service) -> str | None:
    name = svc._list_limit_name(service.limits or {})
    return _limit_reached(service, name, "distribution_lists")


@bp.get("/lists")
def lists():
    runtime, service = _ctx()
    q = request.args.get("q", "").strip()
    page, problem, status = _listing(
        lambda: svc.list_lists(runtime, service, q=q, page=_int_arg("page"), per_page=PER_PAGE))
    return render_template("client/lists.html", page=page, q=q, problem=problem, notice=_notice(service),
                           full=_list_limit(service)), status


@bp.route("/lists/new", methods=["GET", "POST"])
def list_new():
    runtime, service = _ctx()
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        require_csrf()
        values = {"local_part": request.form.get("local_part", ""), "members": request.form.get("members", "")}
        try:
            lst = svc.create_list(runtime, service, values)
            return _done("client.lists", "list_added", lst.address)
        except ClientError as exc:
            errors, status = _form_errors(exc, {}, ("local_part", "members")), exc.status
    return render_template("client/list_new.html", values=values, errors=errors), status


@bp.route("/lists/<list_id>", methods=["GET", "POST"])
def list_edit(list_id: str):
    runtime, service = _ctx()
    if request.method == "POST":
        require_csrf()
    lst = svc.get_list(runtime, service, list_id)
    values = {"members": "\n".join(lst.members)}
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        values = {"members": request.form.get("members", "")}
        try:
            changed = svc.update_list(runtime, service, lst.id, values)
            return _done("client.list_edit", "list_saved", changed.address or lst.address, list_id=lst.id)
        except ClientError as exc:
            errors, status = _form_errors(exc, {}, ("members",)), exc.status
    return render_template("client/list_edit.html", lst=lst, values=values, errors=errors,
                           notice=_notice(service)), status


@bp.route("/lists/<list_id>/delete", methods=["GET", "POST"])
def list_delete(list_id: str):
    runtime, service = _ctx()
    if request.method == "POST":
        require_csrf()
    lst = svc.get_list(runtime, service, list_id)
    error, status = None, 200
    if request.method == "POST":
        try:
            svc.delete_list(runtime, service, lst.id)
            return _done("client.lists", "list_deleted", lst.address)
        except ClientError as exc:
            error, status = exc.message, exc.status
    return render_template("client/confirm_delete.html", what="distribution list", address=lst.address,
                           warning=f"Mail to {lst.address} will no longer reach its "
                                   f"{len(lst.members)} member(s).",
                           action=url_for("client.list_delete", list_id=lst.id),
                           back=url_for("client.list_edit", list_id=lst.id), error=error), status
