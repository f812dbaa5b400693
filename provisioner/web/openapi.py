"""The OpenAPI 3.0.3 document of the hook, admin and health endpoints.

Built from the marshmallow schemas that also validate queries and serialise
answers (``provisioner.web.schemas``) and the hook body schema
(``provisioner.events.EventSchema``), once per app on first request.
"""
from __future__ import annotations

from importlib import metadata
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask

from .. import events as ev
from . import schemas as sch

EXTENSION_KEY = "provisioner.openapi"
BEARER = "bearerAuth"
JSON = "application/json"

DESCRIPTION = """\
Billing lifecycle hooks in, converged e-mail upstreams out.

* `POST /hooks/v1/events` takes the billing system's signed lifecycle events
  (Standard Webhooks signatures, no API key). Each billing system is a *source*
  (`product_configs/billing.yaml`; `PROVISIONER_WEBHOOK_SECRETS` alone is the source
  `default`): the source whose secret verified the signature owns the event, and a service
  is identified by (source, billing service id). `POST /hooks/v1/events/validate` answers
  what `/hooks/v1/events` would, storing nothing.
* `/api/v1/...` is the admin API: `Authorization: Bearer <API key>` (create one with
  `provisioner api-key create NAME --scope admin|read [--source S]`); `read` keys may only
  GET. A key made with `--source` sees and acts on that source's services only (anything
  else is a 404); an operator key (no source) sees every source and names a service by its
  billing id plus `?source=` when several sources share the id (else 409
  `ambiguous_service`), or by its key `source:id`. Answers name services by `service_id`
  (the billing id) and `source`.
  Lists take `page` and `per_page` (at most 500) and answer
  `{"items": [...], "page", "per_page", "total"}`; unknown or invalid query parameters
  are a 400 naming them.
* Extensions beyond the contract: `GET /api/v1/upstreams`, `GET /api/v1/products`,
  `GET /api/v1/events/{event_id}`, the `observed_status` and `upstream` filters of
  services, the `outcome` filter of events, comma-separated values for the `status`,
  `observed_status`, `state`, `type` and `outcome` filters; the scheduler's
  `GET /api/v1/reconcile/runs`, usage (`/api/v1/usage`, `/api/v1/services/{service_id}/usage`),
  operator suspensions and terminations and `GET /api/v1/notifications` (callbacks to the
  billing system: `job.succeeded` and `job.failed` for jobs whose hook was answered 202,
  `job.failed` for every job that fails for good, and the scheduler's findings); the
  `service.update` event; billing sources and source-scoped keys.
* Every error answers `{"error": {"code", "message", "fields"?}}`.
"""

# Reusable error responses: name -> description.
ERRORS = {
    "BadRequest": "Invalid path, query parameters or body (a control character, NUL byte, lone surrogate or "
                  "invalid UTF-8 anywhere; an unknown or invalid parameter or field); `fields` names each one.",
    "Unauthorized": "Missing, invalid or revoked API key (admin API), or a bad or stale "
                    "webhook signature (hooks).",
    "Forbidden": "The API key's scope does not allow this method (read keys may only GET).",
    "NotFound": "No such object.",
    "Conflict": "The object's state forbids the request.",
    "TooLarge": "The body is larger than 256 KiB.",
    "Unprocessable": "The request is well-formed but cannot be applied.",
}


def _version() -> str:
    try:
        return metadata.version("provisioner")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _ok(schema: Any, description: str = "OK", headers: dict | None = None) -> dict:
    response: dict[str, Any] = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _path(name: str, description: str) -> dict:
    return {"in": "path", "name": name, "required": True,
            "schema": {"type": "string", "minLength": 1, "pattern": sch.SAFE_TEXT}, "description": description}


def _query(schema: type) -> dict:
    return {"in": "query", "schema": schema}


def _admin(summary: str, responses: dict, *, parameters: list | None = None,
           description: str | None = None, write: bool = False) -> dict:
    """An admin operation: bearer auth and its error answers added."""
    op: dict[str, Any] = {"tags": ["admin"], "summary": summary, "parameters": parameters or [],
                          "responses": {**responses, "401": "Unauthorized"}}
    if description:
        op["description"] = description
    if write:
        op["responses"]["403"] = "Forbidden"
    return op


LOCATION = {"Location": {"description": "The job's URL in the admin API.", "schema": {"type": "string"}}}
AMBIGUOUS = ("several billing sources have a service with this billing id and the operator key did not say "
             "which with `?source=` (`ambiguous_service`)")


def _one_service() -> list[dict]:
    """The parameters of an operation on one service: its id and the optional ``?source=``."""
    return [_path("service_id", "The billing service id, or the service's key (`source:id`)."),
            _query(sch.SourceQuery)]


def _admin_paths() -> dict[str, dict]:
    job_id = _path("job_id", "The job id.")
    event_id = _path("event_id", "The event id.")
    return {
        "/api/v1/services": {"get": _admin(
            "List services", {"200": _ok(sch.ServicePageSchema), "400": "BadRequest"},
            parameters=[_query(sch.ServiceQuery)],
            description="Oldest first (by creation, then id). Filters combine with AND.")},
        "/api/v1/services/{service_id}": {"get": _admin(
            "One service: desired and observed state, usage, upstream, recent events and jobs",
            {"200": _ok(sch.ServiceDetailSchema), "404": "NotFound",
             "409": _error_ref(AMBIGUOUS[0].upper() + AMBIGUOUS[1:] + ".")}, parameters=_one_service())},
        "/api/v1/jobs": {"get": _admin(
            "List converge jobs", {"200": _ok(sch.JobPageSchema), "400": "BadRequest"},
            parameters=[_query(sch.JobQuery)], description="Newest first.")},
        "/api/v1/jobs/{job_id}": {"get": _admin(
            "One job with its attempt log", {"200": _ok(sch.JobDetailSchema), "404": "NotFound"},
            parameters=[job_id],
            description="Hook answers point here with `Location` while their job runs.")},
        "/api/v1/jobs/{job_id}/retry": {"post": _admin(
            "Queue a failed job again",
            {"202": _ok(sch.JobDetailSchema, "Queued again.", LOCATION), "404": "NotFound",
             "409": "Conflict"},
            parameters=[job_id], write=True,
            description="Only a `failed` job can be retried (else 409 `job_not_retryable`); "
                        "it gets a fresh allowance of attempts.")},
        "/api/v1/events": {"get": _admin(
            "List billing events", {"200": _ok(sch.EventPageSchema), "400": "BadRequest"},
            parameters=[_query(sch.EventQuery)], description="Newest first (by receipt).")},
        "/api/v1/events/{event_id}": {"get": _admin(
            "One billing event with its stored payload (extension)",
            {"200": _ok(sch.EventDetailSchema), "404": "NotFound"}, parameters=[event_id])},
        "/api/v1/upstreams": {"get": _admin(
            "Configured upstreams: names and provider kinds (extension)",
            {"200": _ok(sch.UpstreamPageSchema), "400": "BadRequest"},
            parameters=[_query(sch.PageQuery)], description="Never their settings or secrets.")},
        "/api/v1/upstreams/{name}/test": {"get": _admin(
            "Test the connection to an upstream",
            {"200": _ok(sch.UpstreamTestSchema, "The test ran; `ok` tells its result."),
             "404": "NotFound"},
            parameters=[_path("name", "Upstream name of upstreams.yaml.")])},
        "/api/v1/upstreams/{name}/pricing": {"get": _admin(
            "An upstream's price table: cost, price and margin per cell (extension)",
            {"200": _ok(sch.PriceTableSchema), "404": "NotFound",
             "409": _error_ref("The upstream's provider has no price table (`not_supported`)."),
             "502": _error_ref("The upstream could not be asked; `code` names the error.")},
            parameters=[_path("name", "Upstream name of upstreams.yaml.")],
            description="Read live from the upstream (ResellerClub: products/reseller-price.json "
                        "for the cost, products/customer-price.json for the price).")},
        **_invoice_paths(),
        **_scheduler_paths(),
        "/api/v1/services/{service_id}/sso": {"post": _admin(
            "A single sign-on link into the client area for one service",
            {"200": _ok(sch.SsoLinkSchema, "The link; redirect the customer to `url`."),
             "404": "NotFound",
             "409": _error_ref(f"The service is terminated (`service_terminated`), or {AMBIGUOUS}.")},
            parameters=_one_service(), write=True,
            description="The token in the link is single use and expires after 60 s; it opens a "
                        "session cookie scoped to this one service (contract section 4).")},
        "/api/v1/console/sso": {"post": {**_admin(
            "A single sign-on link into the operator console (extension)",
            {"200": _ok(sch.ConsoleSsoLinkSchema, "The link; open `url` in the operator's browser."),
             "400": "BadRequest"}, write=True,
            description="For a billing system's server-level admin sign-on (WHMCS `AdminSingleSignOn`): the "
                        "link is single use, expires after 60 s and opens a console session as this key, with "
                        "its scope and billing source. A `read` key cannot ask (it may only GET); it signs in "
                        "with the console's form."),
            "requestBody": {"required": False, "content": {"application/json": {
                "schema": sch.ConsoleSsoRequestSchema}}}}},
        "/api/v1/products": {"get": _admin(
            "Configured products: billing product ids, upstream, limit specs (extension)",
            {"200": _ok(sch.ProductPageSchema), "400": "BadRequest"},
            parameters=[_query(sch.PageQuery)])},
    }


def _invoice_paths() -> dict[str, dict]:
    """The reseller's invoices at an upstream whose provider has them (extension)."""
    name = _path("name", "Upstream name of upstreams.yaml.")
    errors = {"404": _error_ref("No such upstream (`upstream_not_found`) or invoice (`invoice_not_found`)."),
              "409": _error_ref("The upstream's provider has no invoices (`not_supported`)."),
              "502": _error_ref("The upstream could not be asked; `code` names the error.")}
    read_live = "Read live from the upstream (mailbox.org: account.invoice.list of every customer account)."
    return {
        "/api/v1/upstreams/{name}/invoices": {"get": _admin(
            "An upstream's invoices, newest first (extension)",
            {"200": _ok(sch.InvoicePageSchema), "400": "BadRequest", **errors},
            parameters=[name, _query(sch.PageQuery)], description=read_live)},
        "/api/v1/upstreams/{name}/invoices.csv": {"get": _admin(
            "An upstream's invoices as CSV (extension)",
            {"200": {"description": "A `text/csv` attachment with the header row "
                                    + ", ".join(sch.INVOICE_CSV_COLUMNS) + ", newest first.",
                     "content": {"text/csv": {"schema": {"type": "string"}}}}, **errors},
            parameters=[name], description=read_live)},
        "/api/v1/upstreams/{name}/invoices/{invoice_id}.pdf": {"get": _admin(
            "One invoice as PDF (extension)",
            {"200": {"description": "The invoice, an `application/pdf` attachment.",
                     "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}},
             **errors},
            parameters=[name, _path("invoice_id", "The invoice's `id` from the invoice list.")])},
    }


def _scheduler_paths() -> dict[str, dict]:
    """Reconcile runs, usage, operator suspensions and callbacks to billing (issue 5)."""
    run_location = {"Location": {"description": "The run's URL in the admin API.", "schema": {"type": "string"}}}

    def body(schema, required: bool) -> dict:
        return {"required": required, "content": {JSON: {"schema": schema}}}

    def operator(summary: str, description: str, request: dict | None = None) -> dict:
        op = _admin(summary, {"202": _ok(sch.JobDetailSchema, "Desired state moved; the converge job is queued.",
                                          LOCATION),
                              "400": "BadRequest", "404": "NotFound",
                              "409": _error_ref(f"The service is terminated (`service_terminated`), or "
                                                f"{AMBIGUOUS}.")},
                    parameters=_one_service(), write=True, description=description)
        if request:
            op["requestBody"] = request
        return op

    return {
        "/api/v1/reconcile": {"post": {**_admin(
            "Start a reconcile pass in the background",
            {"202": _ok(sch.ReconcileRunDetailSchema, "Started; poll the run until it is not `running`.",
                        run_location), "400": "BadRequest",
             "422": _error_ref("`at` is in the future without `dry_run` (`future_at_requires_dry_run`).")},
            write=True,
            description="Due dates, upstream terms, drift, orphans and usage, as the scheduled pass. "
                        "`dry_run` reports without acting; `at` judges due dates at another instant, "
                        "between 1970 and 2199 (else 400 `invalid_at`), and an `at` in the future needs "
                        "`dry_run` (else 422 `future_at_requires_dry_run`). A source-scoped key's pass "
                        "judges its source's services only. The body is optional."),
            "requestBody": body(sch.ReconcileRequestSchema, False)}},
        "/api/v1/reconcile/runs": {"get": _admin(
            "List reconcile runs (scheduled, API and CLI)",
            {"200": _ok(sch.ReconcileRunPageSchema), "400": "BadRequest"},
            parameters=[_query(sch.ReconcileRunQuery)], description="Newest first.")},
        "/api/v1/reconcile/runs/{run_id}": {"get": _admin(
            "One reconcile run with its report",
            {"200": _ok(sch.ReconcileRunDetailSchema), "404": "NotFound"},
            parameters=[_path("run_id", "The run id.")])},
        "/api/v1/services/{service_id}/usage": {"get": _admin(
            "A service's usage as last read upstream, with its limits",
            {"200": _ok(sch.UsageSchema), "404": "NotFound",
             "409": _error_ref(AMBIGUOUS[0].upper() + AMBIGUOUS[1:] + ".")}, parameters=_one_service())},
        "/api/v1/usage": {"get": _admin(
            "Every service's usage (a billing system's daily usage update)",
            {"200": _ok(sch.UsagePageSchema), "400": "BadRequest"},
            parameters=[_query(sch.UsageQuery)], description="Oldest service first. Filters combine with AND.")},
        "/api/v1/services/{service_id}/suspend": {"post": operator(
            "Suspend a service as an operator",
            "Only an operator lifts it: a billing `service.unsuspend` answers 409 "
            "`suspended_by_operator`, a renewal leaves it, and the scheduler does not terminate it.",
            body(sch.SuspendRequestSchema, True))},
        "/api/v1/services/{service_id}/unsuspend": {"post": operator(
            "Lift a service's suspension (any: operator, billing or overdue)",
            "An overdue service is suspended again by the next reconcile pass unless billing renews it.")},
        "/api/v1/services/{service_id}/terminate": {"post": _with_response(operator(
            "Terminate a service on an operator's confirmation (deletes its mail upstream)",
            "How a termination the scheduler left for an operator (`awaiting_operator_termination`) is "
            "confirmed. `confirm` must repeat the service id. The billing system gets a "
            "`service.terminated` callback.",
            body(sch.TerminateRequestSchema, True)),
            "422", _error_ref("`confirm` does not repeat the service id (`confirmation_mismatch`)."))},
        "/api/v1/notifications": {"get": _admin(
            "List callbacks to the billing system and their delivery",
            {"200": _ok(sch.NotificationPageSchema), "400": "BadRequest"},
            parameters=[_query(sch.NotificationQuery)], description="Newest first.")},
        "/api/v1/notifications/{notification_id}": {"get": _admin(
            "One callback with its payload",
            {"200": _ok(sch.NotificationDetailSchema), "404": "NotFound"},
            parameters=[_path("notification_id", "The notification id (its webhook-id).")])},
    }


def _hook_paths() -> dict[str, dict]:
    def header(name: str, description: str, required: bool = True) -> dict:
        return {"in": "header", "name": name, "required": required, "schema": {"type": "string"},
                "description": description}

    signed = [
        header("webhook-id", "Unique per event within its billing source; the idempotency key."),
        header("webhook-timestamp", "Unix seconds; at most 300 s from the server's clock."),
        header("webhook-signature", "Space-separated `v1,<base64 HMAC-SHA256>` entries over "
                                    "`{webhook-id}.{webhook-timestamp}.{body}`, keyed with one of a billing "
                                    "source's webhook secrets: that source owns the event."),
    ]
    errors = {
        "400": "BadRequest",
        "401": "Unauthorized",
        "404": _error_ref("A non-create event for a service that was never created."),
        "409": _error_ref("The service is terminated (`service_terminated`); a create for a live service "
                          "with another domain (`service_exists`, naming its domain); an unsuspend of an "
                          "operator's suspension (`suspended_by_operator`); a domain another billing source "
                          "serves on this upstream (`domain_in_use`)."),
        "413": "TooLarge",
        "422": _error_ref("Unknown product, option values out of range, a downgrade below current usage, a "
                          "webhook-id reused for a different body, a domain change the upstream cannot make "
                          "(`domain_change_not_supported`, naming the provider), a service.update changing "
                          "the product (`product_change_requires_change_package`); what the upstream would refuse "
                          "before any call to it: client details a new account needs (`client_details_missing`, "
                          "`fields` naming each, e.g. `client.phone`), a change of a limit fixed at creation "
                          "(`fixed_limit_change`, naming `limits.<name>`), limits the upstream is not set up for "
                          "(`limits_not_supported`), a password it would not set (`password_not_accepted`)."),
    }
    body = {"required": True, "content": {JSON: {"schema": ev.EventSchema}}}
    return {
        "/hooks/v1/events": {"post": {
            "tags": ["hooks"],
            "summary": "Receive a billing lifecycle event",
            "description": "Signed per Standard Webhooks; body at most 256 KiB. The event and its "
                           "job are stored before any 2xx. A redelivery (same webhook-id, same body) "
                           "answers the original job, queuing it again if it had failed. When the answer "
                           "is 202 (the job still runs), the source's callback URL gets a signed "
                           "`job.succeeded` or `job.failed` callback when it ends.",
            "security": [],
            "parameters": [*signed, header("Prefer", "`wait=N` (N at most 30): hold the answer until the "
                                                     "job ends or N seconds pass.", required=False)],
            "requestBody": body,
            "responses": {
                "200": _ok(sch.HookResponseSchema, "The job finished (within `Prefer: wait`)."),
                "202": _ok(sch.HookResponseSchema, "Accepted; the job has not finished yet.", LOCATION),
                **errors,
            },
        }},
        "/hooks/v1/events/validate": {"post": {
            "tags": ["hooks"],
            "summary": "Judge an event without acting on it",
            "description": "Signed like an event. Answers exactly what `/hooks/v1/events` would for this "
                           "body (its 4xx error, or 200 `{\"valid\": true}`), but stores nothing, queues "
                           "nothing and does not use up the webhook-id: a billing system can refuse, at "
                           "checkout, a downgrade below usage.",
            "security": [],
            "parameters": signed,
            "requestBody": body,
            "responses": {"200": _ok(sch.HookValidationSchema, "The event would be accepted."), **errors},
        }},
    }


def _with_response(op: dict, status: str, response: Any) -> dict:
    op["responses"][status] = response
    return op


def _error_ref(description: str) -> dict:
    return {"description": description, "content": {JSON: {"schema": sch.ErrorSchema}}}


def _other_paths() -> dict[str, dict]:
    plain = {"tags": ["operations"], "security": []}
    return {
        "/healthz": {"get": {**plain, "summary": "Liveness",
                             "responses": {"200": _ok(sch.HealthSchema)}}},
        "/readyz": {"get": {**plain, "summary": "Readiness (checks the database)",
                            "responses": {"200": _ok(sch.HealthSchema),
                                          "503": _ok(sch.HealthSchema, "The database cannot be reached.")}}},
        "/metrics": {"get": {**plain, "summary": "Prometheus metrics",
                             "responses": {"200": {"description": "Prometheus text format.",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/api/openapi.json": {"get": {**plain, "summary": "This document",
                                      "responses": {"200": {"description": "OpenAPI 3.0.3.",
                                                            "content": {JSON: {"schema": {"type": "object"}}}}}}},
    }


COMPONENT_SCHEMAS = {
    # Nested schemas before the schemas that nest them, so each is registered under
    # the name given here rather than one apispec derives.
    "ErrorDetail": sch.ErrorDetailSchema,
    "Error": sch.ErrorSchema,
    "JobError": sch.JobErrorSchema,
    "JobAttempt": sch.JobAttemptSchema,
    "Job": sch.JobSchema,
    "JobDetail": sch.JobDetailSchema,
    "JobPage": sch.JobPageSchema,
    "Event": sch.EventSchema,
    "EventDetail": sch.EventDetailSchema,
    "EventPage": sch.EventPageSchema,
    "ProductRef": sch.ProductRefSchema,
    "AutoSuspendState": sch.AutoSuspendStateSchema,
    "DesiredState": sch.DesiredSchema,
    "ObservedState": sch.ObservedSchema,
    "UpstreamRef": sch.UpstreamRefSchema,
    "Service": sch.ServiceSchema,
    "ServiceDetail": sch.ServiceDetailSchema,
    "ServicePage": sch.ServicePageSchema,
    "Upstream": sch.UpstreamSchema,
    "UpstreamPage": sch.UpstreamPageSchema,
    "UpstreamTestError": sch.UpstreamTestErrorSchema,
    "UpstreamTest": sch.UpstreamTestSchema,
    "PriceRow": sch.PriceRowSchema,
    "PriceTable": sch.PriceTableSchema,
    "Invoice": sch.InvoiceSchema,
    "InvoicePage": sch.InvoicePageSchema,
    "LimitSpec": sch.LimitSpecSchema,
    "Lifecycle": sch.LifecycleSchema,
    "Product": sch.ProductSchema,
    "ProductPage": sch.ProductPageSchema,
    "ReconcileRequest": sch.ReconcileRequestSchema,
    "ReconcileRun": sch.ReconcileRunSchema,
    "ReconcileRunDetail": sch.ReconcileRunDetailSchema,
    "ReconcileRunPage": sch.ReconcileRunPageSchema,
    "Usage": sch.UsageSchema,
    "UsagePage": sch.UsagePageSchema,
    "SuspendRequest": sch.SuspendRequestSchema,
    "Notification": sch.NotificationSchema,
    "NotificationDetail": sch.NotificationDetailSchema,
    "NotificationPage": sch.NotificationPageSchema,
    "Health": sch.HealthSchema,
    "SsoLink": sch.SsoLinkSchema,
    "ConsoleSsoLink": sch.ConsoleSsoLinkSchema,
    "ConsoleSsoRequest": sch.ConsoleSsoRequestSchema,
    # The hook body under names of its own: its Service and Client are not the admin API's.
    "HookAutoSuspend": ev.AutoSuspendSchema,
    "HookService": ev.ServiceSchema,
    "HookClient": ev.ClientSchema,
    "HookEvent": ev.EventSchema,
    "HookJob": sch.HookJobSchema,
    "HookResponse": sch.HookResponseSchema,
    "HookValidation": sch.HookValidationSchema,
    "TerminateRequest": sch.TerminateRequestSchema,
}


def build_spec() -> dict[str, Any]:
    spec = APISpec(
        title="provisioner",
        version=_version(),
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": DESCRIPTION},
        security=[{BEARER: []}],
        tags=[{"name": "hooks", "description": "Billing system to provisioner."},
              {"name": "admin", "description": "Operators and the billing module."},
              {"name": "operations", "description": "Health, metrics, this document."}],
    )
    spec.components.security_scheme(BEARER, {
        "type": "http", "scheme": "bearer",
        "description": "An API key: `provisioner api-key create NAME --scope admin|read`.",
    })
    for name, schema in COMPONENT_SCHEMAS.items():
        spec.components.schema(name, schema=schema)
    for name, description in ERRORS.items():
        spec.components.response(name, _error_ref(description))
    for path, operations in {**_hook_paths(), **_admin_paths(), **_other_paths()}.items():
        spec.path(path=path, operations=operations)
    return _refusing_bad_text(spec.to_dict())


def _refusing_bad_text(doc: dict[str, Any]) -> dict[str, Any]:
    """What the web app does before any view (``errors.check_request``), said of every
    operation: text in a path or query string holding a control character, a NUL byte or
    invalid UTF-8 is a 400 (``invalid_characters``), so every string parameter has a
    pattern without them and every operation documents the 400."""
    for operations in doc["paths"].values():
        for operation in operations.values():
            operation["responses"].setdefault("400", {"$ref": "#/components/responses/BadRequest"})
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                if parameter["in"] in ("path", "query") and schema.get("type") == "string":
                    schema.setdefault("pattern", sch.SAFE_TEXT)
    return doc


def document(app: Flask) -> dict[str, Any]:
    """The app's OpenAPI document, built on first use and kept in ``app.extensions``."""
    doc = app.extensions.get(EXTENSION_KEY)
    if doc is None:
        doc = app.extensions[EXTENSION_KEY] = build_spec()
    return doc
