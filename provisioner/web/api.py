"""Admin API (contract section 3): thin views over ``provisioner.admin``.

Every request carries ``Authorization: Bearer <API key>``; keys of scope
``read`` may only GET. Query strings are validated by the schemas of
``provisioner.web.schemas`` (a bad value is a 400 naming the parameter) and
answers are serialised by them, inside the read transaction.

``docs_bp`` serves the OpenAPI document at ``/api/openapi.json`` without auth.
"""
from __future__ import annotations

import logging

from flask import Blueprint, current_app, g, jsonify, request
from marshmallow import Schema, ValidationError

from .. import admin, apikeys
from ..events import flatten_errors
from ..providers.base import Capability
from ..providers.errors import ProviderError
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


@bp.get("/services")
def list_services():
    query = _query(sch.ServiceQuery)
    with _read() as session:
        return jsonify(sch.ServicePageSchema().dump(admin.list_services(session, query)))


@bp.get("/services/<service_id>")
def get_service(service_id: str):
    with _read() as session:
        return jsonify(sch.ServiceDetailSchema().dump(admin.get_service(session, service_id)))


@bp.get("/jobs")
def list_jobs():
    query = _query(sch.JobQuery)
    with _read() as session:
        return jsonify(sch.JobPageSchema().dump(admin.list_jobs(session, query)))


@bp.get("/jobs/<job_id>")
def get_job(job_id: str):
    # Hook answers point here (Location); its first keys are those of the hook's job.
    with _read() as session:
        job = admin.get_job(session, job_id)
        body = sch.JobDetailSchema().dump(job)
    secrets = reveal_secrets(job)
    if secrets:
        body["secrets"] = secrets
    return jsonify(body)


@bp.post("/jobs/<job_id>/retry")
def retry_job(job_id: str):
    runtime = current_runtime()
    with runtime.db.transaction() as session:
        job = admin.retry_job(session, job_id, extra_attempts=runtime.settings.job_max_attempts)
        body = sch.JobDetailSchema().dump(job)
    log.info("job %s queued again by API key %s", job_id, g.api_key.prefix)
    return jsonify(body), 202, {"Location": f"/api/v1/jobs/{job_id}"}


@bp.get("/events")
def list_events():
    query = _query(sch.EventQuery)
    with _read() as session:
        return jsonify(sch.EventPageSchema().dump(admin.list_events(session, query)))


@bp.get("/events/<event_id>")
def get_event(event_id: str):
    with _read() as session:
        return jsonify(sch.EventDetailSchema().dump(admin.get_event(session, event_id)))


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


@bp.get("/products")
def list_products():
    query = _query(sch.PageQuery)
    page = admin.list_products(current_runtime().catalog, query["page"], query["per_page"])
    return jsonify(sch.ProductPageSchema().dump(page))


@docs_bp.get("/api/openapi.json")
def openapi_document():
    return jsonify(openapi.document(current_app))
