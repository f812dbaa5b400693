"""The console's other pages: callbacks, upstreams (with invoices) and products, API keys,
reconcile passes and the terminations waiting for an operator. Same rules as ``views`` (whose blueprint
and helpers these use): thin views over ``provisioner.admin``, ``require_write`` first in
every POST, the operator action recorded in the transaction that does it.
"""
from __future__ import annotations

from typing import Any

from flask import Response, redirect, render_template, request, url_for
from sqlalchemy import select

from .. import admin, apikeys, reconcile
from .. import invoices as invoicing
from ..db import utcnow
from ..models import Service
from ..web import current_runtime
from . import logins
from .session import ConsoleError, operator, require_write
from .views import (LIVE_LISTS, LIVE_RUNNING_PASS, PER_PAGE, _back, _choice_arg, _notice, _page_arg, _pages,
                    _provisioner_sources, _record, _text_arg, _with_notice, bp, log)


# --- callbacks to the billing systems ---------------------------------------------------------------------

CALLBACK_STATES = ("pending", "delivered", "failed")


@bp.get("/callbacks")
def callbacks():
    who = operator()
    query: dict[str, Any] = {"page": _page_arg(), "per_page": PER_PAGE}
    state = _choice_arg("state", CALLBACK_STATES)
    if state:
        query["state"] = [state]
    for name, max_len in (("type", 64), ("source", 32)):
        value = _text_arg(name, max_len)
        if value:
            query[name] = [value] if name == "type" else value
    with current_runtime().db.read() as session:
        page = admin.list_notifications(session, query, who.reach)
    args = {k: v for k, v in request.args.items() if k not in ("page", "done", "n") and v}
    return render_template("console/callbacks.html", page=page, args=args, states=CALLBACK_STATES,
                           pages=_pages(page), notice=_notice())


@bp.post("/callbacks/<notification_id>/requeue")
def requeue_callback(notification_id: str):
    who = require_write()
    with current_runtime().db.transaction() as session:
        notification = admin.requeue_notification(session, notification_id, scope=who.reach)
        found = session.get(Service, notification.service_id) if notification.service_id else None
        _record(session, who, "requeue_callback", service=found, source=notification.source,
                reason=f"callback {notification.id} ({notification.type})")
    log.info("callback %s requeued from the console by API key %s", notification_id, who.prefix)
    return redirect(_with_notice(_back(url_for("console.callbacks")), "requeue"), 303)


# --- upstreams and products (configuration, never secrets) -------------------------------------------------

def _upstream_name(name: str) -> str:
    if name not in current_runtime().catalog.upstreams:
        raise ConsoleError(404, "Not found", f"No upstream named {name!r} is configured.")
    return name


@bp.get("/upstreams")
def upstreams():
    who = operator()
    runtime = current_runtime()
    items = admin.list_upstreams(runtime.catalog, 1, 1000).items
    products = admin.list_products(runtime.catalog, 1, 1000, who.reach).items
    # invoices cover every source: a source-scoped key is not offered them
    invoicing_upstreams = set() if who.source else {u["name"] for u in items
                                                    if invoicing.has_invoices(runtime, u["name"])}
    return render_template("console/upstreams.html", upstreams=items, products=products,
                           invoicing=invoicing_upstreams)


@bp.get("/upstreams/<name>/test")
def test_upstream(name: str):
    """Test the connection (a read: the API lets read keys do it too); answers the same page."""
    who = operator()
    runtime = current_runtime()
    result = admin.check_upstream(runtime, _upstream_name(name))
    log.info("upstream %s: connection tested from the console by API key %s: %s", name, who.prefix,
             "ok" if result["ok"] else result["error"]["code"])
    return render_template("console/upstream_test.html", name=name, result=result)


@bp.get("/upstreams/<name>/pricing")
def upstream_pricing(name: str):
    from ..providers.base import Capability
    from ..providers.errors import ProviderError
    operator()
    runtime = current_runtime()
    provider = runtime.provider(_upstream_name(name))
    if not provider.supports(Capability.PRICING):
        raise ConsoleError(409, "Not possible", f"Upstream {name!r} ({provider.kind}) has no price table.")
    try:
        rows = provider.price_table()
    except ProviderError as exc:
        log.warning("upstream %s: price table failed: %s (%s)", name, exc.code, exc.message)
        raise ConsoleError(502, "The upstream failed", exc.safe_message) from None
    return render_template("console/pricing.html", name=name, provider=provider.kind, rows=rows)


# --- the reseller's invoices (upstreams with Capability.INVOICES; keys over every source) --------------

INVOICES_PER_PAGE = 50


@bp.get("/upstreams/<name>/invoices")
def upstream_invoices(name: str):
    who = operator()
    rows = invoicing.list_invoices(current_runtime(), name, source=who.source, prefix=who.prefix)
    rows = sorted(rows, key=lambda i: (i.date is not None, i.date, i.id), reverse=True)
    number = _page_arg()
    page = admin.Page(rows[(number - 1) * INVOICES_PER_PAGE:number * INVOICES_PER_PAGE], number, INVOICES_PER_PAGE,
                      len(rows))
    pages = -(-page.total // INVOICES_PER_PAGE) if page.total else 1
    return render_template("console/invoices.html", name=name, page=page, pages=pages)


@bp.get("/upstreams/<name>/invoices.csv")
def upstream_invoices_csv(name: str):
    from ..web import schemas as sch
    who = operator()
    rows = invoicing.list_invoices(current_runtime(), name, source=who.source, prefix=who.prefix)
    text = invoicing.as_csv(sch.InvoiceSchema(many=True).dump(rows), sch.INVOICE_CSV_COLUMNS)
    log.info("upstream %s: invoices downloaded as CSV from the console by API key %s", name, who.prefix)
    return Response(text, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{invoicing.download_name(name)}-invoices.csv"'})


@bp.get("/upstreams/<name>/invoices/<invoice_id>.pdf")
def upstream_invoice_pdf(name: str, invoice_id: str):
    who = operator()
    if len(invoice_id) > 128:
        raise ConsoleError(404, "Not found", "No such invoice.")
    pdf = invoicing.invoice_pdf(current_runtime(), name, invoice_id, source=who.source, prefix=who.prefix)
    log.info("upstream %s: invoice %s downloaded from the console by API key %s", name, invoice_id, who.prefix)
    return Response(pdf, mimetype="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="{invoicing.download_name(invoice_id)}.pdf"'})


# --- API keys --------------------------------------------------------------------------------------------

def _key_manager(write: bool) -> logins.Operator:
    """Keys are an every-source matter: a source-scoped key could otherwise make a wider one."""
    who = require_write() if write else operator()
    if who.source is not None:
        raise ConsoleError(403, "Not allowed", f"API key {who.prefix}… is limited to source {who.source}: keys are "
                                               "managed with a key over every source.")
    return who


def _keys_page(status: int = 200, **extra):
    with current_runtime().db.read() as session:
        rows = apikeys.list_api_keys(session, include_revoked=request.args.get("all") == "1")
    return render_template("console/keys.html", keys=rows, sources=current_runtime().sources.names(),
                           scopes=apikeys.SCOPES, notice=_notice(), errors={}, form={}, **extra), status


@bp.get("/keys")
def keys():
    _key_manager(write=False)
    return _keys_page()


@bp.post("/keys")
def create_key():
    who = _key_manager(write=True)
    form = {name: request.form.get(name, "").strip() for name in ("name", "scope", "source")}
    errors = {}
    if not form["name"] or len(form["name"]) > 128:
        errors["name"] = "Name the key after who or what uses it (at most 128 characters)."
    if form["scope"] not in apikeys.SCOPES:
        errors["scope"] = f"One of {', '.join(apikeys.SCOPES)}."
    if form["source"] and form["source"] not in current_runtime().sources.names():
        errors["source"] = "One of the configured billing sources, or none for every source."
    if errors:
        return render_template("console/keys.html", keys=[], sources=current_runtime().sources.names(),
                               scopes=apikeys.SCOPES, notice=None, errors=errors, form=form), 422
    with current_runtime().db.transaction() as session:
        row, secret = apikeys.create_api_key(session, form["name"], form["scope"], form["source"] or None)
        _record(session, who, "create_key", source=row.source,
                reason=f"key {row.prefix}… {row.name!r} ({row.scope}{', source ' + row.source if row.source else ''})")
        prefix = row.prefix
    log.info("API key %s created from the console by API key %s", prefix, who.prefix)
    # Shown in this answer only (no-store): a reload or the back button does not show it again.
    return _keys_page(created=secret, created_prefix=prefix)


@bp.post("/keys/<int:key_id>/revoke")
def revoke_key(key_id: int):
    who = _key_manager(write=True)
    with current_runtime().db.transaction() as session:
        try:
            row = apikeys.revoke_api_key(session, str(key_id))
        except apikeys.ApiKeyError as exc:
            raise ConsoleError(404 if "no API key" in str(exc) else 409, "Not possible", str(exc)) from None
        _record(session, who, "revoke_key", source=row.source, reason=f"key {row.prefix}… {row.name!r}")
    log.info("API key %s revoked from the console by API key %s", row.prefix, who.prefix)
    return redirect(url_for("console.keys", done="revoked"), 303)


# --- reconcile passes ---------------------------------------------------------------------------------

RUNS_PER_PAGE = 20


@bp.get("/reconcile")
def reconcile_runs():
    who = operator()
    query = {"page": _page_arg(), "per_page": RUNS_PER_PAGE}
    with current_runtime().db.read() as session:
        page = admin.list_reconcile_runs(session, query, who.reach)
    pages = -(-page.total // RUNS_PER_PAGE) if page.total else 1
    return render_template("console/reconcile.html", page=page, pages=pages, summary=reconcile.pass_summary,
                           notice=_notice(), now=utcnow(), live_every=LIVE_LISTS)


@bp.get("/reconcile/<run_id>")
def reconcile_run(run_id: str):
    who = operator()
    with current_runtime().db.read() as session:
        record = admin.get_reconcile_run(session, run_id, who.reach)
        keys = {key for ids in (record.report.get("services") or {}).values() for key in ids}
        # a scoped report names its services by billing id; link them by key
        by_name = {} if who.source is None else {
            billing_id: key for key, billing_id in session.execute(
                select(Service.id, Service.billing_id).where(Service.source == who.source,
                                                             Service.billing_id.in_(sorted(keys)[:5000])))}
    return render_template("console/reconcile_run.html", record=record, run=record.run, report=record.report,
                           by_name=by_name, summary=reconcile.pass_summary, now=utcnow(), notice=_notice(),
                           live_every=LIVE_RUNNING_PASS if record.run.state == "running" else None)


@bp.post("/reconcile")
def start_reconcile():
    who = require_write()
    dry_run = request.form.get("mode") != "real"
    if not dry_run and request.form.get("confirm") != "yes":
        raise ConsoleError(422, "Please check your input",
                           "A real pass suspends, lifts and terminates as the lifecycle says: tick the box to "
                           "confirm, or start a dry run.")
    runtime = current_runtime()
    at = utcnow()
    with runtime.db.transaction() as session:
        run = admin.start_reconcile_run(session, at=at, dry_run=dry_run, scope=who.reach)
        run_id = run.id
        _record(session, who, "reconcile", source=who.source, reason="dry run" if dry_run else "real pass")
    admin.run_reconcile_in_background(runtime, run_id, at=at, dry_run=dry_run, source=who.source)
    log.info("reconcile run %s (%s) started from the console by API key %s", run_id,
             "dry run" if dry_run else "real", who.prefix)
    return redirect(url_for("console.reconcile_run", run_id=run_id, done="reconcile"), 303)


# --- terminations waiting for an operator ------------------------------------------------------------

@bp.get("/terminations")
def terminations():
    who = operator()
    runtime = current_runtime()
    awaiting = admin.awaiting_termination(runtime.catalog, utcnow(), _provisioner_sources())
    stmt = select(Service).where(Service.id.in_(awaiting)).order_by(Service.suspended_at, Service.id)
    if who.source is not None:
        stmt = stmt.where(Service.source == who.source)
    with runtime.db.read() as session:
        waiting = list(session.execute(stmt.limit(500)).scalars())
    return render_template("console/terminations.html", waiting=waiting, notice=_notice())
