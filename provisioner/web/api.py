"""Admin API (contract section 3): thin views over ``provisioner.admin``.

Every request carries ``Authorization: Bearer <API key>``; keys of scope
``read`` may only GET. A key made for one billing source (``api-key create
--source``) sees and acts on that source's services only; anything else is a
404, as for what does not exist. Query strings are validated by the schemas of
``provisioner.web.schemas`` (a bad value is a 400 naming the parameter) and
answers are serialised by them, inside the read transaction.

``docs_bp`` serves the OpenAPI document at ``/api/openapi.json`` without auth.
"""
from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, g, jsonify, request
from marshmallow import Schema, ValidationError

from .. import admin, apikeys, inputs
from .. import invoices as invoicing
from ..billing.sources import AUTHORITY_PROVISIONER
from ..db import utcnow
from ..events import flatten_errors
from ..models import JobState, Service
from ..providers.base import Capability
from ..providers.errors import ProviderError
from ..reconcile import InvalidInstant, check_instant
from . import current_runtime, openapi
from .hooks import reveal_secrets
from . import schemas as sch
from .errors import ApiError, error_response

log = logging.getLogger("provisioner.api")

bp = Blueprint("api", __name__, url_prefix="/api/v1")
docs_bp = Blueprint("api_docs", __name__)

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _unauthorized(message: str):
    response, status = error_response(401, "unauthorized", message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="provisioner"'
    return response, status


@bp.before_request
def authenticate():
    token = _bearer_token()
    if token is None:
        return _unauthorized("Send the header Authorization: Bearer <API key>.")
    db = current_runtime().db
    with db.read() as session:
        key = apikeys.authenticate(session, token)
    if key is None:
        return _unauthorized("The API key is not valid or has been revoked.")
    g.api_key = key
    if key.scope != "admin" and request.method not in READ_METHODS:
        return error_response(403, "forbidden",
                              f"API key {key.prefix}… has the {key.scope} scope: it may only GET.")
    try:
        admin.touch_api_key(db, key)
    except Exception:
        # Bookkeeping only: a busy database must not turn a read into an error.
        log.warning("could not record the use of API key %s", key.prefix, exc_info=True)
    return None


def _query(schema: type[Schema]) -> dict:
    # Repeated parameters are joined, so ?state=a&state=b means state=a,b.
    args = {name: ",".join(values) for name, values in request.args.lists()}
    try:
        return schema().load(args)
    except ValidationError as exc:
        problems = flatten_errors(exc.messages)
        raise ApiError(400, "invalid_query",
                       f"Invalid query parameter(s): {', '.join(sorted(problems))}.", problems) from None


def _read():
    return current_runtime().db.read()


def _scope() -> admin.Scope:
    """The caller's reach: its key's billing source, or every source."""
    return admin.Scope(g.api_key.source)


def _source() -> str | None:
    """``?source=`` of a request naming one service (an operator's billing id may be ambiguous)."""
    return _query(sch.SourceQuery).get("source")


def _provisioner_sources() -> list[str]:
    return [s.name for s in current_runtime().sources.all() if s.lifecycle_authority == AUTHORITY_PROVISIONER]


@bp.get("/services")
def list_services():
    query = _query(sch.ServiceQuery)
    with _read() as session:
        page = admin.list_services(session, query, current_runtime().catalog, scope=_scope(),
                                   provisioner_sources=_provisioner_sources())
        return jsonify(sch.ServicePageSchema().dump(page))


@bp.get("/services/<service_id>")
def get_service(service_id: str):
    source = _source()
    with _read() as session:
        return jsonify(sch.ServiceDetailSchema().dump(admin.get_service(session, service_id, _scope(), source)))


@bp.get("/jobs")
def list_jobs():
    query = _query(sch.JobQuery)
    with _read() as session:
        return jsonify(sch.JobPageSchema().dump(admin.list_jobs(session, query, _scope())))


@bp.get("/jobs/<job_id>")
def get_job(job_id: str):
    # Hook answers point here (Location); its first keys are those of the hook's job.
    with _read() as session:
        job = admin.get_job(session, job_id, scope=_scope())
        body = sch.JobDetailSchema().dump(job)
    if g.api_key.scope != "admin":
        # Showing a once-shown secret uses it up, so it is a write: a read key would
        # take the relay password from the WHMCS module that waits for it.
        if job.reveal_once is not None and job.state in JobState.FINISHED:
            body["secrets_withheld"] = ("One-time secrets wait for an API key with the admin scope; "
                                        "this key may only read.")
        return jsonify(body)
    secrets = reveal_secrets(job)
    if secrets:
        body["secrets"] = secrets
    return jsonify(body)


@bp.post("/jobs/<job_id>/retry")
def retry_job(job_id: str):
    runtime = current_runtime()
    with runtime.db.transaction() as session:
        job = admin.retry_job(session, job_id, extra_attempts=runtime.settings.job_max_attempts, scope=_scope())
        _record(session, "retry", session.get(Service, job.service_id), job.id)
        body = sch.JobDetailSchema().dump(job)
    log.info("job %s queued again by API key %s", job_id, g.api_key.prefix)
    return jsonify(body), 202, {"Location": f"/api/v1/jobs/{job_id}"}


@bp.get("/events")
def list_events():
    query = _query(sch.EventQuery)
    with _read() as session:
        return jsonify(sch.EventPageSchema().dump(admin.list_events(session, query, _scope())))


@bp.get("/events/<event_id>")
def get_event(event_id: str):
    with _read() as session:
        return jsonify(sch.EventDetailSchema().dump(admin.get_event(session, event_id, _scope())))


@bp.get("/upstreams")
def list_upstreams():
    query = _query(sch.PageQuery)
    page = admin.list_upstreams(current_runtime().catalog, query["page"], query["per_page"])
    return jsonify(sch.UpstreamPageSchema().dump(page))


@bp.get("/upstreams/<name>/test")
def test_upstream(name: str):
    result = admin.check_upstream(current_runtime(), name)
    return jsonify(sch.UpstreamTestSchema().dump(result))


@bp.get("/upstreams/<name>/pricing")
def upstream_pricing(name: str):
    runtime = current_runtime()
    if name not in runtime.catalog.upstreams:
        raise ApiError(404, "upstream_not_found", f"No upstream named {name!r} is configured.")
    try:
        provider = runtime.provider(name)
        if not provider.supports(Capability.PRICING):
            raise ApiError(409, "not_supported",
                           f"Upstream {name!r} ({provider.kind}) has no price table.")
        rows = provider.price_table()
    except ProviderError as exc:
        log.warning("upstream %s: price table failed: %s (%s)", name, exc.code, exc.message)
        raise ApiError(502, exc.code, exc.safe_message) from None
    return jsonify(sch.PriceTableSchema().dump({"upstream": name, "provider": provider.kind, "items": rows}))


# --- upstream invoices (extension) -----------------------------------------------------------

def _invoice_caller() -> dict[str, str | None]:
    return {"source": g.api_key.source, "prefix": g.api_key.prefix}


@bp.get("/upstreams/<name>/invoices")
def upstream_invoices(name: str):
    query = _query(sch.PageQuery)
    invoices = invoicing.list_invoices(current_runtime(), name, **_invoice_caller())
    start = (query["page"] - 1) * query["per_page"]
    page = admin.Page(invoices[start:start + query["per_page"]], query["page"], query["per_page"], len(invoices))
    return jsonify(sch.InvoicePageSchema().dump(page))


@bp.get("/upstreams/<name>/invoices.csv")
def upstream_invoices_csv(name: str):
    invoices = invoicing.list_invoices(current_runtime(), name, **_invoice_caller())
    text = invoicing.as_csv(sch.InvoiceSchema(many=True).dump(invoices), sch.INVOICE_CSV_COLUMNS)
    return Response(text, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{invoicing.download_name(name)}-invoices.csv"',
        "Cache-Control": "private, no-store"})


@bp.get("/upstreams/<name>/invoices/<invoice_id>.pdf")
def upstream_invoice_pdf(name: str, invoice_id: str):
    pdf = invoicing.invoice_pdf(current_runtime(), name, invoice_id, **_invoice_caller())
    return Response(pdf, mimetype="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="{invoicing.download_name(invoice_id)}.pdf"',
        "Cache-Control": "private, no-store"})


@bp.get("/products")
def list_products():
    query = _query(sch.PageQuery)
    page = admin.list_products(current_runtime().catalog, query["page"], query["per_page"], _scope())
    return jsonify(sch.ProductPageSchema().dump(page))


# --- scheduler: reconcile runs, usage, operator suspensions, callbacks --------------------------

def _body(schema: type[Schema]) -> dict:
    """A JSON object body validated by ``schema``; no body at all counts as ``{}``."""
    raw = request.get_data(cache=True)
    data = inputs.loads(raw) if raw.strip() else {}
    if not isinstance(data, dict):
        raise ApiError(400, "malformed_json", "The body must be a JSON object.")
    try:
        return schema().load(data)
    except ValidationError as exc:
        problems = flatten_errors(exc.messages)
        raise ApiError(400, "invalid_body", f"Invalid field(s): {', '.join(sorted(problems))}.",
                       problems) from None


@bp.post("/reconcile")
def start_reconcile():
    body = _body(sch.ReconcileRequestSchema)
    try:
        check_instant(body["at"], body["dry_run"])
    except InvalidInstant as exc:
        raise ApiError(exc.status, exc.code, exc.message, {"at": exc.message}) from None
    runtime = current_runtime()
    at = body["at"] or utcnow()
    scope = _scope()
    with runtime.db.transaction() as session:
        run = admin.start_reconcile_run(session, at=at, dry_run=body["dry_run"], scope=scope)
        run_id, answer = run.id, sch.ReconcileRunDetailSchema().dump(admin.RunRecord(run, {}))
    admin.run_reconcile_in_background(runtime, run_id, at=at, dry_run=body["dry_run"], source=scope.source)
    log.info("reconcile run %s started by API key %s", run_id, g.api_key.prefix)
    return jsonify(answer), 202, {"Location": f"/api/v1/reconcile/runs/{run_id}"}


@bp.get("/reconcile/runs")
def list_reconcile_runs():
    query = _query(sch.ReconcileRunQuery)
    with _read() as session:
        return jsonify(sch.ReconcileRunPageSchema().dump(admin.list_reconcile_runs(session, query, _scope())))


@bp.get("/reconcile/runs/<run_id>")
def get_reconcile_run(run_id: str):
    with _read() as session:
        return jsonify(sch.ReconcileRunDetailSchema().dump(admin.get_reconcile_run(session, run_id, _scope())))


@bp.get("/services/<service_id>/usage")
def service_usage(service_id: str):
    source = _source()
    with _read() as session:
        return jsonify(sch.UsageSchema().dump(admin.get_usage(session, service_id, _scope(), source)))


@bp.get("/usage")
def list_usage():
    query = _query(sch.UsageQuery)
    with _read() as session:
        return jsonify(sch.UsagePageSchema().dump(admin.list_usage(session, query, _scope())))


def _record(session, action: str, service, job_id: str | None, reason: str | None = None) -> None:
    """The operator-action record (shown in the console's service page) of this key's write."""
    key = g.api_key
    admin.record_action(session, key_id=key.id, actor=key.name, key_prefix=key.prefix, action=action, via="api",
                        service=service, job_id=job_id, reason=reason)


def _operator_action(service_id: str, action: str, body: dict | None = None):
    runtime = current_runtime()
    max_attempts = runtime.settings.job_max_attempts
    where = {"scope": _scope(), "source": _source()}
    with runtime.db.transaction() as session:
        if action == "suspend":
            job = admin.operator_suspend(session, service_id, body["reason"], max_attempts=max_attempts, **where)
        elif action == "terminate":
            job = admin.operator_terminate(session, runtime, service_id, confirm=body["confirm"],
                                           reason=body["reason"], **where)
        else:
            job = admin.operator_unsuspend(session, service_id, max_attempts=max_attempts, **where)
        _record(session, action, session.get(Service, job.service_id), job.id, (body or {}).get("reason"))
        answer = sch.JobDetailSchema().dump(job)
    log.info("service %s: %s by API key %s (job %s)", service_id, action, g.api_key.prefix, answer["id"])
    return jsonify(answer), 202, {"Location": f"/api/v1/jobs/{answer['id']}"}


@bp.post("/services/<service_id>/suspend")
def suspend_service(service_id: str):
    return _operator_action(service_id, "suspend", _body(sch.SuspendRequestSchema))


@bp.post("/services/<service_id>/unsuspend")
def unsuspend_service(service_id: str):
    return _operator_action(service_id, "unsuspend")


@bp.post("/services/<service_id>/terminate")
def terminate_service(service_id: str):
    return _operator_action(service_id, "terminate", _body(sch.TerminateRequestSchema))


@bp.get("/notifications")
def list_notifications():
    query = _query(sch.NotificationQuery)
    with _read() as session:
        return jsonify(sch.NotificationPageSchema().dump(admin.list_notifications(session, query, _scope())))


@bp.get("/notifications/<notification_id>")
def get_notification(notification_id: str):
    with _read() as session:
        return jsonify(sch.NotificationDetailSchema().dump(
            admin.get_notification(session, notification_id, _scope())))


# --- client area single sign-on (contract sections 3 and 4) -------------------------------------

@bp.post("/services/<service_id>/sso")
def service_sso(service_id: str):
    from ..client import sso
    source = _source()
    with _read() as session:
        key = admin.find_service(session, service_id, _scope(), source).id
    try:
        url, expires_at = sso.issue_token(current_runtime(), key)
    except sso.SsoError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    log.info("service %s: client-area sign-in link issued to API key %s", service_id, g.api_key.prefix)
    return jsonify(sch.SsoLinkSchema().dump({"url": url, "expires_at": expires_at})), 200, {
        "Cache-Control": "no-store"}


@bp.post("/console/sso")
def console_sso():
    """A single-use sign-in link into the operator console, as this key (its scope and source)."""
    from ..console import sso
    body = _body(sch.ConsoleSsoRequestSchema)
    runtime = current_runtime()
    token, expires_at = sso.issue(runtime.db, runtime.settings.secret_key, g.api_key.id, body.get("path"))
    url = runtime.settings.public_url.rstrip("/") + sso.PATH + token
    log.info("console sign-in link issued to API key %s", g.api_key.prefix)
    return jsonify(sch.ConsoleSsoLinkSchema().dump({"url": url, "expires_at": expires_at})), 200, {
        "Cache-Control": "no-store"}


@docs_bp.get("/api/openapi.json")
def openapi_document():
    return jsonify(openapi.document(current_app))
