"""What the client area does, as plain functions (no Flask).

The pages (``views.py``) and the JSON API (``api.py``) are thin layers over
these. Every function takes the session's own ``Service``; object ids are
always looked up in the provider's listing *for that service's account*, so an
id of another service is a ``NotFound`` whatever the upstream would do with it.

Rules kept here, before any upstream call:
- every limit of the product (``service.limits``) is checked first: the count
  limits (``mailboxes``, the limit counting each mailbox type, ``aliases``,
  ``distribution_lists`` / ``mailing_lists``), the per-mailbox quota
  ``mailbox_quota_gb`` and a total storage limit (``TOTAL_STORAGE_LIMITS``)
  when the product has one; a limit that is absent, null or negative is not
  enforced (a negative one means "unlimited" in some products);
- input is validated (local parts, passwords, addresses) with per-field messages;
- a suspended service is read-only;
- a provider error becomes a ``ClientError`` with the provider's customer-safe
  message, and nothing is written locally; after a successful change the cached
  ``service.usage`` is brought up to date.

Writes of one service are serialised (``service_lock``) so two requests cannot
both take the last free slot of a limit.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from sqlalchemy import text

from ..db import utcnow
from ..models import DesiredStatus, Service, SuspendedBy
from ..providers import errors as perr
from ..providers.base import Alias, Capability, DistributionList, Mailbox, MailboxSpec, Provider
from ..runtime import Runtime

log = logging.getLogger("provisioner.client")

__all__ = [
    "ClientError", "InvalidInput", "LimitExceeded", "NotFound", "NotSupported", "ServiceSuspended",
    "NotReady", "UpstreamFailed", "Page", "overview", "session_info", "capabilities", "mailbox_types",
    "list_mailboxes", "get_mailbox", "create_mailbox", "update_mailbox", "delete_mailbox",
    "list_aliases", "get_alias", "create_alias", "delete_alias",
    "list_lists", "get_list", "create_list", "update_list", "delete_list", "webmail_url",
    "limit_message", "mailbox_dict", "alias_dict", "list_dict",
]

#: capabilities the client area shows (the others are the operators' business)
CLIENT_CAPABILITIES = (Capability.MAILBOXES, Capability.ALIASES, Capability.LISTS, Capability.SSO,
                       Capability.DNS, Capability.RELAY)
#: a product limit on the storage all mailboxes together may be given, in GB
TOTAL_STORAGE_LIMITS = ("total_quota_gb", "storage_gb")
#: the limits counting distribution lists, by provider spelling
LIST_LIMITS = ("distribution_lists", "mailing_lists")
#: the client area's pages a plan may leave out (by limiting what they manage to 0)
PAGES = ("mailboxes", "aliases", "lists")

TYPE_LABELS = {"basic": "Basic", "enhanced": "Enhanced", "light": "Light", "standard": "Standard",
               "premium": "Premium"}
#: (one, many) for the plain-words limit messages
NOUNS = {
    "mailboxes": ("mailbox", "mailboxes"),
    "enhanced_mailboxes": ("Enhanced mailbox", "Enhanced mailboxes"),
    "light_mailboxes": ("Light mailbox", "Light mailboxes"),
    "standard_mailboxes": ("Standard mailbox", "Standard mailboxes"),
    "premium_mailboxes": ("Premium mailbox", "Premium mailboxes"),
    "aliases": ("alias", "aliases"),
    "distribution_lists": ("distribution list", "distribution lists"),
    "mailing_lists": ("mailing list", "mailing lists"),
}
LIMIT_LABELS = {
    "mailboxes": "Mailboxes", "enhanced_mailboxes": "Enhanced mailboxes",
    "light_mailboxes": "Light mailboxes", "standard_mailboxes": "Standard mailboxes",
    "premium_mailboxes": "Premium mailboxes", "aliases": "Aliases",
    "distribution_lists": "Distribution lists", "mailing_lists": "Mailing lists",
    "mailbox_quota_gb": "Storage per mailbox", "total_quota_gb": "Storage", "storage_gb": "Storage",
}

LOCAL_RE = re.compile(r"[a-z0-9](?:[a-z0-9._+-]{0,62}[a-z0-9_+-])?\Z")
EMAIL_RE = re.compile(r"[^@\s<>\"',;]+@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+\Z")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
MIN_PASSWORD, MAX_PASSWORD = 10, 128
MAX_NAME = 100
MAX_QUOTA_GB = 100_000
MAX_MEMBERS = 500
MAX_PER_PAGE = 500


# --- errors ---------------------------------------------------------------------------------------

class ClientError(Exception):
    """A refused client-area request: HTTP status, stable code, a message for the customer."""
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, fields: Mapping[str, str] | None = None,
                 status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.fields = dict(fields) if fields else None
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            error["fields"] = self.fields
        return {"error": error}


class InvalidInput(ClientError):
    status, code = 422, "invalid_input"

    def __init__(self, fields: Mapping[str, str], message: str | None = None):
        names = ", ".join(sorted(fields))
        super().__init__(message or f"Please correct: {names}.", fields=fields)


class LimitExceeded(ClientError):
    """Past one of the product's limits: ``limit`` names it, ``message`` says it in plain words."""
    status, code = 422, "limit_exceeded"

    def __init__(self, limit: str, message: str):
        super().__init__(message)
        self.limit = limit

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "limit": self.limit, "message": self.message}}


class NotFound(ClientError):
    status, code = 404, "not_found"


class NotSupported(ClientError):
    status, code = 409, "not_supported"


class ServiceSuspended(ClientError):
    status, code = 409, "service_suspended"

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason

    def body(self) -> dict[str, Any]:
        body = super().body()
        body["error"]["reason"] = self.reason
        return body


class NotReady(ClientError):
    status, code = 409, "service_not_ready"


class UpstreamFailed(ClientError):
    """The e-mail platform failed or refused; the message is the provider's safe one."""
    status, code = 502, "upstream_error"


# --- small values -------------------------------------------------------------------------------

@dataclass
class Page:
    items: list[Any]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def mailbox_dict(box: Mailbox) -> dict[str, Any]:
    return {"id": box.id, "address": box.address, "name": box.name, "quota_gb": box.quota_gb,
            "type": box.type, "enabled": box.enabled, "used_mb": box.used_mb}


def alias_dict(alias: Alias) -> dict[str, Any]:
    return {"id": alias.id, "address": alias.address, "target": alias.target}


def list_dict(lst: DistributionList) -> dict[str, Any]:
    return {"id": lst.id, "address": lst.address, "members": list(lst.members)}


def _limit(limits: Mapping[str, Any], name: str) -> int | None:
    """A count or size limit to enforce, or None when it is absent, null or "unlimited"."""
    value = limits.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def limit_message(limit: str, value: int, **extra: Any) -> str:
    """The plain-words sentence for a limit that has been reached."""
    if limit == "mailbox_quota_gb":
        return f"A mailbox can have at most {value} GB on your plan."
    if limit in TOTAL_STORAGE_LIMITS:
        free = max(0, value - extra.get("allocated", 0))
        return (f"Your plan has {value} GB of storage for all mailboxes together and "
                f"{free} GB of it {'is' if free == 1 else 'are'} still free.")
    one, many = NOUNS.get(limit, (limit.replace("_", " "), limit.replace("_", " ")))
    if value == 0:
        return f"Your plan does not include {many}."
    if value == 1:
        return f"You have used the 1 {one} of your plan."
    return f"You have used all {value} {many} of your plan."


# --- the service and its provider ----------------------------------------------------------------

def provider_for(runtime: Runtime, service: Service) -> Provider:
    try:
        return runtime.provider(service.upstream)
    except perr.ProviderError as exc:
        raise _upstream_error(exc, "open the e-mail platform") from None


def capabilities(runtime: Runtime, service: Service, provider: Provider | None = None) -> list[str]:
    """What the service's provider offers in the client area, as capability names."""
    try:
        provider = provider or runtime.provider(service.upstream)
    except perr.ProviderError:
        return []
    caps = [c for c in CLIENT_CAPABILITIES if provider.supports(c)]
    kind = (service.limits or {}).get("qboxmail_product")
    if kind is not None and provider.kind == "qboxmail":
        # One Qboxmail upstream serves both its products; the service is one of them.
        from ..providers.qboxmail import KIND_CAPABILITIES
        caps = [c for c in caps if c in KIND_CAPABILITIES.get(str(kind).lower(), frozenset())]
    return [c.value for c in caps]


def mailbox_types(provider: Provider, limits: Mapping[str, Any]) -> dict[str, str]:
    """Mailbox type -> the limit counting it, for this provider and product.

    A product with an ``enhanced_mailboxes`` limit sells Basic and Enhanced
    mailboxes (PolarisMail, the sandbox) even where the adapter only names "basic"."""
    types = dict(provider.mailbox_types)
    if "enhanced" not in types and "basic" in types and "enhanced_mailboxes" in limits:
        types["enhanced"] = "enhanced_mailboxes"
    return types


def offered_types(provider: Provider, limits: Mapping[str, Any]) -> list[str]:
    """The types a customer can choose (those the plan includes at all)."""
    types = mailbox_types(provider, limits)
    offered = [t for t, name in types.items() if _limit(limits, name) != 0]
    return offered or list(types)


def _status(service: Service) -> str:
    if service.desired_status == DesiredStatus.TERMINATED:
        return "terminated"
    if service.desired_status == DesiredStatus.SUSPENDED or service.observed_status == "suspended":
        return "suspended"
    if not service.upstream_id or service.observed_status == "pending":
        return "pending"
    return "active"


def suspension_reason(service: Service) -> str:
    if service.desired_status != DesiredStatus.SUSPENDED:
        return "Your service is being reactivated."
    if service.suspend_reason:
        return service.suspend_reason
    return {SuspendedBy.SCHEDULER: "Overdue on payment",
            SuspendedBy.OPERATOR: "Suspended by support"}.get(service.suspended_by or "", "Suspended")


def _writable(service: Service) -> None:
    status = _status(service)
    if status == "terminated":
        raise ClientError("This service has been terminated.", status=409, code="service_terminated")
    if status == "suspended":
        reason = suspension_reason(service)
        raise ServiceSuspended(f"Your service is suspended ({reason}); nothing can be changed until "
                               "it is active again.", reason)


def _account(service: Service) -> str:
    if not service.upstream_id:
        raise NotReady("Your service is still being set up; please come back in a few minutes.")
    return service.upstream_id


def _require(runtime: Runtime, service: Service, provider: Provider, capability: Capability,
             what: str) -> None:
    if capability.value not in capabilities(runtime, service, provider):
        raise NotSupported(f"Your e-mail platform does not offer {what} here.")


def _upstream_error(exc: perr.ProviderError, doing: str) -> ClientError:
    log.warning("client area: could not %s: %s (%s)", doing, exc.code, exc.message)
    if isinstance(exc, perr.NotFound):
        return NotFound("It no longer exists on the e-mail platform.")
    if isinstance(exc, perr.NotSupported):
        return NotSupported(exc.safe_message)
    if isinstance(exc, perr.LimitExceeded):
        return ClientError(exc.safe_message, status=422, code="upstream_limit")
    if isinstance(exc, perr.ValidationError):
        return ClientError(exc.safe_message, status=422, code="upstream_validation")
    if isinstance(exc, perr.Conflict):
        return ClientError(exc.safe_message, status=409, code="upstream_conflict")
    if exc.retryable:
        return UpstreamFailed(f"{exc.safe_message} Please try again in a few minutes.", status=503,
                              code="upstream_unavailable")
    return UpstreamFailed(exc.safe_message, code=exc.code or "upstream_error")


@contextlib.contextmanager
def _calling(doing: str) -> Iterator[None]:
    try:
        yield
    except perr.ProviderError as exc:
        raise _upstream_error(exc, doing) from None


# Writes of one service, one at a time: in this process by a lock, across processes
# (PostgreSQL) by an advisory lock held on a connection of its own.
_locks: "weakref.WeakValueDictionary[str, threading.Lock]" = weakref.WeakValueDictionary()
_locks_guard = threading.Lock()


@contextlib.contextmanager
def service_lock(runtime: Runtime, service_id: str) -> Iterator[None]:
    with _locks_guard:
        lock = _locks.get(service_id)
        if lock is None:
            lock = threading.Lock()
            _locks[service_id] = lock
    with lock:
        if runtime.db.dialect != "postgresql":
            yield
            return
        key = int.from_bytes(hashlib.sha256(f"client:{service_id}".encode()).digest()[:8], "big", signed=True)
        with runtime.db.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()


def _store_usage(runtime: Runtime, service_id: str, counts: Mapping[str, int]) -> None:
    """Bring the cached usage up to date after a change upstream (best effort: the
    change is made; the next converge or reconcile pass refreshes it anyway)."""
    try:
        with runtime.db.transaction() as session:
            row = session.get(Service, service_id)
            if row is not None:
                row.usage = {**(row.usage or {}), **counts}
                row.usage_at = utcnow()
    except Exception:
        log.warning("client area: could not update the usage of service %s", service_id, exc_info=True)


def _paged(items: list[Any], page: int, per_page: int) -> Page:
    per_page = max(1, min(int(per_page), MAX_PER_PAGE))
    page = max(1, int(page))
    start = (page - 1) * per_page
    return Page(items[start:start + per_page], page, per_page, len(items))


def _matches(query: str, *values: str) -> bool:
    wanted = query.strip().casefold()
    return not wanted or any(wanted in (v or "").casefold() for v in values)


# --- overview ---------------------------------------------------------------------------------

def _limit_rows(service: Service, provider: Provider | None) -> list[dict[str, Any]]:
    """Each limit with its current use, for the overview's bars."""
    limits, usage = service.limits or {}, service.usage or {}
    names: list[str] = []
    if "mailboxes" in limits:
        names.append("mailboxes")
    if provider is not None:
        names += [n for n in mailbox_types(provider, limits).values() if n in limits and n not in names]
    names += [n for n in ("aliases", *LIST_LIMITS) if n in limits]
    rows = []
    for name in names:
        value = limits.get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            continue
        used = int(usage.get(name) or 0)
        if name == "mailing_lists" and "mailing_lists" not in usage:
            used = int(usage.get("distribution_lists") or 0)
        # A limit of 0 is something the plan does not include, not a full allowance
        # (unless some are in use anyway, say after a downgrade).
        rows.append({"name": name, "label": LIMIT_LABELS.get(name, name), "limit": value if value >= 0 else None,
                     "used": used, "unit": "", "included": value != 0,
                     "full": value > 0 and used >= value or value == 0 and used > 0})
    for name in TOTAL_STORAGE_LIMITS:
        value = _limit(limits, name)
        if value is not None:
            used_gb = round(int(usage.get("storage_mb") or 0) / 1024, 1)
            rows.append({"name": name, "label": LIMIT_LABELS[name], "limit": value, "used": used_gb,
                         "unit": "GB", "included": value != 0,
                         "full": value > 0 and used_gb >= value or value == 0 and used_gb > 0})
    quota = _limit(limits, "mailbox_quota_gb")
    if quota is not None:
        rows.append({"name": "mailbox_quota_gb", "label": LIMIT_LABELS["mailbox_quota_gb"],
                     "limit": quota, "used": None, "unit": "GB", "included": quota != 0, "full": False})
    return rows


def _counted_by(capability: str, provider: Provider, limits: Mapping[str, Any]) -> tuple[str, ...]:
    """The limits that count what a client-area page manages."""
    if capability == "mailboxes":
        return ("mailboxes", *mailbox_types(provider, limits).values())
    return {"aliases": ("aliases",), "lists": LIST_LIMITS}.get(capability, ())


def client_pages(runtime: Runtime, service: Service) -> list[str]:
    """``usable_pages`` of the service, its provider looked up (none if it is gone)."""
    try:
        provider = runtime.provider(service.upstream)
    except perr.ProviderError:
        return []
    return usable_pages(service, provider, capabilities(runtime, service, provider))


def usable_pages(service: Service, provider: Provider, caps: list[str]) -> list[str]:
    """The pages (mailboxes, aliases, lists) worth a link: offered by the upstream and
    included in the plan. A plan limits a thing to 0 to leave it out; a page stays
    while some are in use anyway (after a downgrade), so they can be removed."""
    limits, usage = service.limits or {}, service.usage or {}
    pages = []
    for page in PAGES:
        if page not in caps:
            continue
        counted = [name for name in _counted_by(page, provider, limits) if name in limits]
        left_out = bool(counted) and all(_limit(limits, name) == 0 for name in counted)
        in_use = any(int(usage.get(name) or 0) for name in _counted_by(page, provider, limits))
        if not left_out or in_use:
            pages.append(page)
    return pages


def overview(runtime: Runtime, service: Service) -> dict[str, Any]:
    """Product, status, paid-until, limits against current use, capabilities, SSO."""
    try:
        provider: Provider | None = runtime.provider(service.upstream)
    except perr.ProviderError:
        provider = None
    caps = capabilities(runtime, service, provider) if provider else []
    status = _status(service)
    types = offered_types(provider, service.limits or {}) if provider and "mailboxes" in caps else []
    return {
        "service_id": service.billing_id,   # as the customer's billing account shows it
        "domain": service.domain,
        "product": {"id": service.product_key, "billing_product_id": service.billing_product_id},
        "status": status,
        "suspend_reason": suspension_reason(service) if status == "suspended" else None,
        "paid_until": service.next_due_date.isoformat() if service.next_due_date else None,
        "limits": _limit_rows(service, provider),
        "usage_at": service.usage_at.isoformat() if service.usage_at else None,
        "capabilities": caps,
        "pages": usable_pages(service, provider, caps) if provider else [],
        "mailbox_types": [{"type": t, "label": TYPE_LABELS.get(t, t.title())} for t in types],
        "sso": "sso" in caps and status == "active",
        "sign_ons": sign_ons(provider) if provider and "sso" in caps else [],
    }


def session_info(runtime: Runtime, service: Service, csrf_token: str) -> dict[str, Any]:
    """``GET /client/api/v1/session`` (contract section 4, then extras)."""
    view = overview(runtime, service)
    return {
        "service_id": service.billing_id, "domain": service.domain, "status": view["status"],
        "limits": dict(service.limits or {}), "usage": dict(service.usage or {}),
        "capabilities": view["capabilities"], "csrf_token": csrf_token,
        "product": view["product"], "paid_until": view["paid_until"],
        "suspend_reason": view["suspend_reason"], "mailbox_types": [t["type"] for t in view["mailbox_types"]],
        "sso": view["sso"], "sign_ons": view["sign_ons"],
    }


# --- input -------------------------------------------------------------------------------------

def _only(data: Mapping[str, Any], allowed: tuple[str, ...]) -> dict[str, str]:
    return {k: "Unknown field." for k in data if k not in allowed}


def _local_part(value: Any, problems: dict[str, str], field: str = "local_part") -> str:
    if not isinstance(value, str) or not value.strip():
        problems[field] = "Enter the part before the @."
        return ""
    local = value.strip().lower()
    if "@" in local:
        problems[field] = "Enter only the part before the @."
    elif not LOCAL_RE.match(local) or ".." in local:
        problems[field] = ("Use 1 to 64 letters, digits, dots, hyphens, underscores or plus signs, "
                           "starting and ending with a letter or digit.")
    return local


def _password(value: Any, local: str, domain: str, problems: dict[str, str], field: str = "password") -> str:
    if not isinstance(value, str) or not value:
        problems[field] = "Enter a password."
        return ""
    if len(value) < MIN_PASSWORD:
        problems[field] = f"Use at least {MIN_PASSWORD} characters."
    elif len(value) > MAX_PASSWORD:
        problems[field] = f"Use at most {MAX_PASSWORD} characters."
    elif CONTROL_RE.search(value):
        problems[field] = "Use printable characters only."
    elif not (any(c.isalpha() for c in value) and any(c.isdigit() for c in value)):
        problems[field] = "Use letters and at least one digit."
    elif len({c for c in value}) < 5:
        problems[field] = "This password is too easy to guess."
    elif any(len(word) >= 3 and word in value.lower() for word in (local, domain.split(".")[0].lower())):
        problems[field] = "The password must not contain the mailbox name or the domain."
    return value


def _name(value: Any, problems: dict[str, str]) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        problems["name"] = "Must be text."
        return ""
    value = value.strip()
    if len(value) > MAX_NAME:
        problems["name"] = f"Use at most {MAX_NAME} characters."
    elif CONTROL_RE.search(value):
        problems["name"] = "Use printable characters only."
    return value


def _quota(value: Any, problems: dict[str, str]) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if number is None or not 1 <= number <= MAX_QUOTA_GB:
        problems["quota_gb"] = "Enter a whole number of GB, at least 1."
        return None
    return number


def _email(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    address = value.strip().lower()
    return address if len(address) <= 254 and EMAIL_RE.match(address) else None


def _members(value: Any, problems: dict[str, str]) -> list[str]:
    if isinstance(value, str):
        value = [v for v in re.split(r"[\s,;]+", value) if v]
    if not isinstance(value, list):
        problems["members"] = "Give a list of e-mail addresses."
        return []
    members: list[str] = []
    bad = []
    for item in value:
        address = _email(item)
        if address is None:
            bad.append(str(item)[:80])
        elif address not in members:
            members.append(address)
    if bad:
        problems["members"] = "Not an e-mail address: " + ", ".join(bad[:5]) + ("…" if len(bad) > 5 else "")
    elif len(members) > MAX_MEMBERS:
        problems["members"] = f"A list can have at most {MAX_MEMBERS} members."
    return members


def _bool(value: Any, problems: dict[str, str], field: str) -> bool | None:
    if isinstance(value, bool):
        return value
    problems[field] = "Must be true or false."
    return None


# --- mailboxes ---------------------------------------------------------------------------------

def _mailboxes(runtime: Runtime, service: Service, provider: Provider) -> list[Mailbox]:
    _require(runtime, service, provider, Capability.MAILBOXES, "mailboxes")
    account = _account(service)
    with _calling("list mailboxes"):
        boxes = provider.list_mailboxes(account)
    return sorted(boxes, key=lambda m: m.address)


def _find(items: list[Any], object_id: str, what: str) -> Any:
    for item in items:
        if str(item.id) == str(object_id):
            return item
    raise NotFound(f"No such {what} in your service.")


def list_mailboxes(runtime: Runtime, service: Service, *, q: str = "", page: int = 1,
                   per_page: int = 50) -> Page:
    provider = provider_for(runtime, service)
    boxes = [m for m in _mailboxes(runtime, service, provider) if _matches(q, m.address, m.name)]
    return _paged(boxes, page, per_page)


def get_mailbox(runtime: Runtime, service: Service, mailbox_id: str) -> Mailbox:
    provider = provider_for(runtime, service)
    return _find(_mailboxes(runtime, service, provider), mailbox_id, "mailbox")


def _mailbox_usage(boxes: list[Mailbox], types: Mapping[str, str]) -> dict[str, int]:
    counts = {"mailboxes": len(boxes), "storage_mb": sum(m.used_mb or 0 for m in boxes)}
    for kind, name in types.items():
        if name != "mailboxes":
            counts[name] = sum(1 for m in boxes if m.type == kind)
    return counts


def _check_quota(limits: Mapping[str, Any], quota: int | None, others: list[Mailbox]) -> None:
    per_box = _limit(limits, "mailbox_quota_gb")
    if quota is not None and per_box is not None and quota > per_box:
        raise LimitExceeded("mailbox_quota_gb", limit_message("mailbox_quota_gb", per_box))
    for name in TOTAL_STORAGE_LIMITS:
        total = _limit(limits, name)
        if total is None:
            continue
        allocated = sum(m.quota_gb or 0 for m in others)
        wanted = quota if quota is not None else (per_box or 0)
        if allocated + wanted > total:
            raise LimitExceeded(name, limit_message(name, total, allocated=allocated))


def _check_type_count(limits: Mapping[str, Any], types: Mapping[str, str], kind: str,
                      boxes: list[Mailbox]) -> None:
    name = types[kind]
    if name == "mailboxes":
        return
    limit = _limit(limits, name)
    if limit is not None and sum(1 for m in boxes if m.type == kind) >= limit:
        raise LimitExceeded(name, limit_message(name, limit))


def create_mailbox(runtime: Runtime, service: Service, data: Mapping[str, Any]) -> Mailbox:
    """``{"local_part", "password", "name"?, "quota_gb"?, "type"?}``."""
    _writable(service)
    provider = provider_for(runtime, service)
    limits = service.limits or {}
    types = mailbox_types(provider, limits)
    problems = _only(data, ("local_part", "password", "name", "quota_gb", "type"))
    local = _local_part(data.get("local_part"), problems)
    password = _password(data.get("password"), local, service.domain, problems)
    name = _name(data.get("name"), problems)
    quota = _quota(data.get("quota_gb"), problems)
    kind = data.get("type") or ("basic" if "basic" in types else offered_types(provider, limits)[0])
    if kind not in types:
        problems["type"] = "Choose one of: " + ", ".join(TYPE_LABELS.get(t, t) for t in types) + "."
    if problems:
        raise InvalidInput(problems)
    with service_lock(runtime, service.id):
        boxes = _mailboxes(runtime, service, provider)
        if any(m.address.split("@")[0].lower() == local for m in boxes):
            raise InvalidInput({"local_part": f"{local}@{service.domain} already exists."})
        total = _limit(limits, "mailboxes")
        if total is not None and len(boxes) >= total:
            raise LimitExceeded("mailboxes", limit_message("mailboxes", total))
        _check_type_count(limits, types, kind, boxes)
        _check_quota(limits, quota, boxes)
        spec = MailboxSpec(local_part=local, password=password, name=name, quota_gb=quota, type=kind)
        try:
            box = provider.create_mailbox(_account(service), spec)
        except perr.Conflict:
            raise InvalidInput({"local_part": f"{local}@{service.domain} is already in use."}) from None
        except perr.ProviderError as exc:
            raise _upstream_error(exc, "create a mailbox") from None
        _store_usage(runtime, service.id, _mailbox_usage([*boxes, box], types))
    log.info("client area: service %s created mailbox %s", service.id, box.address)
    return box


def update_mailbox(runtime: Runtime, service: Service, mailbox_id: str, data: Mapping[str, Any]) -> Mailbox:
    """Any of ``{"password", "name", "quota_gb", "type", "enabled"}``."""
    _writable(service)
    provider = provider_for(runtime, service)
    limits = service.limits or {}
    types = mailbox_types(provider, limits)
    problems = _only(data, ("password", "name", "quota_gb", "type", "enabled"))
    changes: dict[str, Any] = {}
    with service_lock(runtime, service.id):
        boxes = _mailboxes(runtime, service, provider)
        box = _find(boxes, mailbox_id, "mailbox")
        local = box.address.split("@")[0]
        if "password" in data:
            changes["password"] = _password(data["password"], local, service.domain, problems)
        if "name" in data:
            changes["name"] = _name(data["name"], problems)
        if "quota_gb" in data:
            quota = _quota(data["quota_gb"], problems)
            if quota is None and "quota_gb" not in problems:
                problems["quota_gb"] = "Enter a whole number of GB, at least 1."
            changes["quota_gb"] = quota
        if "type" in data:
            if data["type"] not in types:
                problems["type"] = "Choose one of: " + ", ".join(TYPE_LABELS.get(t, t) for t in types) + "."
            else:
                changes["type"] = data["type"]
        if "enabled" in data:
            changes["enabled"] = _bool(data["enabled"], problems, "enabled")
        if problems:
            raise InvalidInput(problems)
        if not changes:
            raise InvalidInput({"_": "Nothing to change."}, "Nothing to change.")
        others = [m for m in boxes if m.id != box.id]
        if changes.get("type") not in (None, box.type):
            _check_type_count(limits, types, changes["type"], others)
        if changes.get("quota_gb") is not None and changes["quota_gb"] != box.quota_gb:
            _check_quota(limits, changes["quota_gb"], others)
        with _calling("change a mailbox"):
            updated = provider.update_mailbox(_account(service), box.id, changes)
        _store_usage(runtime, service.id, _mailbox_usage([*others, updated], types))
    log.info("client area: service %s changed mailbox %s (%s)", service.id, box.address,
             ", ".join(sorted(changes)))
    return updated


def delete_mailbox(runtime: Runtime, service: Service, mailbox_id: str) -> Mailbox:
    _writable(service)
    provider = provider_for(runtime, service)
    types = mailbox_types(provider, service.limits or {})
    with service_lock(runtime, service.id):
        boxes = _mailboxes(runtime, service, provider)
        box = _find(boxes, mailbox_id, "mailbox")
        with _calling("delete a mailbox"):
            provider.delete_mailbox(_account(service), box.id)
        _store_usage(runtime, service.id, _mailbox_usage([m for m in boxes if m.id != box.id], types))
    log.info("client area: service %s deleted mailbox %s", service.id, box.address)
    return box


def sign_ons(provider: Provider) -> list[dict[str, str]]:
    """What the provider's single sign-on can open, each with the label customers see."""
    return [{"target": target, "label": label} for target, label in provider.sign_ons.items()]


def webmail_url(runtime: Runtime, service: Service, mailbox_id: str | None = None,
                target: str | None = None) -> str:
    """A single sign-on link (providers with SSO) into ``target``, one of the provider's
    ``sign_ons`` (None: the first, webmail)."""
    provider = provider_for(runtime, service)
    _require(runtime, service, provider, Capability.SSO, "webmail sign-in")
    if target is not None and target not in provider.sign_ons:
        choices = ", ".join(provider.sign_ons)
        raise InvalidInput({"target": f"Choose one of: {choices}."})
    _writable(service)
    mailbox = None
    if mailbox_id:
        mailbox = get_mailbox(runtime, service, mailbox_id).address
    label = provider.sign_ons.get(target) if target else next(iter(provider.sign_ons.values()), None)
    with _calling(f"open {(label or 'webmail').lower()}"):
        return provider.sso_url(_account(service), mailbox, target)


# --- aliases --------------------------------------------------------------------------------

def _aliases(runtime: Runtime, service: Service, provider: Provider) -> list[Alias]:
    _require(runtime, service, provider, Capability.ALIASES, "aliases")
    account = _account(service)
    with _calling("list aliases"):
        aliases = provider.list_aliases(account)
    return sorted(aliases, key=lambda a: a.address)


def list_aliases(runtime: Runtime, service: Service, *, q: str = "", page: int = 1, per_page: int = 50) -> Page:
    provider = provider_for(runtime, service)
    items = [a for a in _aliases(runtime, service, provider) if _matches(q, a.address, a.target)]
    return _paged(items, page, per_page)


def get_alias(runtime: Runtime, service: Service, alias_id: str) -> Alias:
    provider = provider_for(runtime, service)
    return _find(_aliases(runtime, service, provider), alias_id, "alias")


def create_alias(runtime: Runtime, service: Service, data: Mapping[str, Any]) -> Alias:
    """``{"local_part", "target"}``."""
    _writable(service)
    provider = provider_for(runtime, service)
    problems = _only(data, ("local_part", "target"))
    local = _local_part(data.get("local_part"), problems)
    target = _email(data.get("target"))
    if target is None:
        problems["target"] = "Enter the e-mail address mail should go to."
    elif local and target == f"{local}@{service.domain}".lower():
        problems["target"] = "An alias cannot forward to itself."
    if problems:
        raise InvalidInput(problems)
    with service_lock(runtime, service.id):
        aliases = _aliases(runtime, service, provider)
        if any(a.address.split("@")[0].lower() == local for a in aliases):
            raise InvalidInput({"local_part": f"{local}@{service.domain} already exists."})
        limit = _limit(service.limits or {}, "aliases")
        if limit is not None and len(aliases) >= limit:
            raise LimitExceeded("aliases", limit_message("aliases", limit))
        try:
            alias = provider.create_alias(_account(service), local, target)
        except perr.Conflict:
            raise InvalidInput({"local_part": f"{local}@{service.domain} is already in use."}) from None
        except perr.ProviderError as exc:
            raise _upstream_error(exc, "create an alias") from None
        _store_usage(runtime, service.id, {"aliases": len(aliases) + 1})
    log.info("client area: service %s created alias %s", service.id, alias.address)
    return alias


def update_alias(runtime: Runtime, service: Service, alias_id: str, data: Mapping[str, Any]) -> Alias:
    """``{"target"}``: where the alias forwards to."""
    _writable(service)
    provider = provider_for(runtime, service)
    problems = _only(data, ("target",))
    target = _email(data.get("target"))
    if target is None:
        problems["target"] = "Enter the e-mail address mail should go to."
    with service_lock(runtime, service.id):
        alias = _find(_aliases(runtime, service, provider), alias_id, "alias")
        if target is not None and target == alias.address.lower():
            problems["target"] = "An alias cannot forward to itself."
        if problems:
            raise InvalidInput(problems)
        with _calling("change an alias"):
            changed = provider.update_alias(_account(service), alias.id, target)
    log.info("client area: service %s pointed alias %s elsewhere", service.id, alias.address)
    return changed


def delete_alias(runtime: Runtime, service: Service, alias_id: str) -> Alias:
    _writable(service)
    provider = provider_for(runtime, service)
    with service_lock(runtime, service.id):
        aliases = _aliases(runtime, service, provider)
        alias = _find(aliases, alias_id, "alias")
        with _calling("delete an alias"):
            provider.delete_alias(_account(service), alias.id)
        _store_usage(runtime, service.id, {"aliases": len(aliases) - 1})
    log.info("client area: service %s deleted alias %s", service.id, alias.address)
    return alias


# --- distribution lists --------------------------------------------------------------------------

def _list_limit_name(limits: Mapping[str, Any]) -> str:
    return next((n for n in LIST_LIMITS if n in limits), "distribution_lists")


def _lists(runtime: Runtime, service: Service, provider: Provider) -> list[DistributionList]:
    _require(runtime, service, provider, Capability.LISTS, "distribution lists")
    account = _account(service)
    with _calling("list distribution lists"):
        lists = provider.list_lists(account)
    return sorted(lists, key=lambda d: d.address)


def list_lists(runtime: Runtime, service: Service, *, q: str = "", page: int = 1, per_page: int = 50) -> Page:
    provider = provider_for(runtime, service)
    items = [d for d in _lists(runtime, service, provider) if _matches(q, d.address, *d.members)]
    return _paged(items, page, per_page)


def get_list(runtime: Runtime, service: Service, list_id: str) -> DistributionList:
    provider = provider_for(runtime, service)
    return _find(_lists(runtime, service, provider), list_id, "distribution list")


def _list_usage(limits: Mapping[str, Any], count: int) -> dict[str, int]:
    name = _list_limit_name(limits)
    return {"distribution_lists": count, **({name: count} if name != "distribution_lists" else {})}


def create_list(runtime: Runtime, service: Service, data: Mapping[str, Any]) -> DistributionList:
    """``{"local_part", "members": [...]}``."""
    _writable(service)
    provider = provider_for(runtime, service)
    limits = service.limits or {}
    problems = _only(data, ("local_part", "members"))
    local = _local_part(data.get("local_part"), problems)
    members = _members(data.get("members", []), problems)
    if problems:
        raise InvalidInput(problems)
    with service_lock(runtime, service.id):
        lists = _lists(runtime, service, provider)
        if any(d.address.split("@")[0].lower() == local for d in lists):
            raise InvalidInput({"local_part": f"{local}@{service.domain} already exists."})
        name = _list_limit_name(limits)
        limit = _limit(limits, name)
        if limit is not None and len(lists) >= limit:
            raise LimitExceeded(name, limit_message(name, limit))
        try:
            lst = provider.create_list(_account(service), local, members)
        except perr.Conflict:
            raise InvalidInput({"local_part": f"{local}@{service.domain} is already in use."}) from None
        except perr.ProviderError as exc:
            raise _upstream_error(exc, "create a distribution list") from None
        _store_usage(runtime, service.id, _list_usage(limits, len(lists) + 1))
    log.info("client area: service %s created list %s", service.id, lst.address)
    return lst


def update_list(runtime: Runtime, service: Service, list_id: str, data: Mapping[str, Any]) -> DistributionList:
    """``{"members": [...]}``: the whole new member list."""
    _writable(service)
    provider = provider_for(runtime, service)
    problems = _only(data, ("members",))
    if "members" not in data:
        problems["members"] = "Give the list's members."
    members = _members(data.get("members", []), problems)
    if problems:
        raise InvalidInput(problems)
    with service_lock(runtime, service.id):
        lst = _find(_lists(runtime, service, provider), list_id, "distribution list")
        with _calling("change a distribution list"):
            updated = provider.update_list(_account(service), lst.id, members)
    log.info("client area: service %s changed list %s", service.id, lst.address)
    return updated


def delete_list(runtime: Runtime, service: Service, list_id: str) -> DistributionList:
    _writable(service)
    provider = provider_for(runtime, service)
    with service_lock(runtime, service.id):
        lists = _lists(runtime, service, provider)
        lst = _find(lists, list_id, "distribution list")
        with _calling("delete a distribution list"):
            provider.delete_list(_account(service), lst.id)
        _store_usage(runtime, service.id, _list_usage(service.limits or {}, len(lists) - 1))
    log.info("client area: service %s deleted list %s", service.id, lst.address)
    return lst
