"""Marshmallow schemas of the admin API: query strings in, response objects out.

The same classes serialise the answers and describe them in the OpenAPI
document (``provisioner.web.openapi``), so the two cannot drift apart. Output
schemas are allow-lists: a column that is not declared here (the encrypted
pending password, a lease token) never reaches an answer.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, pre_dump, validate

from .. import events as ev
from ..admin import RECENT
from ..models import DesiredStatus, JobState
from ..providers.base import AccountStatus

MAX_PER_PAGE = 500
DEFAULT_PER_PAGE = 50


def _doc(text: str, **extra: Any) -> dict[str, Any]:
    return {"description": text, **extra}


# --- query strings ---------------------------------------------------------------------

#: White space trimmed from the ends of a filter or a reason (and around the values of a
#: comma-separated list); STRIPPED is the same as a regular-expression class.
WHITESPACE = " \t\n\r"
STRIPPED = r" \t\n\r"
#: What ``inputs.check_url_text`` refuses in a path, a query string or a form field.
REFUSED = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd"
#: Any text ``inputs.check_url_text`` lets through.
SAFE_TEXT = f"^[^{REFUSED}]*$"
#: ...holding at least one character that is not stripped: what ``Text`` takes.
NOT_BLANK = f"^[^{REFUSED}]*[^{REFUSED}{STRIPPED}][^{REFUSED}]*$"


def _max_length(field: fields.Field) -> int | None:
    return next((v.max for v in field.validators if isinstance(v, validate.Length) and v.max is not None), None)


class Text(fields.String):
    """A trimmed, non-empty value (a filter, a reason): at most the Length validator's
    ``max`` characters as sent, and something besides white space. The OpenAPI document
    says the same (minLength 1, maxLength, the NOT_BLANK pattern)."""

    def __init__(self, *args, **kwargs):
        metadata = dict(kwargs.pop("metadata", {}))
        metadata.setdefault("pattern", NOT_BLANK)
        super().__init__(*args, metadata=metadata, **kwargs)
        limit = _max_length(self)
        # The document gets minLength from here; the message is ``_deserialize``'s.
        self.validators.insert(0, validate.Length(min=1, max=limit))

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        raw = super()._deserialize(value, attr, data, **kwargs)
        limit = _max_length(self)
        if limit is not None and len(raw) > limit:
            raise ValidationError(f"Must be at most {limit} characters (this is {len(raw)}).")
        text = raw.strip(WHITESPACE)
        if not text:
            raise ValidationError("Must not be empty.")
        return text


class CsvChoice(fields.String):
    """One value or several, comma-separated ("queued,retrying"); each must be a choice.

    White space around a value and empty items (``a,,b``) are ignored; at least one
    value is needed. The OpenAPI document's pattern says exactly that."""

    def __init__(self, choices, **kwargs):
        self.choices = tuple(choices)
        metadata = dict(kwargs.pop("metadata", {}))
        metadata["description"] = (metadata.get("description", "") + " One of "
                                   + ", ".join(self.choices) + "; several may be comma-separated.").strip()
        one = "(" + "|".join(re.escape(c) for c in self.choices) + ")"
        blank = f"[{STRIPPED}]*"
        metadata.setdefault("pattern", f"^({blank},)*{blank}{one}{blank}(,{blank}({one}{blank})?)*$")
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs) -> list[str]:
        text = super()._deserialize(value, attr, data, **kwargs)
        values = list(dict.fromkeys(v.strip(WHITESPACE) for v in text.split(",") if v.strip(WHITESPACE)))
        bad = [v for v in values if v not in self.choices]
        if not values or bad:
            raise ValidationError(f"Must be one of {', '.join(self.choices)} (comma-separated for several).")
        return values


class PageQuery(Schema):
    class Meta:
        # A mistyped filter must not silently widen the answer.
        unknown = RAISE

    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=10**9),
                          metadata=_doc("Page number, from 1."))
    per_page = fields.Integer(load_default=DEFAULT_PER_PAGE, validate=validate.Range(min=1, max=MAX_PER_PAGE),
                              metadata=_doc(f"Items per page, 1 to {MAX_PER_PAGE} (default {DEFAULT_PER_PAGE})."))


SOURCE_FILTER = _doc("Billing source (billing.yaml name; `default` for PROVISIONER_WEBHOOK_SECRETS). "
                     "A source-scoped API key sees its own source only.")


class SourceQuery(Schema):
    """``?source=`` of a request naming one service by its billing id."""

    class Meta:
        unknown = RAISE

    source = Text(validate=validate.Length(max=32), metadata=_doc(
        "The service's billing source, when several sources have a service with this id (an operator key "
        "gets 409 ambiguous_service without it). The path may also hold the service's key "
        "(`source:id`)."))


class ServiceQuery(PageQuery):
    source = Text(validate=validate.Length(max=32), metadata=SOURCE_FILTER)
    domain = Text(validate=validate.Length(max=253), metadata=_doc("Exact domain (case-insensitive)."))
    status = CsvChoice((DesiredStatus.ACTIVE, DesiredStatus.SUSPENDED, DesiredStatus.TERMINATED),
                       metadata=_doc("Desired status (what billing wants)."))
    observed_status = CsvChoice([s.value for s in AccountStatus],
                                metadata=_doc("Status last observed upstream (extension)."))
    client_id = Text(validate=validate.Length(max=64), metadata=_doc("Billing client id."))
    product_id = Text(validate=validate.Length(max=64), metadata=_doc("Billing product id."))
    upstream = Text(validate=validate.Length(max=128), metadata=_doc("Upstream name (extension)."))
    expires_before = fields.Date(metadata=_doc("Only services whose next due date is before this date "
                                               "(YYYY-MM-DD, exclusive)."))
    expires_after = fields.Date(metadata=_doc("Only services whose next due date is after this date "
                                              "(YYYY-MM-DD, exclusive)."))
    awaiting_termination = fields.Boolean(metadata=_doc(
        "true: only services suspended as overdue for their product's terminate_after_days whose "
        "product leaves termination to an operator; false: all others (extension)."))


class JobQuery(PageQuery):
    source = Text(validate=validate.Length(max=32), metadata=SOURCE_FILTER)
    state = CsvChoice(JobState.ALL, metadata=_doc("Job state."))
    service_id = Text(validate=validate.Length(max=64), metadata=_doc("Billing service id."))


class EventQuery(PageQuery):
    source = Text(validate=validate.Length(max=32), metadata=SOURCE_FILTER)
    service_id = Text(validate=validate.Length(max=64), metadata=_doc("Billing service id."))
    type = CsvChoice(ev.TYPES, metadata=_doc("Event type."))
    outcome = CsvChoice(("applied", "skipped"),
                        metadata=_doc("applied, or skipped as older than an event already applied (extension)."))


# --- responses ---------------------------------------------------------------------------

def _always(cls):
    """Every key of these objects is always present (null when unknown): tell the OpenAPI
    document so, since dumping never checks ``required``."""
    for field in cls._declared_fields.values():
        field.required = True
    return cls


def _optional(cls, *names):
    """Keys of an otherwise always-present object that appear only sometimes."""
    for name in names:
        cls._declared_fields[name].required = False
    return cls


ONE_TIME_SECRETS = ("Secrets the upstream generated and shows only once (a relay account's "
                    "password): present in the first answer that reports the finished job, then "
                    "erased; unread ones are erased an hour after the job finished.")


class Out(Schema):
    """A response object, built from a model by ``adapt`` before its fields are read."""

    class Meta:
        # Documented without additionalProperties: false, so adding a key later breaks no client.
        unknown = EXCLUDE

    @pre_dump
    def _adapt(self, obj, **_kw):
        return self.adapt(obj)

    def adapt(self, obj):
        return obj


class _With:
    """``obj`` seen with a few extra (computed) attributes."""

    def __init__(self, obj: Any, **extra: Any):
        self._obj = obj
        self.__dict__.update(extra)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._obj, name)


class ErrorDetailSchema(Out):
    code = fields.String(required=True, metadata=_doc("Stable, machine-readable code."))
    message = fields.String(required=True, metadata=_doc("A clear message; never holds credentials."))
    fields_ = fields.Dict(keys=fields.String(), values=fields.String(), data_key="fields",
                          metadata=_doc("Per-field problems (dotted paths), when there are any."))


class ErrorSchema(Out):
    error = fields.Nested(ErrorDetailSchema, required=True)


@_always
class JobErrorSchema(Out):
    code = fields.String(metadata=_doc("Stable error code."))
    message = fields.String(metadata=_doc("Safe to show an end customer."))


@_always
class JobAttemptSchema(Out):
    number = fields.Integer()
    worker = fields.String()
    started_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
    outcome = fields.String(allow_none=True, metadata=_doc(
        "succeeded, retrying, failed, pending or lost; null while running."))
    error = fields.Nested(JobErrorSchema, allow_none=True)
    detail = fields.String(allow_none=True, metadata=_doc("Operator detail; masked, never holds secrets."))

    def adapt(self, attempt):
        error = ({"code": attempt.error_code, "message": attempt.error_message}
                 if attempt.error_code else None)
        return _With(attempt, error=error)


SERVICE_ID = _doc("The billing system's service id (within `source`).")
SOURCE = _doc("The billing source the service belongs to (`default` for PROVISIONER_WEBHOOK_SECRETS).")


@_always
class JobSchema(Out):
    id = fields.String()
    service_id = fields.String(metadata=SERVICE_ID)
    source = fields.String(metadata=SOURCE)
    event_id = fields.String(allow_none=True, metadata=_doc("The billing event that queued it, if any."))
    kind = fields.String()
    reason = fields.String(metadata=_doc("Event type, retry, reconcile, ..."))
    state = fields.String(validate=validate.OneOf(JobState.ALL))
    attempts = fields.Integer(metadata=_doc("Attempts made so far."))
    max_attempts = fields.Integer()
    error = fields.Nested(JobErrorSchema, allow_none=True, metadata=_doc("The last error, if any."))
    run_after = fields.DateTime(metadata=_doc("Not run before this instant (backoff)."))
    pending_since = fields.DateTime(allow_none=True, metadata=_doc(
        "Set while the upstream activates asynchronously."))
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    updated_at = fields.DateTime()

    def adapt(self, job):
        error = {"code": job.error_code, "message": job.error_message} if job.error_code else None
        # source and billing_service_id are loaded with the job (admin.JOB_NAMES)
        return _With(job, error=error, service_id=job.billing_service_id)


@_always
class JobDetailSchema(JobSchema):
    attempt_log = fields.List(fields.Nested(JobAttemptSchema), metadata=_doc("Every attempt, oldest first."))
    secrets = fields.Dict(keys=fields.String(), values=fields.String(), metadata=_doc(
        ONE_TIME_SECRETS + " Shown only to keys with the admin scope."))
    secrets_withheld = fields.String(metadata=_doc(
        "Present instead of `secrets` for a read key: one-time secrets wait for an admin key "
        "(showing them uses them up)."))


_optional(JobDetailSchema, "secrets", "secrets_withheld")


@_always
class EventSchema(Out):
    id = fields.String()
    webhook_id = fields.String()
    type = fields.String(validate=validate.OneOf(ev.TYPES))
    service_id = fields.String(metadata=SERVICE_ID)
    source = fields.String(metadata=_doc("The billing source whose secret signed it."))
    occurred_at = fields.DateTime()
    received_at = fields.DateTime()
    outcome = fields.String(validate=validate.OneOf(("applied", "skipped")))
    job_id = fields.String(allow_none=True, metadata=_doc("The converge job it queued."))

    def adapt(self, record):
        # admin.EventRecord: the event and the id of its job; the billing id is the body's
        event = record.event
        billing_id = (event.payload or {}).get("service", {}).get("id", event.service_id)
        return _With(event, job_id=record.job_id, service_id=str(billing_id))


@_always
class EventDetailSchema(EventSchema):
    payload = fields.Dict(metadata=_doc("The hook body as stored; any password is replaced by ***."))


@_always
class ProductRefSchema(Out):
    id = fields.String(allow_none=True, metadata=_doc("Product id of product_configs/."))
    billing_product_id = fields.String(allow_none=True)


@_always
class AutoSuspendStateSchema(Out):
    enabled = fields.Boolean(metadata=_doc("false: the scheduler does not suspend for non-payment."))
    until = fields.Date(allow_none=True, metadata=_doc("With enabled false: until this date; null: indefinitely."))


@_always
class DesiredSchema(Out):
    status = fields.String(validate=validate.OneOf(
        (DesiredStatus.ACTIVE, DesiredStatus.SUSPENDED, DesiredStatus.TERMINATED)))
    suspend_reason = fields.String(allow_none=True)
    limits = fields.Dict()
    next_due_date = fields.Date(allow_none=True)
    billing_cycle = fields.String(allow_none=True)
    auto_suspend = fields.Nested(AutoSuspendStateSchema, metadata=_doc(
        "Billing's auto-suspend override, as service.update last set it (extension)."))
    product = fields.Nested(ProductRefSchema)


@_always
class ObservedSchema(Out):
    status = fields.String(allow_none=True, metadata=_doc("null until first converged."))
    observed = fields.Dict(metadata=_doc("What the last converge saw upstream (limits and more)."))
    converged_at = fields.DateTime(allow_none=True)


@_always
class UpstreamRefSchema(Out):
    name = fields.String(allow_none=True, metadata=_doc("Upstream name of upstreams.yaml."))
    upstream_id = fields.String(allow_none=True, metadata=_doc("The account's id upstream."))


@_always
class ServiceSchema(Out):
    id = fields.String(metadata=_doc("The billing service id (within `source`)."))
    source = fields.String(metadata=SOURCE)
    key = fields.String(metadata=_doc("The provisioner's key of the service: the billing id for the default "
                                      "source, `source:id` for others. Jobs and logs name it; paths accept it."))
    domain = fields.String(allow_none=True)
    username = fields.String(allow_none=True)
    client_id = fields.String(allow_none=True)
    client_email = fields.String(allow_none=True, metadata=_doc("The billing client's e-mail as last sent."))
    desired = fields.Nested(DesiredSchema)
    observed = fields.Nested(ObservedSchema)
    usage = fields.Dict()
    upstream = fields.Nested(UpstreamRefSchema)
    password_pending = fields.Boolean(metadata=_doc("A new password waits to be applied upstream."))
    created_at = fields.DateTime()
    updated_at = fields.DateTime()

    def adapt(self, service):
        return _With(
            service, id=service.billing_id, key=service.id, client_email=(service.client or {}).get("email"),
            desired={"status": service.desired_status, "suspend_reason": service.suspend_reason,
                     "limits": service.limits or {}, "next_due_date": service.next_due_date,
                     "billing_cycle": service.billing_cycle,
                     "auto_suspend": {"enabled": service.auto_suspend_enabled is not False,
                                      "until": service.auto_suspend_until},
                     "product": {"id": service.product_key,
                                 "billing_product_id": service.billing_product_id}},
            observed={"status": service.observed_status, "observed": service.observed or {},
                      "converged_at": service.converged_at},
            upstream={"name": service.upstream, "upstream_id": service.upstream_id},
            usage=service.usage or {},
            password_pending=bool(service.pending_password),
        )


@_always
class ServiceDetailSchema(ServiceSchema):
    client = fields.Dict(metadata=_doc("The billing client as last sent."))
    config_options = fields.Dict()
    custom_fields = fields.Dict()
    last_event_at = fields.DateTime(allow_none=True, metadata=_doc("occurred_at of the newest applied event."))
    events = fields.List(fields.Nested(EventSchema), metadata=_doc(f"The last {RECENT} events, newest first."))
    jobs = fields.List(fields.Nested(JobDetailSchema), metadata=_doc(f"The last {RECENT} jobs, newest first."))

    def adapt(self, detail):
        # admin.ServiceDetail: the service with its recent events and jobs
        view = super().adapt(detail.service)
        view.__dict__.update(client=detail.service.client or {}, events=detail.events, jobs=detail.jobs)
        return view


@_always
class UpstreamSchema(Out):
    name = fields.String()
    provider = fields.String(metadata=_doc("The provider kind (never its settings)."))


class LimitSpecSchema(Out):
    option = fields.String(allow_none=True, metadata=_doc("Billing option it is read from; null when fixed."))
    value = fields.Raw(metadata=_doc("The fixed value, when there is no option."))
    default = fields.Raw(metadata=_doc("Used when the option is not sent."))
    min = fields.Integer(allow_none=True)
    max = fields.Integer(allow_none=True)
    choices = fields.List(fields.Raw(), allow_none=True)


@_always
class LifecycleSchema(Out):
    suspend_grace_days = fields.Integer()
    terminate_after_days = fields.Integer()
    downgrade = fields.String(validate=validate.OneOf(("reject", "allow")))
    terminate_requires_operator = fields.Boolean()
    lifecycle_authority = fields.String(allow_none=True, metadata=_doc(
        "billing or provisioner; null: the billing source's lifecycle_authority decides."))


@_always
class ProductSchema(Out):
    id = fields.String()
    billing_product_ids = fields.List(fields.String())
    upstream = fields.String()
    limits = fields.Dict(keys=fields.String(), values=fields.Nested(LimitSpecSchema))
    lifecycle = fields.Nested(LifecycleSchema)
    sources = fields.List(fields.String(), allow_none=True, metadata=_doc(
        "Billing sources that sell it; null: every source."))


class UpstreamTestErrorSchema(Out):
    code = fields.String(required=True)
    message = fields.String(required=True, metadata=_doc("Safe to show anyone."))
    detail = fields.String(metadata=_doc("For operators: provider, action, HTTP status; masked."))


class UpstreamTestSchema(Out):
    ok = fields.Boolean(required=True)
    error = fields.Nested(UpstreamTestErrorSchema, metadata=_doc("Only when ok is false."))


def page_schema(name: str, item: type[Schema]) -> type[Schema]:
    """The list envelope ``{"items", "page", "per_page", "total"}`` of ``item``."""
    return type(name, (Out,), {
        "items": fields.List(fields.Nested(item), required=True),
        "page": fields.Integer(required=True),
        "per_page": fields.Integer(required=True),
        "total": fields.Integer(required=True, metadata=_doc("Items matching the filters, on every page.")),
    })


ServicePageSchema = page_schema("ServicePageSchema", ServiceSchema)
JobPageSchema = page_schema("JobPageSchema", JobSchema)
EventPageSchema = page_schema("EventPageSchema", EventSchema)
UpstreamPageSchema = page_schema("UpstreamPageSchema", UpstreamSchema)
ProductPageSchema = page_schema("ProductPageSchema", ProductSchema)


# --- other endpoints' answers (documented in the OpenAPI document) ----------------------------

@_always
class HookJobSchema(Out):
    id = fields.String()
    state = fields.String(validate=validate.OneOf(JobState.ALL))
    attempts = fields.Integer()
    error = fields.Nested(JobErrorSchema, allow_none=True)
    secrets = fields.Dict(keys=fields.String(), values=fields.String(), metadata=_doc(ONE_TIME_SECRETS))


_optional(HookJobSchema, "secrets")


@_always
class HookResponseSchema(Out):
    event_id = fields.String()
    service_id = fields.String(metadata=SERVICE_ID)
    source = fields.String(metadata=_doc("The billing source whose secret signed the hook (extension)."))
    job = fields.Nested(HookJobSchema)


class HookValidationSchema(Out):
    valid = fields.Boolean(required=True, metadata=_doc("Always true: an invalid event is the error answer "
                                                        "/hooks/v1/events would give."))
    type = fields.String(required=True)
    service_id = fields.String(required=True, metadata=SERVICE_ID)
    source = fields.String(required=True)


class HealthSchema(Out):
    ok = fields.Boolean(required=True)
    error = fields.Nested(JobErrorSchema, metadata=_doc("Only when ok is false."))


# --- upstream price tables (extension) ----------------------------------------------------

@_always
class PriceRowSchema(Out):
    product = fields.String(metadata=_doc("The upstream's product key, e.g. enterpriseemailus."))
    accounts = fields.String(metadata=_doc("Range of e-mail accounts in the order, e.g. 1-5."))
    action = fields.String(metadata=_doc("add (a new order or added accounts) or renew."))
    months = fields.Integer(metadata=_doc("Tenure in months."))
    cost = fields.Float(metadata=_doc("What the reseller pays the upstream."))
    price = fields.Float(allow_none=True, metadata=_doc("What the reseller charges; null if not set."))
    margin = fields.Float(allow_none=True, metadata=_doc("price - cost; null without a price."))


@_always
class PriceTableSchema(Out):
    upstream = fields.String(metadata=_doc("Upstream name of upstreams.yaml."))
    provider = fields.String(metadata=_doc("The provider kind."))
    items = fields.List(fields.Nested(PriceRowSchema), metadata=_doc(
        "One row per product, account range, action and tenure, as the upstream reports them "
        "(in its currency)."))


# --- upstream invoices (extension) -------------------------------------------------------

#: columns of GET /api/v1/upstreams/{name}/invoices.csv, in order
INVOICE_CSV_COLUMNS = ("id", "date", "amount", "currency", "status", "customer", "description")


@_always
class InvoiceSchema(Out):
    id = fields.String(metadata=_doc("The upstream's invoice number; the PDF is "
                                     "/api/v1/upstreams/{name}/invoices/{id}.pdf."))
    date = fields.Date(allow_none=True, metadata=_doc("Invoice date (YYYY-MM-DD); null if unknown."))
    amount = fields.Float(allow_none=True, metadata=_doc("Total in `currency`; null if the upstream "
                                                         "does not report it."))
    currency = fields.String(metadata=_doc("Currency code; empty if the upstream does not report it."))
    status = fields.String(metadata=_doc("As the upstream reports it, e.g. paid or open."))
    customer = fields.String(metadata=_doc("The upstream account the invoice bills (mailbox.org: the "
                                           "customer account, e.g. prov-1042)."))
    description = fields.String()


InvoicePageSchema = page_schema("InvoicePageSchema", InvoiceSchema)


# --- scheduler: reconcile runs, usage, operator suspensions, callbacks (issue 5) ----------------

RUN_STATES = ("running", "finished", "failed")
RUN_TRIGGERS = ("schedule", "api", "cli")
NOTIFICATION_STATES = ("pending", "delivered", "failed")
NOTIFICATION_TYPES = ("job.succeeded", "job.failed", "service.suspended", "service.terminated", "service.drift")


class ReconcileRunQuery(PageQuery):
    state = CsvChoice(RUN_STATES, metadata=_doc("Run state."))
    trigger = CsvChoice(RUN_TRIGGERS, metadata=_doc("What started the run."))


class UsageQuery(PageQuery):
    source = Text(validate=validate.Length(max=32), metadata=SOURCE_FILTER)
    upstream = Text(validate=validate.Length(max=128), metadata=_doc("Upstream name."))
    product_id = Text(validate=validate.Length(max=64), metadata=_doc("Billing product id."))
    client_id = Text(validate=validate.Length(max=64), metadata=_doc("Billing client id."))
    status = CsvChoice((DesiredStatus.ACTIVE, DesiredStatus.SUSPENDED, DesiredStatus.TERMINATED),
                       metadata=_doc("Desired status."))


class NotificationQuery(PageQuery):
    source = Text(validate=validate.Length(max=32), metadata=SOURCE_FILTER)
    state = CsvChoice(NOTIFICATION_STATES, metadata=_doc("Delivery state."))
    type = CsvChoice(NOTIFICATION_TYPES, metadata=_doc("Callback type."))
    service_id = Text(validate=validate.Length(max=64), metadata=_doc("Billing service id."))


class ReconcileRequestSchema(Schema):
    """Body of POST /api/v1/reconcile (optional; ``{}`` or no body runs a real pass now)."""

    class Meta:
        unknown = RAISE

    dry_run = ev.JsonBoolean(load_default=False, metadata=_doc("Report what the pass would do; change nothing."))
    at = fields.AwareDateTime(load_default=None, allow_none=True, default_timezone=dt.timezone.utc,
                              metadata=_doc(f"Judge due dates as if it were this instant (ISO 8601; UTC "
                                            f"when no offset is given), in the years {ev.FIRST_YEAR} to "
                                            f"{ev.LAST_YEAR} (else 400 invalid_at). Default: now.",
                                            pattern=ev.YEAR_WINDOW))


class TerminateRequestSchema(Schema):
    """Body of POST /api/v1/services/{id}/terminate: an operator's confirmed termination."""

    class Meta:
        unknown = RAISE

    confirm = Text(required=True, validate=validate.Length(max=64), metadata=_doc(
        "The service's billing id again: terminating deletes its mail upstream."))
    reason = Text(required=True, validate=validate.Length(max=255), metadata=_doc(
        "Why; sent to the billing system with the service.terminated callback."))


#: a console page's path: under /admin/, no "//", no backslash, nothing check_url_text refuses
CONSOLE_PATH = rf"^/admin/(?!/)(?!.*//)[^\\{REFUSED}]*$"


class ConsoleSsoRequestSchema(Schema):
    """Body of POST /api/v1/console/sso (may be empty)."""

    class Meta:
        unknown = RAISE

    path = Text(validate=[validate.Length(max=255), validate.Regexp(CONSOLE_PATH, error=(
        "a console path starting with /admin/"))], metadata={"pattern": CONSOLE_PATH, **_doc(
        "Where the link lands in the console (a path starting with `/admin/`); default the overview.")})


class SuspendRequestSchema(Schema):
    """Body of POST /api/v1/services/{id}/suspend."""

    class Meta:
        unknown = RAISE

    reason = Text(required=True, validate=validate.Length(max=255), metadata=_doc(
        "Why; kept as the service's suspend reason and sent upstream where the upstream keeps one."))


@_always
class ReconcileRunSchema(Out):
    id = fields.String()
    trigger = fields.String(validate=validate.OneOf(RUN_TRIGGERS))
    state = fields.String(validate=validate.OneOf(RUN_STATES))
    at = fields.DateTime(metadata=_doc("The instant due dates were judged at."))
    dry_run = fields.Boolean()
    source = fields.String(allow_none=True, metadata=_doc(
        "The one billing source whose services the pass judged (started by its scoped key); null: all."))
    started_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata=_doc(
        "Findings by kind (suspend_overdue, suspend_overridden, billing_active_overdue, terminate_overdue, "
        "awaiting_operator_termination, upstream_expiry_before_paid_until, drift_status, drift_limits, "
        "drift_missing, held_after_failed_job, check_failed, orphan); empty while running or when nothing was found."))

    def adapt(self, record):
        # admin.RunRecord: the run with its report as the caller may see it
        return _With(record.run, report=record.report, counts=dict(record.report.get("counts") or {}))


@_always
class ReconcileRunDetailSchema(ReconcileRunSchema):
    report = fields.Dict(metadata=_doc(
        "at, dry_run, source, counts, services (service ids by kind: the billing id for the default source, "
        "`source:id` for others; a source-scoped key sees its own billing ids only), orphans, calls (list "
        "calls per upstream), jobs_queued, usage_updated, errors, service_errors (why a service could not "
        "be judged), duration_s; while running, only progress (step: due dates or upstream, upstream, "
        "upstream_number, upstreams, pages and accounts read of that upstream, updated_at), or {} before "
        "the first."))


@_always
class UsageSchema(Out):
    service_id = fields.String(metadata=SERVICE_ID)
    source = fields.String(metadata=SOURCE)
    usage = fields.Dict(metadata=_doc("mailboxes, enhanced_mailboxes, aliases, distribution_lists, "
                                      "storage_mb as the upstream last reported them; {} before the first."))
    limits = fields.Dict(metadata=_doc("The service's desired limits."))
    collected_at = fields.DateTime(allow_none=True, metadata=_doc(
        "When these figures were read upstream (a reconcile pass or a converge job; a later pass "
        "that reads the same figures leaves it); null if never."))


@_always
class NotificationSchema(Out):
    id = fields.String(metadata=_doc("Also the webhook-id of every delivery attempt."))
    type = fields.String(metadata=_doc(", ".join(NOTIFICATION_TYPES) + "."))
    service_id = fields.String(allow_none=True, metadata=SERVICE_ID)
    source = fields.String(metadata=_doc("The billing source whose callback URL it goes to."))
    state = fields.String(validate=validate.OneOf(NOTIFICATION_STATES))
    attempts = fields.Integer(metadata=_doc("Delivery attempts made so far."))
    last_status = fields.Integer(allow_none=True, metadata=_doc(
        "HTTP status of the last attempt; null if none was made or the URL could not be reached."))
    last_error = fields.String(allow_none=True, metadata=_doc("Why the last attempt failed."))
    next_attempt_at = fields.DateTime(allow_none=True, metadata=_doc("Null once delivered or given up."))
    created_at = fields.DateTime()
    delivered_at = fields.DateTime(allow_none=True)

    def adapt(self, notification):
        pending = notification.state == "pending"
        # The payload names the service as its billing system knows it.
        billing_id = (notification.payload or {}).get("service_id", notification.service_id)
        return _With(notification, next_attempt_at=notification.next_attempt_at if pending else None,
                     service_id=billing_id)


@_always
class NotificationDetailSchema(NotificationSchema):
    payload = fields.Dict(metadata=_doc("The signed body: {type, id, occurred_at, service_id, source, data}."))


ReconcileRunPageSchema = page_schema("ReconcileRunPageSchema", ReconcileRunSchema)
UsagePageSchema = page_schema("UsagePageSchema", UsageSchema)
NotificationPageSchema = page_schema("NotificationPageSchema", NotificationSchema)


@_always
class ConsoleSsoLinkSchema(Out):
    url = fields.String(metadata=_doc("`{PROVISIONER_PUBLIC_URL}/admin/sso/{token}`: open it in the operator's "
                                      "browser; it works once, within 60 seconds."))
    expires_at = fields.DateTime(metadata=_doc("When the link stops working (60 s after it was issued)."))


class SsoLinkSchema(Out):
    url = fields.String(metadata=_doc("`{PROVISIONER_PUBLIC_URL}/client/sso/{token}`: send the customer there; "
                                      "it works once, within 60 seconds."))
    expires_at = fields.DateTime(metadata=_doc("When the link stops working (60 s after it was issued)."))
