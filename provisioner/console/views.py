"""The console's pages: thin views over ``provisioner.admin``, plain forms; JavaScript only
refreshes some of them (``static/live.js``), never needed.

Services are addressed by their key (``services.id``), which names one service
across every billing source; a service or job of a source the key cannot see is a
404, as for one that does not exist. Every POST calls ``require_write`` first
(a ``read`` key gets 403 whatever it sends), records the operator action in the
transaction that does it, and redirects (303) to a page that says what was done.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, make_response, redirect, render_template, request, url_for
from markupsafe import Markup, escape
from sqlalchemy import select

from .. import admin
from ..billing.sources import AUTHORITY_PROVISIONER
from ..db import utcnow
from ..models import DesiredStatus, JobState, Service
from ..providers.base import AccountStatus
from ..web import current_runtime
from ..web.errors import ApiError
from ..web.page_headers import private_page_headers
from . import logins, overview, sso, throttle, upstream_calls
from .session import (CSRF_FIELD, ConsoleError, NotSignedIn, check_sign_in_csrf, csrf_token, operator,
                      optional_operator, require_csrf, require_write, set_pre_cookie, sign_in_csrf, sign_out,
                      start)

log = logging.getLogger("provisioner.console")

bp = Blueprint("console", __name__, url_prefix="/admin", template_folder="templates",
               static_folder="static", static_url_path="/static")

PER_PAGE = 50
#: seconds between live refreshes (static/live.js) of the pages that have them
LIVE_OVERVIEW, LIVE_LISTS, LIVE_RUNNING_PASS = 10, 5, 2
#: lists count their matches up to this many ("more than 10000"): counting every one of
#: 100,000s of services on each page view is what would make the page slow
COUNT_LIMIT = 10_000
MAX_REASON = 500
#: failed jobs one bulk retry queues at most (the oldest first): one bounded transaction;
#: the rest wait for the next confirmation
BULK_RETRY_LIMIT = 1000
DESIRED = (DesiredStatus.ACTIVE, DesiredStatus.SUSPENDED, DesiredStatus.TERMINATED)
OBSERVED = tuple(s.value for s in AccountStatus)
JOB_STATES = JobState.ALL

NOTICES = {
    "converge": "A converge job was queued.",
    "suspend": "The service was suspended by an operator; a converge job was queued.",
    "unsuspend": "The suspension was lifted; a converge job was queued.",
    "retry": "The job was queued again.",
    "bulk_retry": "{n} failed job(s) were queued again.",
    "terminate": "The service was terminated; a converge job deletes it upstream.",
    "refuse": "Termination refused: the service stays suspended, now as an operator's suspension.",
    "revoked": "The key was revoked: it stops working at once, in the console too.",
    "requeue": "The callback will be delivered once more, shortly.",
    "reconcile": "The pass has started; this page follows it (it refreshes itself, or reload it).",
}


CSP = ("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'self'")
_TITLES = {400: "Please check your input", 401: "Please sign in", 403: "Not allowed", 404: "Not found",
           409: "Not possible right now", 422: "Please check your input", 429: "Too many attempts",
           502: "The upstream failed",
           503: "Unavailable"}


# --- refusals as pages, headers, template helpers ------------------------------------------------

def _page(status: int, title: str, message: str):
    return render_template("console/message.html", title=title, message=message, status=status), status


@bp.errorhandler(NotSignedIn)
def _not_signed_in(exc: NotSignedIn):
    if request.method == "GET":
        return redirect(url_for("console.sign_in_form", next=request.full_path.rstrip("?")), 303)
    return _page(exc.status, exc.title, exc.message)


@bp.errorhandler(ConsoleError)
def _console_error(exc: ConsoleError):
    return _page(exc.status, exc.title, exc.message)


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    return _page(exc.status, _TITLES.get(exc.status, "Something went wrong"), exc.message)


@bp.after_request
def _headers(response):
    return private_page_headers(response, CSP)


def _csrf_field() -> Markup:
    return Markup(f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(csrf_token())}">')


@bp.context_processor
def _context():
    return {"operator": optional_operator(), "csrf_field": _csrf_field}


def _bad(name: str, message: str) -> ConsoleError:
    return ConsoleError(400, "Please check the filter", f"{name}: {message}")


def _text_arg(name: str, max_len: int) -> str | None:
    value = request.args.get(name, "").strip()
    if len(value) > max_len:
        raise _bad(name, f"at most {max_len} characters")
    return value or None


def _choice_arg(name: str, choices) -> str | None:
    value = request.args.get(name, "").strip()
    if value and value not in choices:
        raise _bad(name, f"one of {', '.join(choices)}")
    return value or None


def _page_arg() -> int:
    raw = request.args.get("page", "1").strip() or "1"
    if not raw.isdigit() or not 1 <= int(raw) <= 10**9:
        raise _bad("page", "a whole number from 1")
    return int(raw)


def _form_reason(required: bool = True) -> str:
    reason = request.form.get("reason", "").strip()
    if required and not reason:
        raise ConsoleError(422, "Please check your input", "Give a reason: it is recorded with the action.")
    if len(reason) > MAX_REASON:
        raise ConsoleError(422, "Please check your input", f"The reason has at most {MAX_REASON} characters.")
    return reason


def _back(default: str) -> str:
    """The form's ``next`` if it is a console path (never another site), else ``default``."""
    target = request.form.get("next", "")
    parts = urlsplit(target)
    if target.startswith("/admin/") and not parts.scheme and not parts.netloc and "\\" not in target:
        return target
    return default


def _with_notice(url: str, done: str, **extra) -> str:
    sep = "&" if "?" in url else "?"
    query = "&".join(f"{k}={v}" for k, v in {"done": done, **extra}.items())
    return f"{url}{sep}{query}"


def _notice() -> str | None:
    template = NOTICES.get(request.args.get("done", ""))
    if template is None:
        return None
    n = request.args.get("n", "")
    return template.format(n=int(n) if n.isdigit() else "Some")


def _load_service(session, key: str, who: logins.Operator) -> Service:
    service = session.get(Service, key)
    if service is None or not who.reach.allows(service.source):
        raise ConsoleError(404, "Not found", f"No service {key!r}.")
    return service


def _record(session, who: logins.Operator, action: str, **kw):
    return admin.record_action(session, key_id=who.key_id, actor=who.name, key_prefix=who.prefix,
                               action=action, via="console", **kw)


def _provisioner_sources() -> list[str]:
    return [s.name for s in current_runtime().sources.all() if s.lifecycle_authority == AUTHORITY_PROVISIONER]


# --- signing in and out -----------------------------------------------------------------------

@bp.get("/sign-in")
def sign_in_form():
    if optional_operator() is not None:
        return redirect(url_for("console.home"), 303)
    return _sign_in_page({}, 200)


def _sign_in_page(errors: dict[str, str], status: int):
    token = sign_in_csrf()
    response = make_response(render_template("console/sign_in.html", errors=errors, signin_csrf=token,
                                             next=request.values.get("next", "")), status)
    set_pre_cookie(response)
    return response


def _address() -> str:
    return request.remote_addr or "unknown"


def _too_many_attempts():
    """A 429 page if this client address has used up its refused sign-ins, else None."""
    runtime = current_runtime()
    seconds = throttle.wait(runtime.db, runtime.settings.secret_key, _address())
    if seconds is None:
        return None
    minutes = max(1, -(-int(seconds) // 60))
    log.warning("console: sign-in refused, too many failed attempts from one address")
    response = make_response(_page(429, "Too many attempts",
                                   f"There were too many failed sign-ins from your address. Try again in "
                                   f"{minutes} minute{'' if minutes == 1 else 's'}."))
    response.headers["Retry-After"] = str(max(1, int(seconds + 0.999)))
    return response


@bp.post("/sign-in")
def sign_in():
    check_sign_in_csrf()
    refused = _too_many_attempts()
    if refused is not None:
        return refused
    key = request.form.get("api_key", "").strip()
    if not key or len(key) > 200:
        return _sign_in_page({"api_key": "Paste an API key (provisioner api-key create)."}, 422)
    runtime = current_runtime()
    opened = logins.open_login(runtime.db, runtime.settings.secret_key, key)
    if opened is None:
        throttle.record_failure(runtime.db, runtime.settings.secret_key, _address())
        return _sign_in_page({"api_key": "This API key is not valid or has been revoked."}, 401)
    token, row = opened
    target = _back(url_for("console.home"))
    response = redirect(target, 303)
    start(response, token)
    log.info("console: signed in with API key %s (%s)", row.prefix, row.scope)
    return response


@bp.get("/sso/<token>")
def redeem_sso(token: str):
    """A single-use link from ``POST /api/v1/console/sso``: a session as the key that asked."""
    refused = _too_many_attempts()
    if refused is not None:
        return refused
    runtime = current_runtime()
    redeemed = sso.redeem(runtime.db, runtime.settings.secret_key, token) if len(token) <= 128 else None
    opened = (logins.open_login(runtime.db, runtime.settings.secret_key, key_id=redeemed.api_key_id)
              if redeemed else None)
    if opened is None:
        throttle.record_failure(runtime.db, runtime.settings.secret_key, _address())
        raise ConsoleError(401, "Please sign in", "This sign-in link is not valid: it works once, within 60 "
                                                  "seconds. Open the console again from your billing system, "
                                                  "or sign in with an API key.")
    token_, row = opened
    response = redirect(redeemed.next_path or url_for("console.home"), 303)
    start(response, token_)
    log.info("console: signed in by a sign-in link of API key %s (%s)", row.prefix, row.scope)
    return response


@bp.post("/sign-out")
def sign_out_view():
    require_csrf(operator())   # a forged form cannot sign an operator out either
    response = redirect(url_for("console.sign_in_form", signed_out=1), 303)
    sign_out(response)
    return response


# --- services ------------------------------------------------------------------------------------

def _service_filters(who: logins.Operator) -> dict[str, Any]:
    filters: dict[str, Any] = {}
    for name, arg, max_len in (("search", "q", 253), ("source", "source", 32), ("upstream", "upstream", 128),
                               ("product_key", "product", 128)):
        value = _text_arg(arg, max_len)
        if value is not None:
            filters[name] = value
    status = _choice_arg("status", DESIRED)
    if status:
        filters["status"] = [status]
    observed = _choice_arg("observed", OBSERVED)
    if observed:
        filters["observed_status"] = [observed]
    for flag in ("failing", "drifted"):
        if request.args.get(flag) in ("1", "on", "true"):
            filters[flag] = True
    return filters


def _choices(who: logins.Operator) -> dict[str, list[str]]:
    runtime = current_runtime()
    sources = runtime.sources.names()
    products = sorted(key for key, product in runtime.catalog.products.items()
                      if who.source is None or product.sold_by(who.source))
    return {"sources": [who.source] if who.source else sources, "upstreams": sorted(runtime.catalog.upstreams),
            "products": products, "desired": list(DESIRED), "observed": list(OBSERVED)}


@bp.get("/")
def home():
    who = operator()
    runtime = current_runtime()
    now = utcnow()
    with runtime.db.read() as session:
        figures = overview.overview(session, who.reach, now, awaiting=admin.awaiting_termination(
            runtime.catalog, now, _provisioner_sources()))
    return render_template("console/overview.html", o=figures, now=now, calls=upstream_calls.WINDOW.figures(),
                           live_every=LIVE_OVERVIEW)


@bp.get("/services")
def services():
    who = operator()
    filters = _service_filters(who)
    query = {**filters, "page": _page_arg(), "per_page": PER_PAGE}
    runtime = current_runtime()
    with runtime.db.read() as session:
        page = admin.list_services(session, query, runtime.catalog, scope=who.reach,
                                   provisioner_sources=_provisioner_sources(), sources=runtime.sources.names(),
                                   count_limit=COUNT_LIMIT)
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template("console/services.html", page=page, args=args, choices=_choices(who),
                           pages=_pages(page))


def _pages(page: admin.Page) -> int | None:
    """How many pages, or None when the count stopped at COUNT_LIMIT."""
    if page.more:
        return None
    return -(-page.total // PER_PAGE) if page.total else 1


def _side_by_side(service: Service) -> list[tuple[str, Any, Any]]:
    observed = service.observed or {}
    rows = [("status", service.desired_status, service.observed_status),
            ("domain", service.domain, observed.get("domain")),
            ("paid until", service.next_due_date.isoformat() if service.next_due_date else None,
             observed.get("paid_until"))]
    seen = observed.get("limits") or {}
    for name in sorted(set(service.limits or {}) | set(seen)):
        rows.append((name, (service.limits or {}).get(name), seen.get(name)))
    return rows


def _usage_rows(service: Service) -> list[tuple[str, Any, Any]]:
    limits, usage = service.limits or {}, service.usage or {}
    if not usage:
        return []          # never read upstream yet: nothing to set against the limits
    return [(name, usage.get(name), limits.get(name)) for name in sorted(set(usage) | set(limits))
            if name in usage or isinstance(limits.get(name), int)]


@bp.get("/services/<path:key>")
def service(key: str):
    who = operator()
    runtime = current_runtime()
    with runtime.db.read() as session:
        found = _load_service(session, key, who)
        detail = admin.get_service(session, found.billing_id, who.reach, found.source)
        actions = admin.list_actions(session, found.id)
        sent = admin.list_notifications(session, {"service_id": found.id, "page": 1, "per_page": 20}, who.reach)
        awaiting = session.execute(admin.awaiting_termination(runtime.catalog, utcnow(), _provisioner_sources())
                                   .where(Service.id == found.id)).first() is not None
    return render_template("console/service.html", detail=detail, svc=detail.service, actions=actions,
                           callbacks=sent.items,
                           compare=_side_by_side(detail.service), usage=_usage_rows(detail.service),
                           awaiting=awaiting, notice=_notice())


def _service_action(key: str, action: str):
    who = require_write()
    runtime = current_runtime()
    reason = _form_reason(required=action in ("suspend", "unsuspend", "refuse"))
    max_attempts = runtime.settings.job_max_attempts
    with runtime.db.transaction() as session:
        found = _load_service(session, key, who)
        where = {"scope": who.reach, "source": found.source}
        job_id = None
        if action == "converge":
            job_id = admin.operator_converge(session, found.billing_id, max_attempts=max_attempts, **where).id
        elif action == "suspend":
            job_id = admin.operator_suspend(session, found.billing_id, reason, max_attempts=max_attempts,
                                            **where).id
        elif action == "unsuspend":
            job_id = admin.operator_unsuspend(session, found.billing_id, max_attempts=max_attempts, **where).id
        elif action == "terminate":
            job_id = admin.operator_terminate(session, runtime, found.billing_id,
                                              confirm=request.form.get("confirm", ""),
                                              reason=reason or "terminated from the console", **where).id
        else:
            admin.refuse_termination(session, found.billing_id, reason, **where)
        _record(session, who, action if action != "refuse" else "refuse_termination", service=found,
                job_id=job_id, reason=reason)
        key = found.id
    log.info("service %s: %s from the console by API key %s", key, action, who.prefix)
    return redirect(_with_notice(_back(url_for("console.service", key=key)), action), 303)


@bp.post("/services/<path:key>/converge")
def converge(key: str):
    return _service_action(key, "converge")


@bp.post("/services/<path:key>/suspend")
def suspend(key: str):
    return _service_action(key, "suspend")


@bp.post("/services/<path:key>/unsuspend")
def unsuspend(key: str):
    return _service_action(key, "unsuspend")


@bp.post("/services/<path:key>/terminate")
def terminate(key: str):
    return _service_action(key, "terminate")


@bp.post("/services/<path:key>/refuse-termination")
def refuse_termination(key: str):
    return _service_action(key, "refuse")


@bp.post("/services/<path:key>/client-area")
def open_client_area(key: str):
    """Open the client area as the customer: a single-use sign-in link, redeemed by this
    browser at once (the same path on this host). Like every sign-in to a service, it ends
    the customer's own client-area sessions."""
    from ..client import sso
    who = require_write()
    runtime = current_runtime()
    with runtime.db.read() as session:
        found = _load_service(session, key, who)
    try:
        url, _ = sso.issue_token(runtime, found.id)
    except sso.SsoError as exc:
        raise ConsoleError(exc.status, _TITLES.get(exc.status, "Not possible"), exc.message) from None
    with runtime.db.transaction() as session:
        _record(session, who, "client_sso", service=found)
    log.info("service %s: client area opened as the customer by API key %s", found.id, who.prefix)
    return redirect(urlsplit(url).path, 303)


# --- jobs ----------------------------------------------------------------------------------------

#: the jobs' age filter: created within the last ...
AGES = {"hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1), "week": dt.timedelta(days=7)}


def _age(value: str | None, filters: dict[str, Any]) -> None:
    if value:
        filters["created_after"] = utcnow() - AGES[value]


def _job_filters() -> dict[str, Any]:
    filters: dict[str, Any] = {}
    state = _choice_arg("state", JOB_STATES)
    if state:
        filters["state"] = [state]
    for name, max_len in (("upstream", 128), ("error_code", 64), ("source", 32)):
        value = _text_arg(name, max_len)
        if value is not None:
            filters[name] = value
    _age(_choice_arg("age", tuple(AGES)), filters)
    return filters


@bp.get("/jobs")
def jobs():
    who = operator()
    filters = _job_filters()
    query = {**filters, "trouble_first": True, "page": _page_arg(), "per_page": PER_PAGE}
    runtime = current_runtime()
    with runtime.db.read() as session:
        page = admin.list_jobs(session, query, who.reach, count_limit=COUNT_LIMIT)
        codes = admin.job_error_codes(session, who.reach)
        failed = admin.count_failed_jobs(session, {k: v for k, v in filters.items() if k != "state"}, who.reach)
    args = {k: v for k, v in request.args.items() if k not in ("page", "done", "n") and v}
    return render_template("console/jobs.html", page=page, args=args, codes=codes, failed=failed, ages=list(AGES),
                           choices=_choices(who), states=JOB_STATES, notice=_notice(),
                           pages=_pages(page), live_every=LIVE_LISTS)


@bp.post("/jobs/<job_id>/retry")
def retry_job(job_id: str):
    who = require_write()
    runtime = current_runtime()
    with runtime.db.transaction() as session:
        job = admin.retry_job(session, job_id, extra_attempts=runtime.settings.job_max_attempts, scope=who.reach)
        found = session.get(Service, job.service_id)
        _record(session, who, "retry", service=found, job_id=job.id)
    log.info("job %s queued again from the console by API key %s", job_id, who.prefix)
    return redirect(_with_notice(_back(url_for("console.jobs")), "retry"), 303)


def _bulk_filters(source) -> tuple[dict[str, Any], dict[str, str]]:
    """The bulk retry's filters from a query or form: (for admin, as given)."""
    given = {}
    for name, max_len in (("upstream", 128), ("error_code", 64), ("source", 32), ("age", 8)):
        value = source.get(name, "").strip()
        if len(value) > max_len:
            raise _bad(name, f"at most {max_len} characters")
        if value:
            given[name] = value
    if given.get("age") and given["age"] not in AGES:
        raise _bad("age", f"one of {', '.join(AGES)}")
    filters: dict[str, Any] = {k: v for k, v in given.items() if k != "age"}
    _age(given.get("age"), filters)
    return filters, given


@bp.get("/jobs/retry-failed")
def confirm_bulk_retry():
    who = operator()
    if not who.can_write:
        raise ConsoleError(403, "Not allowed", f"API key {who.prefix}… has the read scope: it cannot retry jobs.")
    filters, given = _bulk_filters(request.args)
    with current_runtime().db.read() as session:
        count = admin.count_failed_jobs(session, filters, who.reach)
    return render_template("console/confirm_retry.html", filters=given, count=count,
                           batch=min(count, BULK_RETRY_LIMIT), limit=BULK_RETRY_LIMIT)


@bp.post("/jobs/retry-failed")
def bulk_retry():
    who = require_write()
    filters, given = _bulk_filters(request.form)
    runtime = current_runtime()
    with runtime.db.transaction() as session:
        queued = admin.retry_failed_jobs(session, filters, extra_attempts=runtime.settings.job_max_attempts,
                                         scope=who.reach, limit=BULK_RETRY_LIMIT)
        services = {s.id: s for s in session.execute(
            select(Service).where(Service.id.in_({job.service_id for job in queued}))).scalars()}
        detail = ", ".join(f"{k}={v}" for k, v in given.items()) or "every failed job"
        for job in queued:
            _record(session, who, "bulk_retry", service=services.get(job.service_id), job_id=job.id,
                    reason=f"bulk retry of {len(queued)} ({detail})")
    log.info("%d failed jobs queued again from the console by API key %s", len(queued), who.prefix)
    return redirect(url_for("console.jobs", done="bulk_retry", n=len(queued), **given), 303)
