"""The billing hook body (contract section 2): its schema and event types."""
from __future__ import annotations

import datetime as dt
import functools
import re

from marshmallow import (RAISE, Schema, ValidationError, fields, validate, validates,
                         validates_schema)

CREATE = "service.create"
SUSPEND = "service.suspend"
UNSUSPEND = "service.unsuspend"
TERMINATE = "service.terminate"
CHANGE_PACKAGE = "service.change_package"
RENEW = "service.renew"
CHANGE_PASSWORD = "service.change_password"
# What changed in the billing system without a package change: due date, cycle,
# client, username, auto-suspend override, domain (an extension of the contract).
UPDATE = "service.update"
TYPES = (CREATE, SUSPEND, UNSUSPEND, TERMINATE, CHANGE_PACKAGE, RENEW, CHANGE_PASSWORD, UPDATE)

# Dates a billing system can mean. Outside them a value is a typo or a placeholder
# ("9999-12-31" for "never"), and date arithmetic on it would overflow.
FIRST_YEAR, LAST_YEAR = 1970, 2199
DATE_WINDOW = f"Must be between {FIRST_YEAR}-01-01 and {LAST_YEAR}-12-31."
#: the same, as the OpenAPI document's pattern of such a date (its year, as written)
YEAR_WINDOW = "^(19[7-9][0-9]|2[01][0-9][0-9])-"


def in_window(value: dt.date | dt.datetime) -> bool:
    return FIRST_YEAR <= value.year <= LAST_YEAR

# A DNS name of at least two labels: letters, digits and hyphens (IDNs arrive as punycode).
DOMAIN_RE = re.compile(
    r"^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*\.[a-z][a-z0-9-]{1,62}$")


class IdString(fields.String):
    """Billing ids arrive as strings or integers; we keep them as strings."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, int):
            value = str(value)
        value = super()._deserialize(value, attr, data, **kwargs)
        value = value.strip()
        if not value:
            raise ValidationError("Must not be empty.")
        return value


class JsonBoolean(fields.Boolean):
    """A JSON ``true`` or ``false``, nothing that merely reads like one (``0``, ``"no"``,
    ``"on"``): a body that says ``"dry_run": 0`` means something we must not guess."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise ValidationError("Must be true or false (a JSON boolean).")
        return value


class WindowDate(fields.Date):
    """A YYYY-MM-DD date within the window billing systems mean."""

    def __init__(self, *args, **kwargs):
        kwargs["metadata"] = {"pattern": YEAR_WINDOW, **kwargs.get("metadata", {})}
        super().__init__(*args, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        date = super()._deserialize(value, attr, data, **kwargs)
        if not in_window(date):
            raise ValidationError(DATE_WINDOW)
        return date


class WindowDateTime(fields.AwareDateTime):
    """An ISO 8601 instant with an offset, within the window (so converting it to UTC
    cannot overflow)."""

    def __init__(self, *args, **kwargs):
        kwargs["metadata"] = {"pattern": YEAR_WINDOW, **kwargs.get("metadata", {})}
        super().__init__(*args, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        instant = super()._deserialize(value, attr, data, **kwargs)
        if not in_window(instant):
            raise ValidationError(DATE_WINDOW)
        return instant


class AutoSuspendSchema(Schema):
    """Billing's per-service override of automatic suspension (WHMCS: "Override
    Auto-Suspend" with "Suspend Until")."""

    class Meta:
        unknown = RAISE

    enabled = JsonBoolean(required=True, metadata={"description": (
        "false: the provisioner's scheduler does not suspend this service for non-payment "
        "(until `until`, if given, else indefinitely).")})
    until = WindowDate(load_default=None, allow_none=True, metadata={"description": (
        "With enabled false: automatic suspension resumes after this date (YYYY-MM-DD).")})


class ServiceSchema(Schema):
    class Meta:
        unknown = RAISE

    id = IdString(required=True, validate=validate.Length(max=64))
    product_id = IdString(required=True, validate=validate.Length(max=64))
    domain = fields.String(validate=validate.Length(max=253))
    username = fields.String(allow_none=True, validate=validate.Length(max=255))
    password = fields.String(allow_none=True, validate=validate.Length(max=512))
    config_options = fields.Dict(keys=fields.String(), load_default=dict)
    custom_fields = fields.Dict(keys=fields.String(), load_default=dict)
    billing_cycle = fields.String(allow_none=True, validate=validate.Length(max=32))
    next_due_date = WindowDate(allow_none=True)
    suspend_reason = fields.String(allow_none=True, validate=validate.Length(max=255))
    auto_suspend = fields.Nested(AutoSuspendSchema, allow_none=True)

    @validates("domain")
    def _domain(self, value: str, **_kw) -> None:
        if not DOMAIN_RE.match(value.strip().lower()):
            raise ValidationError("Not a valid domain name.")


class ClientSchema(Schema):
    class Meta:
        unknown = RAISE

    id = IdString(required=True, validate=validate.Length(max=64))
    email = fields.String(load_default="", validate=validate.Length(max=255))
    first_name = fields.String(load_default="", validate=validate.Length(max=255))
    last_name = fields.String(load_default="", validate=validate.Length(max=255))
    company = fields.String(load_default="", allow_none=True, validate=validate.Length(max=255))
    country = fields.String(load_default="", validate=validate.Length(max=2))
    # Optional postal details (an extension of the contract; some upstreams need them).
    address = fields.String(load_default="", validate=validate.Length(max=255))
    city = fields.String(load_default="", validate=validate.Length(max=128))
    state = fields.String(load_default="", validate=validate.Length(max=128))
    postcode = fields.String(load_default="", validate=validate.Length(max=32))
    phone = fields.String(load_default="", validate=validate.Length(max=32))
    language = fields.String(load_default="", validate=validate.Length(max=8))


class EventSchema(Schema):
    class Meta:
        unknown = RAISE

    type = fields.String(required=True, validate=validate.OneOf(TYPES))
    occurred_at = WindowDateTime(required=True, default_timezone=None)
    service = fields.Nested(ServiceSchema, required=True)
    client = fields.Nested(ClientSchema, load_default=None, allow_none=True)

    @validates_schema
    def _per_type(self, data, **_kw) -> None:
        service = data.get("service") or {}
        kind = data.get("type")
        if kind == CREATE:
            errors = {}
            if not service.get("domain"):
                errors["domain"] = ["Required for service.create."]
            if errors:
                raise ValidationError({"service": errors})
            if not data.get("client"):
                raise ValidationError({"client": ["Required for service.create."]})
        if kind == CHANGE_PASSWORD and not service.get("password"):
            raise ValidationError({"service": {"password": ["Required for service.change_password."]}})


@functools.cache
def _event_schema() -> EventSchema:
    # One instance for every request: building a schema (and its nested ones) costs
    # more than loading a body with it; loading keeps no state on the instance.
    return EventSchema()


def load_event(body: dict) -> dict:
    """Validate a decoded hook body; raises marshmallow.ValidationError with field errors."""
    data = _event_schema().load(body)
    service = data["service"]
    if "domain" in service:
        service["domain"] = service["domain"].strip().lower()
    return data


def flatten_errors(messages, prefix: str = "") -> dict[str, str]:
    """{"service": {"domain": ["..."]}} -> {"service.domain": "..."} for the error body."""
    flat: dict[str, str] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            flat.update(flatten_errors(value, path))
    elif isinstance(messages, list):
        if all(isinstance(m, str) for m in messages):
            flat[prefix or "_schema"] = " ".join(messages)
        else:
            for item in messages:
                flat.update(flatten_errors(item, prefix))
    else:
        flat[prefix or "_schema"] = str(messages)
    return flat
