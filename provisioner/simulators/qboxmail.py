"""Simulator of the Qboxmail Management API (docs/providers/qboxmail.md).

JSON over HTTP under ``/api``, authenticated by the header ``X-Api-Token``.
Answers are ``{"resources": [...], "pagination": {...}}`` (a single resource is a
one-item list); errors are ``{"message": "...", "errors": [{"field", "description"}]}``
with 401/403/404/422/500. Two families of objects:

- **Hosting domains** (``/api/domains``, codes ``D`` + 9 digits) with their email
  accounts (``/api/domains/{code}/email_accounts``, codes ``EA`` + 8 digits). A new
  domain waits for DNS ownership verification (status ``ownership_check``; the record
  to publish is ``<possession_a_record>.<domain>`` A ``185.97.217.16``): it counts as
  published ``verification_delay`` seconds after the create (0: the domain is active
  at once, like the real sandbox's "skip ownership"; None: never by itself) and the
  domain is activated by the next ownership check
  (``PUT /api/domains/{code}/dns_ownership_check[/sync]``), or by ``/_sim/mutate``.
  Domains sign with Qboxmail's shared DKIM key until ``POST /api/domains/{code}/dkim``
  makes a custom one; ``PUT /api/domains/{code}/dns`` queues an MX check. Qboxmail's
  own states ``suspended``, ``rejected`` and ``deleted`` (a queued deletion) are set
  with ``/_sim/mutate {"qboxmail_status": ...}``.
- **Delivery (SMTP relay) accounts** (``/api/delivery/accounts``, integer ids) with
  generated usernames; the password is shown once, in the create (and password
  regeneration) answer, and kept here only as a hash. Paid plans wait for payment
  (``wait_pay``) for ``activation_delay`` seconds; the free plan is active at once and
  allowed once per customer. Prepaid messages are valid 12 months; each purchase
  (``volume``) extends the expiry by 12 months. Delivery domains
  (``/api/delivery/domains``, codes ``DD`` + 8 digits) can be associated with an
  account up to its maximum.

State lives in a :class:`QboxmailSimulator` attached to the app that
:func:`create_app` builds. Where the public documentation is silent (status codes of
relay accounts, the parameters for plan, message quota and maximum domains, the
password regeneration path) this simulator's choices are listed in the provider docs.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import re
import secrets
import string
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from flask import Flask, Response, jsonify, request

from .control import ControlError, SimulatorBase, UnknownAccount, install

GIB = 1024 ** 3
#: the quotas (bytes) the API accepts for max_email_quota, default_quota and quota
ALLOWED_QUOTAS = (52428800, *(n * GIB for n in (1, 2, 3, 4, 5, 6, 7, 8, 16)), 26843545600,
                  53687091200, 107374182400)
DOMAIN_PLANS = ("basic", "professional", "enterprise")
RELAY_TYPES = ("transactional", "newsletter")
RELAY_PLANS = ("free", "monthly", "prepaid")
PAYMENT_METHODS = ("stripe", "lcwsoftpaypalbillingagreements", "paypal")
FREE_MESSAGES = 3000              # the free plan's fixed message quota (this simulator's number)
DEFAULT_PAID_MESSAGES = 10000
PREPAID_MONTHS = 12
#: relay account states -> the integer ``status`` of the API (this simulator's guess)
RELAY_STATUS_CODES = {"wait_pay": 0, "enabled": 1, "disabled": 2, "error": 3, "blocked": 4}
#: a domain's ``status`` strings (TanvirSEF/hosting lib/qboxmail.ts reads the first and
#: the last four from real answers; ``error`` is the panel's errorStatus)
DOMAIN_STATES = ("ownership_check", "enabled", "disabled", "error", "suspended", "rejected", "deleted")
OWNER = "C000000001"              # the customer the API token belongs to
CONFIG_HOSTNAME = "smtp-relay.qboxmail.com"
OWNERSHIP_IP = "185.97.217.16"    # what integrators publish for the ownership A record

_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_LOCAL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9._+-]{0,62}[a-z0-9_+-])?$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DESCRIPTION_DOMAIN = re.compile(r"^([a-z0-9.-]+\.[a-z]{2,63})\b", re.IGNORECASE)


class ApiError(Exception):
    """An error answer in the API's shape."""

    MESSAGES = {401: "Unauthorized", 403: "Forbidden", 404: "Not found", 422: "Validation failed"}

    def __init__(self, status: int, errors: Iterable[tuple[str, str]] = (), message: str | None = None):
        self.status = status
        self.errors = [{"field": f, "description": d} for f, d in errors]
        self.message = message or self.MESSAGES.get(status, "Error")
        super().__init__(self.message)


def invalid(field_name: str, description: str) -> ApiError:
    return ApiError(422, [(field_name, description)])


def _hash(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 1000)
    return f"pbkdf2_sha256$1000${salt.hex()}${digest.hex()}"


def check_password(stored: str, password: str) -> bool:
    _, rounds, salt, digest = stored.split("$")
    candidate = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(rounds))
    return hmac.compare_digest(candidate.hex(), digest)


def strong_enough(password: Any) -> bool:
    """The API's rule: at least 8 characters, at least one letter and one number."""
    return (isinstance(password, str) and len(password) >= 8 and any(c.isalpha() for c in password)
            and any(c.isdigit() for c in password))


def add_months(day: dt.date, months: int) -> dt.date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    last = [31, 29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28, 31, 30, 31, 30,
            31, 31, 30, 31, 30, 31][month - 1]
    return dt.date(year, month, min(day.day, last))


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return dt.datetime.fromtimestamp(moment, dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _day(value: dt.date | None) -> str | None:
    return value.isoformat() if value else None


# --- the data ---------------------------------------------------------------------

@dataclass
class EmailAccount:
    code: str
    name: str
    password_hash: str = field(repr=False)
    firstname: str
    lastname: str = ""
    quota: int = 8 * GIB
    status: str = "enabled"
    used_bytes: int = 0
    created_at: float = 0.0

    def resource(self, domain: Domain) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "email_address": f"{self.name}@{domain.name}",
                "firstname": self.firstname, "lastname": self.lastname, "quota": self.quota,
                "used_quota": self.used_bytes, "status": self.status, "status_detail": "ok",
                "domain_code": domain.code, "created_at": _iso(self.created_at)}


@dataclass
class Domain:
    code: str
    name: str
    customer_code: str
    plan: str = "basic"
    postmaster_hash: str = field(default="", repr=False)
    max_email_accounts: int = -1
    max_email_quota: int = 8 * GIB
    default_quota: int = 8 * GIB
    state: str = "ownership_check"         # one of DOMAIN_STATES
    verified: bool = False
    published_at: float | None = None      # when the ownership record counts as published
    created_at: float = 0.0
    activated_at: float | None = None
    dkim_selector: str | None = None       # a custom DKIM signature, once made
    dkim_public_key: str | None = None
    foreign: bool = False                  # hosted by another Qboxmail customer: invisible
    email_accounts: dict[str, EmailAccount] = field(default_factory=dict)

    def ownership_record(self) -> dict[str, str]:
        return {"name": f"{self.code.lower()}.{self.name}", "type": "A", "value": OWNERSHIP_IP}

    def resource(self) -> dict[str, Any]:
        return {
            "code": self.code, "name": self.name, "status": self.state,
            "status_detail": {"ownership_check": "ownership_verification", "error": "error"}.get(self.state, "ok"),
            "plan": self.plan, "customer_code": self.customer_code, "customer_fullname": "Simulated Customer",
            "created_at": _iso(self.created_at), "activated_at": _iso(self.activated_at),
            "is_healthy": self.state == "enabled",
            "max_email_accounts": self.max_email_accounts, "max_email_quota": self.max_email_quota,
            "default_quota": self.default_quota, "no_email_accounts": len(self.email_accounts),
            "dkim_selector": self.dkim_selector, "dkim_public_key": self.dkim_public_key,
            "has_dkim": 1 if self.dkim_public_key else 0,
            "ownership_verification_email_address": f"postmaster@{self.name}",
            "possession_a_record": self.code.lower(),
        }

    def dkim_txt(self) -> str:
        return f"v=DKIM1; k=rsa; p={self.dkim_public_key}"


@dataclass
class DeliveryDomain:
    code: str
    name: str
    customer_code: str
    created_at: float = 0.0

    def resource(self, accounts: int = 0) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "status": 1, "display_status": "enabled",
                "dns_verification_status": "not_verified", "status_detail": "ok",
                "customer_code": self.customer_code, "created_at": _iso(self.created_at),
                "accounts_count": accounts,
                "txt_spf_record": "v=spf1 include:spf.qboxmail.com -all"}


@dataclass
class RelayAccount:
    id: int
    username: str
    password_hash: str = field(repr=False)
    description: str
    type: str
    plan: str
    customer_code: str
    state: str                              # wait_pay | enabled | disabled | error | blocked
    created_at: float
    start_date: dt.date
    activate_at: float | None = None        # clock() at which payment counts as received
    plan_num_messages: int = FREE_MESSAGES
    max_domains: int = 1
    bounce_notification: str = ""
    bounce_notification_to_sender: bool = True
    allow_nets: list[str] = field(default_factory=list)
    domain_codes: list[str] = field(default_factory=list)
    messages_sent: int = 0
    extra_messages_total: int = 0
    plan_expiration_date: dt.date | None = None
    next_renewal_date: dt.date | None = None
    last_renewal_date: dt.date | None = None
    updated_at: float = 0.0


# --- the simulator -------------------------------------------------------------------

class QboxmailSimulator(SimulatorBase):
    name: ClassVar[str] = "qboxmail"
    mutable_fields: ClassVar[frozenset[str]] = frozenset(
        {"status", "limits", "qboxmail_status", "messages_sent"})

    def __init__(self, *, api_token: str, activation_delay: float = 0.0,
                 verification_delay: float | None = None, seed: int | None = None,
                 clock: Callable[[], float] = time.time, taken_domains: Iterable[str] = ()):
        super().__init__(seed=seed)
        self.api_token = api_token
        self.activation_delay = activation_delay
        self.verification_delay = verification_delay
        self.clock = clock
        self.taken_domains = tuple(d.strip().lower() for d in taken_domains)
        self.reset_state()

    # --- control hooks ------------------------------------------------------------
    def action_name(self, req) -> str:
        return req.endpoint if req.endpoint and req.url_rule is not None else "unknown"

    def error_response(self, status: int, message: str, code: str) -> Response:
        text = ApiError.MESSAGES.get(status) or {500: "Internal server error",
                                                 429: "Too many requests"}.get(status, message)
        return _error(ApiError(status, message=text))

    def state(self) -> dict[str, Any]:
        accounts = [self.domain_entry(d) for d in self.own_domains()]
        accounts += [self.relay_entry(r) for r in self.relays.values()]
        return {"accounts": accounts}

    def reset_state(self) -> None:
        with self.lock:
            self.domains: dict[str, Domain] = {}            # by code
            self.relays: dict[int, RelayAccount] = {}
            self.delivery_domains: dict[str, DeliveryDomain] = {}
            self._serial = 0
            for name in self.taken_domains:
                self.add_domain(name, customer_code="C000000999", foreign=True)

    def mutate(self, account_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        if account_id in self.domains and not self.domains[account_id].foreign:
            return self._mutate_domain(self.domains[account_id], changes)
        relay = self.relays.get(int(account_id)) if account_id.isdigit() else None
        if relay is None:
            raise UnknownAccount(account_id)
        return self._mutate_relay(relay, changes)

    def _mutate_domain(self, d: Domain, changes: dict[str, Any]) -> dict[str, Any]:
        if "messages_sent" in changes:
            raise ControlError("messages_sent: only relay accounts send messages", "messages_sent")
        for key, value in (changes.get("limits") or {}).items():
            if key == "mailboxes":
                d.max_email_accounts = _control_int(value, key)
            elif key == "mailbox_quota_gb":
                d.max_email_quota = _control_int(value, key) * GIB
            elif key == "plan" and value in DOMAIN_PLANS:
                d.plan = value
            else:
                raise ControlError(f"limits: {key} cannot be set on a domain", "limits")
        status = changes.get("status")
        if status == "deleted":
            entry = self.domain_entry(d)
            del self.domains[d.code]
            return {**entry, "status": "deleted"}
        if status == "active":
            self.activate_domain(d)
        elif status == "suspended":
            d.state = "disabled"
        elif status == "pending":
            d.state, d.verified, d.published_at = "ownership_check", False, None
        raw = changes.get("qboxmail_status")
        if raw is not None:
            if raw not in DOMAIN_STATES:
                raise ControlError(f"qboxmail_status: a domain's is one of {', '.join(DOMAIN_STATES)}",
                                   "qboxmail_status")
            d.state = raw
        return self.domain_entry(d)

    def _mutate_relay(self, r: RelayAccount, changes: dict[str, Any]) -> dict[str, Any]:
        for key, value in (changes.get("limits") or {}).items():
            if key == "relay_messages":
                r.plan_num_messages = _control_int(value, key)
            elif key == "relay_max_domains":
                r.max_domains = _control_int(value, key)
            elif key == "relay_plan" and value in RELAY_PLANS:
                r.plan = value
            elif key == "relay_type" and value in ("transactional", "promotional", "newsletter"):
                r.type = "transactional" if value == "transactional" else "newsletter"
            else:
                raise ControlError(f"limits: {key} cannot be set on a relay account", "limits")
        if "messages_sent" in changes:
            r.messages_sent = _control_int(changes["messages_sent"], "messages_sent")
        status = changes.get("status")
        if status == "deleted":
            entry = self.relay_entry(r)
            del self.relays[r.id]
            return {**entry, "status": "deleted"}
        if status is not None:
            r.state = {"active": "enabled", "suspended": "disabled", "pending": "wait_pay"}[status]
            r.activate_at = None
        raw = changes.get("qboxmail_status")
        if raw is not None:
            if raw not in RELAY_STATUS_CODES:
                raise ControlError(f"qboxmail_status: a relay account's is one of "
                                   f"{', '.join(RELAY_STATUS_CODES)}", "qboxmail_status")
            r.state, r.activate_at = raw, None
        return self.relay_entry(r)

    # --- normalised state --------------------------------------------------------
    def domain_entry(self, d: Domain) -> dict[str, Any]:
        self.refresh_domain(d)
        status = {"enabled": "active", "disabled": "suspended", "suspended": "suspended",
                  "rejected": "suspended", "deleted": "deleted"}.get(d.state, "pending")
        return {
            "id": d.code, "domain": d.name, "status": status,
            "limits": {"qboxmail_product": "hosting", "plan": d.plan, "mailboxes": d.max_email_accounts,
                       "mailbox_quota_gb": d.max_email_quota // GIB},
            "mailboxes": [{"id": a.code, "address": f"{a.name}@{d.name}",
                           "name": f"{a.firstname} {a.lastname}".strip(), "quota_gb": a.quota // GIB,
                           "type": "basic", "enabled": a.status == "enabled", "used_mb": a.used_bytes // 2 ** 20}
                          for a in d.email_accounts.values()],
            "aliases": [], "lists": [],
            "native": {**d.resource(), "published": d.published_at is not None},
        }

    def relay_entry(self, r: RelayAccount) -> dict[str, Any]:
        self.refresh_relay(r)
        status = {"enabled": "active", "disabled": "suspended", "blocked": "suspended"}.get(r.state, "pending")
        match = _DESCRIPTION_DOMAIN.match(r.description)
        return {
            "id": str(r.id), "domain": match.group(1).lower() if match else "", "status": status,
            "limits": {"qboxmail_product": "relay",
                       "relay_type": "transactional" if r.type == "transactional" else "promotional",
                       "relay_plan": r.plan, "relay_messages": r.plan_num_messages,
                       "relay_max_domains": r.max_domains},
            "mailboxes": [], "aliases": [], "lists": [],
            "native": self.relay_resource(r),          # never the password: only its hash is kept
        }

    # --- helpers -----------------------------------------------------------------
    def now(self) -> float:
        return self.clock()

    def today(self) -> dt.date:
        return dt.datetime.fromtimestamp(self.clock(), dt.timezone.utc).date()

    def next_serial(self) -> int:
        self._serial += 1
        return self._serial

    def own_domains(self) -> list[Domain]:
        return [d for d in self.domains.values() if not d.foreign]

    def domain_by_name(self, name: str) -> Domain | None:
        return next((d for d in self.domains.values() if d.name == name), None)

    def add_domain(self, name: str, *, customer_code: str, foreign: bool = False, **fields: Any) -> Domain:
        now = self.now()
        d = Domain(code=f"D{100000000 + self.next_serial()}", name=name, customer_code=customer_code,
                   created_at=now, foreign=foreign, **fields)
        if foreign or self.verification_delay == 0:
            self.activate_domain(d)
        elif self.verification_delay is not None:
            d.published_at = now + self.verification_delay
        self.domains[d.code] = d
        return d

    def activate_domain(self, d: Domain) -> None:
        d.verified = True
        d.state = "enabled"
        d.activated_at = d.activated_at or self.now()

    def refresh_domain(self, d: Domain) -> None:
        """Nothing happens by itself: a published record still needs an ownership check."""

    def record_published(self, d: Domain) -> bool:
        return d.published_at is not None and self.now() >= d.published_at

    def own_domain(self, code: str) -> Domain:
        d = self.domains.get(code)
        if d is None or d.foreign:
            raise ApiError(404)
        self.refresh_domain(d)
        return d

    def refresh_relay(self, r: RelayAccount) -> None:
        # Payment is "received" lazily on every read: no background thread.
        if r.state == "wait_pay" and r.activate_at is not None and self.now() >= r.activate_at:
            r.state, r.activate_at = "enabled", None

    def relay(self, account_id: int) -> RelayAccount:
        r = self.relays.get(account_id)
        if r is None:
            raise ApiError(404)
        self.refresh_relay(r)
        return r

    def relay_resource(self, r: RelayAccount) -> dict[str, Any]:
        self.refresh_relay(r)
        domains = [self.delivery_domains[c] for c in r.domain_codes if c in self.delivery_domains]
        return {
            "id": str(r.id), "username": r.username, "description": r.description, "type": r.type,
            "plan": r.plan, "status": RELAY_STATUS_CODES[r.state], "display_status": r.state,
            "status_detail": {"wait_pay": "waiting_payment", "error": "payment_failed"}.get(r.state, "ok"),
            "created_at": _iso(r.created_at), "updated_at": _iso(r.updated_at or r.created_at),
            "start_date": _day(r.start_date), "num_messages": r.plan_num_messages + r.extra_messages_total,
            "plan_num_messages": r.plan_num_messages, "max_domains": r.max_domains,
            "config_hostname": CONFIG_HOSTNAME, "customer_code": r.customer_code,
            "customer_fullname": "Simulated Customer", "allow_nets": list(r.allow_nets),
            "domains": [{"code": dd.code, "name": dd.name} for dd in domains], "domains_count": len(domains),
            "bounce_notification": r.bounce_notification,
            "bounce_notification_to_sender": r.bounce_notification_to_sender,
            "plan_expiration_date": _day(r.plan_expiration_date), "next_renewal_date": _day(r.next_renewal_date),
            "last_renewal_date": _day(r.last_renewal_date),
            "remaining_messages": max(0, r.plan_num_messages + r.extra_messages_total - r.messages_sent),
            "messages_sent": r.messages_sent, "extra_messages_total": r.extra_messages_total,
            "has_pending_order": r.state == "wait_pay",
        }

    def free_accounts(self, customer_code: str) -> int:
        return sum(1 for r in self.relays.values() if r.plan == "free" and r.customer_code == customer_code)

    def new_username(self) -> str:
        alphabet = string.ascii_lowercase + string.digits
        while True:
            username = "".join(secrets.choice(alphabet) for _ in range(12))
            if all(r.username != username for r in self.relays.values()):
                return username


def new_password() -> str:
    """A generated relay password: letters and digits, always both."""
    alphabet = string.ascii_letters + string.digits
    while True:
        password = "".join(secrets.choice(alphabet) for _ in range(20))
        if strong_enough(password):
            return password


def _control_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ControlError(f"limits: {name} must be a whole number", "limits")
    return value


# --- request parsing -------------------------------------------------------------------

def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if body is None and not request.get_data():
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, message="Bad request")
    return body


def _text(body: dict[str, Any], key: str, *, required: bool = False) -> str:
    value = body.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise invalid(key, "can't be blank")
        return ""
    if not isinstance(value, str):
        raise invalid(key, "is not valid")
    return value.strip()


def _int(body: dict[str, Any], key: str, default: int | None = None, *, low: int | None = None) -> int | None:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(key, "is not a number")
    if low is not None and value < low:
        raise invalid(key, f"must be greater than or equal to {low}")
    return value


def _bool(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise invalid(key, "is not a boolean")
    return value


def _choice(body: dict[str, Any], key: str, choices: tuple[str, ...], default: str | None = None) -> str:
    value = body.get(key, default)
    if value not in choices:
        raise invalid(key, "is not included in the list")
    return value


def _quota(body: dict[str, Any], key: str, default: int) -> int:
    value = _int(body, key, default)
    if value not in ALLOWED_QUOTAS:
        raise invalid(key, "is not included in the list")
    return value


def _new_password(body: dict[str, Any], key: str) -> str:
    password = body.get(key)
    if not strong_enough(password):
        raise invalid(key, "must be at least 8 characters long and contain at least one letter and one number")
    if body.get(f"{key}_confirmation") != password:
        raise invalid(f"{key}_confirmation", f"doesn't match {key}")
    return password


def _nets(body: dict[str, Any]) -> list[str]:
    nets = body.get("allow_nets", [])
    if not isinstance(nets, list):
        raise invalid("allow_nets", "is not valid")
    for net in nets:
        try:
            ipaddress.ip_network(str(net), strict=False)
        except ValueError:
            raise invalid("allow_nets", f"{str(net)[:60]} is not a valid IP address or network") from None
    return [str(n) for n in nets]


def _email(value: str, key: str) -> str:
    if value and not _EMAIL_RE.match(value):
        raise invalid(key, "is not a valid email address")
    return value.lower()


def _page(items: list[Any], render: Callable[[Any], dict[str, Any]], *, status: str | None = None) -> Response:
    args = request.args
    try:
        page = max(1, int(args.get("page", 1)))
        per = max(1, min(int(args.get("per", 25)), 500))
    except ValueError:
        raise invalid("page", "is not a number") from None
    total = len(items)
    rendered = [render(i) for i in items[(page - 1) * per:page * per]]
    return jsonify({"resources": rendered, "pagination": {
        "per": per, "page": page, "total_pages": max(1, -(-total // per)), "query": args.get("query") or None,
        "filter": None, "status": status, "sort_field": args.get("sort_field") or None,
        "sort": args.get("sort") or None, "total_records": total}})


def _one(resource: dict[str, Any], status: int = 200) -> Response:
    response = jsonify({"resources": [resource], "pagination": {}})
    response.status_code = status
    return response


def _created(message: str, code: str, location: str) -> Response:
    response = jsonify({"message": message, "resource_code": code})
    response.status_code = 201
    response.headers["Location"] = location
    return response


def _error(err: ApiError) -> Response:
    response = jsonify({"message": err.message, "errors": err.errors})
    response.status_code = err.status
    return response


def _matches(query: str, *values: str) -> bool:
    needle = query.strip().lower()
    return not needle or any(needle in (v or "").lower() for v in values)


# --- hosting: domains and email accounts --------------------------------------------------

def domains_list(sim: QboxmailSimulator):
    query = request.args.get("query", "")
    found = [d for d in sim.own_domains() if _matches(query, d.name, d.code)]
    return _page(found, lambda d: d.resource())


def domains_create(sim: QboxmailSimulator):
    body = _body()
    name = _text(body, "name", required=True).lower()
    if not _DOMAIN_RE.match(name):
        raise invalid("name", "is not valid")
    errors = []
    if sim.domain_by_name(name) is not None:
        errors.append(("name", "already exists"))
    password = _new_password(body, "postmaster_password")
    plan = _choice(body, "plan", DOMAIN_PLANS, "basic")
    max_accounts = _int(body, "max_email_accounts", -1, low=-1)
    max_quota = _quota(body, "max_email_quota", 8 * GIB)
    default_quota = _quota(body, "default_quota", max_quota)
    if default_quota > max_quota:
        errors.append(("default_quota", "exceeds max_email_quota"))
    if errors:
        raise ApiError(422, errors)
    d = sim.add_domain(name, customer_code=_text(body, "customer_code") or OWNER, plan=plan,
                       postmaster_hash=_hash(password), max_email_accounts=max_accounts,
                       max_email_quota=max_quota, default_quota=default_quota)
    return _created("Domain created", d.code, f"/api/domains/{d.code}")


def domains_get(sim: QboxmailSimulator, code: str):
    return _one(sim.own_domain(code).resource())


def domains_update(sim: QboxmailSimulator, code: str):
    d = sim.own_domain(code)
    body = _body()
    password = _new_password(body, "postmaster_password") if "postmaster_password" in body else None
    plan = _choice(body, "plan", DOMAIN_PLANS) if "plan" in body else d.plan
    max_accounts = _int(body, "max_email_accounts", d.max_email_accounts, low=-1)
    max_quota = _quota(body, "max_email_quota", d.max_email_quota)
    default_quota = _quota(body, "default_quota", min(d.default_quota, max_quota))
    if 0 <= max_accounts < len(d.email_accounts):
        raise invalid("max_email_accounts", "is less than the number of existing email accounts")
    if default_quota > max_quota:
        raise invalid("default_quota", "exceeds max_email_quota")
    d.plan, d.max_email_accounts, d.max_email_quota, d.default_quota = plan, max_accounts, max_quota, default_quota
    if password is not None:
        d.postmaster_hash = _hash(password)
    return _one(d.resource())


def domains_status(sim: QboxmailSimulator, code: str):
    d = sim.own_domain(code)
    wanted = _choice(_body(), "status", ("enabled", "disabled"))
    if d.state in ("rejected", "deleted"):
        raise invalid("status", f"cannot be changed for a {d.state} domain")
    if wanted == "enabled" and not d.verified:
        raise invalid("status", "domain ownership has not been verified")
    d.state = wanted
    return Response(status=204)


def domains_delete(sim: QboxmailSimulator, code: str):
    d = sim.own_domain(code)
    del sim.domains[d.code]
    return Response(status=204)


def _ownership_check(sim: QboxmailSimulator, d: Domain) -> dict[str, Any]:
    queued = False
    if d.state == "ownership_check" and not d.verified and sim.record_published(d):
        sim.activate_domain(d)
        queued = True
    return {"verified": d.verified, "activation_queued": queued,
            "resource": {"type": "domain", "code": d.code, "name": d.name, "status": d.state,
                         "status_detail": d.resource()["status_detail"]},
            "expected_record": d.ownership_record(),
            "resolved_ip": OWNERSHIP_IP if d.verified else None}


def domains_dns_ownership_check(sim: QboxmailSimulator, code: str):
    _ownership_check(sim, sim.own_domain(code))
    return jsonify({"message": "DNS ownership check queued"})


def domains_dns_ownership_check_sync(sim: QboxmailSimulator, code: str):
    return jsonify(_ownership_check(sim, sim.own_domain(code)))


def domains_dkim(sim: QboxmailSimulator, code: str):
    """A custom DKIM key (vbdesign-be/vbdashboard reads ``resources[0].txt_record``).
    A repeat answers the key the domain has: nothing published so far is replaced."""
    d = sim.own_domain(code)
    if d.state in ("rejected", "deleted"):
        raise invalid("domain", f"is {d.state}")
    if not d.dkim_public_key:
        d.dkim_selector = f"qbm{secrets.randbelow(10 ** 10):010d}"
        d.dkim_public_key = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQ" + secrets.token_hex(48)
    return _one({"code": d.code, "name": d.name, "dkim_selector": d.dkim_selector,
                 "dkim_public_key": d.dkim_public_key, "txt_record": d.dkim_txt()})


def domains_dns_check(sim: QboxmailSimulator, code: str):
    """Queues Qboxmail's check of the domain's MX records; nothing here resolves them."""
    sim.own_domain(code)
    return jsonify({"message": "DNS check queued"})


def _email_account(d: Domain, code: str) -> EmailAccount:
    account = d.email_accounts.get(code)
    if account is None:
        raise ApiError(404)
    return account


def email_accounts_list(sim: QboxmailSimulator, code: str):
    d = sim.own_domain(code)
    query = request.args.get("query", "")
    found = [a for a in d.email_accounts.values() if _matches(query, a.name, a.firstname, a.lastname)]
    return _page(found, lambda a: a.resource(d))


def email_accounts_create(sim: QboxmailSimulator, code: str):
    d = sim.own_domain(code)
    if not d.verified:
        raise invalid("domain", "ownership has not been verified")
    if d.state != "enabled":
        raise invalid("domain", "is not active")
    body = _body()
    name = _text(body, "name", required=True).lower()
    if not _LOCAL_RE.match(name):
        raise invalid("name", "is not valid")
    if any(a.name == name for a in d.email_accounts.values()):
        raise invalid("name", "already exists")
    if 0 <= d.max_email_accounts <= len(d.email_accounts):
        raise invalid("max_email_accounts", "maximum number of email accounts reached for the domain")
    quota = _int(body, "quota", d.default_quota)
    if quota is not None and quota > d.max_email_quota:
        raise invalid("quota", "exceeds the maximum quota of the domain")
    quota = _quota(body, "quota", d.default_quota)
    password = _new_password(body, "password")
    firstname = _text(body, "firstname", required=True)
    account = EmailAccount(code=f"EA{10000000 + sim.next_serial()}", name=name, password_hash=_hash(password),
                           firstname=firstname, lastname=_text(body, "lastname"), quota=quota,
                           created_at=sim.now())
    d.email_accounts[account.code] = account
    return _created("Email account created", account.code, f"/api/domains/{d.code}/email_accounts/{account.code}")


def email_accounts_get(sim: QboxmailSimulator, code: str, account_code: str):
    d = sim.own_domain(code)
    return _one(_email_account(d, account_code).resource(d))


def email_accounts_update(sim: QboxmailSimulator, code: str, account_code: str):
    d = sim.own_domain(code)
    account = _email_account(d, account_code)
    body = _body()
    quota = _int(body, "quota", account.quota)
    if quota is not None and quota > d.max_email_quota:
        raise invalid("quota", "exceeds the maximum quota of the domain")
    quota = _quota(body, "quota", account.quota)
    password = _new_password(body, "password") if "password" in body else None
    if "firstname" in body:
        account.firstname = _text(body, "firstname", required=True)
    if "lastname" in body:
        account.lastname = _text(body, "lastname")
    account.quota = quota
    if password is not None:
        account.password_hash = _hash(password)
    return _one(account.resource(d))


def email_accounts_status(sim: QboxmailSimulator, code: str, account_code: str):
    d = sim.own_domain(code)
    _email_account(d, account_code).status = _choice(_body(), "status", ("enabled", "disabled"))
    return Response(status=204)


def email_accounts_delete(sim: QboxmailSimulator, code: str, account_code: str):
    d = sim.own_domain(code)
    del d.email_accounts[_email_account(d, account_code).code]
    return Response(status=204)


# --- delivery: domains and (relay) accounts --------------------------------------------------

def delivery_domains_list(sim: QboxmailSimulator):
    query = request.args.get("query", "")
    found = [dd for dd in sim.delivery_domains.values() if _matches(query, dd.name, dd.code)]
    return _page(found, lambda dd: dd.resource(sum(dd.code in r.domain_codes for r in sim.relays.values())))


def delivery_domains_create(sim: QboxmailSimulator):
    body = _body()
    name = _text(body, "name", required=True).lower()
    if not _DOMAIN_RE.match(name):
        raise invalid("name", "is not valid")
    if any(dd.name == name for dd in sim.delivery_domains.values()):
        raise invalid("name", "already exists")
    dd = DeliveryDomain(code=f"DD{10000000 + sim.next_serial()}", name=name,
                        customer_code=_text(body, "customer_code") or OWNER, created_at=sim.now())
    sim.delivery_domains[dd.code] = dd
    return _one(dd.resource(), 201)


_RELAY_STATUS_FILTER = {"enabled": ("enabled",), "wait_pay": ("wait_pay", "error"), "disabled": ("disabled",),
                        "blocked": ("blocked",)}


def delivery_accounts_list(sim: QboxmailSimulator):
    args = request.args
    status = args.get("status") or "all"
    if status != "all" and status not in _RELAY_STATUS_FILTER:
        raise invalid("status", "is not included in the list")
    kind = {"promotional": "newsletter"}.get(args.get("type", ""), args.get("type", ""))
    found = []
    for r in sim.relays.values():
        sim.refresh_relay(r)
        if status != "all" and r.state not in _RELAY_STATUS_FILTER[status]:
            continue
        if (kind and r.type != kind) or (args.get("plan") and r.plan != args["plan"]):
            continue
        if _matches(args.get("query", ""), r.description, r.username, str(r.id)):
            found.append(r)
    return _page(found, sim.relay_resource, status=status)


def delivery_accounts_create(sim: QboxmailSimulator):
    body = _body()
    description = _text(body, "description", required=True)
    if len(description) > 255:
        raise invalid("description", "is too long (maximum is 255 characters)")
    kind = _choice(body, "type", RELAY_TYPES)
    plan = _choice(body, "plan", RELAY_PLANS, "free")
    customer = _text(body, "customer_code") or OWNER
    if "payment_method" in body:
        _choice(body, "payment_method", PAYMENT_METHODS)
    if plan == "free":
        messages = _int(body, "plan_num_messages", FREE_MESSAGES)
        if messages != FREE_MESSAGES:
            raise invalid("plan_num_messages", "cannot be changed on the free plan")
        if sim.free_accounts(customer):
            raise invalid("plan", "free plan already used: only one free account per customer")
    else:
        messages = _int(body, "plan_num_messages", DEFAULT_PAID_MESSAGES, low=1)
    max_domains = _int(body, "max_domains", 1, low=1)
    bounce = _email(_text(body, "bounce_notification"), "bounce_notification")
    nets = _nets(body)
    password, now, today = new_password(), sim.now(), sim.today()
    r = RelayAccount(
        id=1000 + sim.next_serial(), username=sim.new_username(), password_hash=_hash(password),
        description=description, type=kind, plan=plan, customer_code=customer,
        state="enabled" if plan == "free" or sim.activation_delay == 0 else "wait_pay",
        created_at=now, start_date=today, plan_num_messages=messages, max_domains=max_domains,
        bounce_notification=bounce, bounce_notification_to_sender=_bool(body, "bounce_notification_to_sender",
                                                                          not bounce),
        allow_nets=nets)
    if r.state == "wait_pay":
        r.activate_at = now + sim.activation_delay
    if plan == "prepaid":
        r.plan_expiration_date, r.last_renewal_date = add_months(today, PREPAID_MONTHS), today
    elif plan == "monthly":
        r.next_renewal_date, r.last_renewal_date = add_months(today, 1), today
    sim.relays[r.id] = r
    # The one answer that shows the password.
    return _one({**sim.relay_resource(r), "password": password}, 201)


def delivery_accounts_get(sim: QboxmailSimulator, account_id: int):
    return _one(sim.relay_resource(sim.relay(account_id)))


def _buy(sim: QboxmailSimulator, r: RelayAccount, volume: int) -> None:
    """``volume`` more message packages: on prepaid, the expiry moves 12 months on."""
    if r.plan == "free":
        raise invalid("volume", "extra messages are not available on the free plan")
    r.extra_messages_total += volume * r.plan_num_messages
    today = sim.today()
    if r.plan == "prepaid":
        start = max(r.plan_expiration_date or today, today)
        r.plan_expiration_date = add_months(start, PREPAID_MONTHS)
    r.last_renewal_date = today


def delivery_accounts_update(sim: QboxmailSimulator, account_id: int):
    r = sim.relay(account_id)
    body = _body()
    if "type" in body and body["type"] != r.type:
        raise invalid("type", "cannot be changed")
    plan = _choice(body, "plan", RELAY_PLANS) if "plan" in body else r.plan
    if plan == "free" and r.plan != "free" and sim.free_accounts(r.customer_code):
        raise invalid("plan", "free plan already used: only one free account per customer")
    messages = _int(body, "plan_num_messages", None, low=1)
    if plan == "free" and messages not in (None, FREE_MESSAGES):
        raise invalid("plan_num_messages", "cannot be changed on the free plan")
    max_domains = _int(body, "max_domains", r.max_domains, low=1)
    codes = body.get("domain_codes", r.domain_codes)
    if not isinstance(codes, list) or any(c not in sim.delivery_domains for c in codes):
        raise invalid("domain_codes", "contains an unknown delivery domain")
    if len(set(codes)) > max_domains:
        raise invalid("domain_codes", "exceeds the maximum number of associated domains")
    volume = _int(body, "volume", None, low=1)
    if "payment_method" in body:
        _choice(body, "payment_method", PAYMENT_METHODS)
    nets = _nets(body) if "allow_nets" in body else r.allow_nets
    bounce = _email(_text(body, "bounce_notification"), "bounce_notification") if "bounce_notification" in body \
        else r.bounce_notification
    to_sender = _bool(body, "bounce_notification_to_sender", r.bounce_notification_to_sender)
    if "description" in body:
        r.description = _text(body, "description", required=True)
    if plan != r.plan:
        today = sim.today()
        r.plan = plan
        r.plan_expiration_date = add_months(today, PREPAID_MONTHS) if plan == "prepaid" else None
        r.next_renewal_date = add_months(today, 1) if plan == "monthly" else None
        if plan == "free":
            r.plan_num_messages = FREE_MESSAGES
    if messages is not None:
        r.plan_num_messages = messages
    if volume:
        _buy(sim, r, volume)
    r.max_domains, r.domain_codes, r.allow_nets = max_domains, list(dict.fromkeys(codes)), nets
    r.bounce_notification, r.bounce_notification_to_sender = bounce, to_sender
    r.updated_at = sim.now()
    return _one(sim.relay_resource(r))


def delivery_accounts_status(sim: QboxmailSimulator, account_id: int):
    r = sim.relay(account_id)
    wanted = _choice(_body(), "status", ("enabled", "disabled"))
    if r.state == "blocked":
        raise ApiError(403)
    if wanted == "enabled" and r.state in ("wait_pay", "error"):
        raise invalid("status", "payment has not been received")
    if r.state in ("enabled", "disabled"):
        r.state = wanted
    return _one(sim.relay_resource(r))


def delivery_accounts_password(sim: QboxmailSimulator, account_id: int):
    r = sim.relay(account_id)
    password = new_password()
    r.password_hash = _hash(password)
    return _one({**sim.relay_resource(r), "password": password})


def delivery_accounts_delete(sim: QboxmailSimulator, account_id: int):
    r = sim.relay(account_id)
    del sim.relays[r.id]
    return Response(status=204)


# --- routes ------------------------------------------------------------------------------------

ROUTES: list[tuple[str, str, str, Callable[..., Response]]] = [
    ("GET", "/api/domains", "domains.list", domains_list),
    ("POST", "/api/domains", "domains.create", domains_create),
    ("GET", "/api/domains/<code>", "domains.get", domains_get),
    ("PUT", "/api/domains/<code>", "domains.update", domains_update),
    ("PUT", "/api/domains/<code>/status", "domains.status", domains_status),
    ("DELETE", "/api/domains/<code>", "domains.delete", domains_delete),
    ("POST", "/api/domains/<code>/dkim", "domains.dkim", domains_dkim),
    ("PUT", "/api/domains/<code>/dns", "domains.dns_check", domains_dns_check),
    ("PUT", "/api/domains/<code>/dns_ownership_check", "domains.dns_ownership_check",
     domains_dns_ownership_check),
    ("PUT", "/api/domains/<code>/dns_ownership_check/sync", "domains.dns_ownership_check_sync",
     domains_dns_ownership_check_sync),
    ("GET", "/api/domains/<code>/email_accounts", "email_accounts.list", email_accounts_list),
    ("POST", "/api/domains/<code>/email_accounts", "email_accounts.create", email_accounts_create),
    ("GET", "/api/domains/<code>/email_accounts/<account_code>", "email_accounts.get", email_accounts_get),
    ("PUT", "/api/domains/<code>/email_accounts/<account_code>", "email_accounts.update",
     email_accounts_update),
    ("PUT", "/api/domains/<code>/email_accounts/<account_code>/status", "email_accounts.status",
     email_accounts_status),
    ("DELETE", "/api/domains/<code>/email_accounts/<account_code>", "email_accounts.delete",
     email_accounts_delete),
    ("GET", "/api/delivery/domains", "delivery_domains.list", delivery_domains_list),
    ("POST", "/api/delivery/domains", "delivery_domains.create", delivery_domains_create),
    ("GET", "/api/delivery/accounts", "delivery_accounts.list", delivery_accounts_list),
    ("POST", "/api/delivery/accounts", "delivery_accounts.create", delivery_accounts_create),
    ("GET", "/api/delivery/accounts/<int:account_id>", "delivery_accounts.get", delivery_accounts_get),
    ("PUT", "/api/delivery/accounts/<int:account_id>", "delivery_accounts.update", delivery_accounts_update),
    ("PUT", "/api/delivery/accounts/<int:account_id>/status", "delivery_accounts.status",
     delivery_accounts_status),
    ("PUT", "/api/delivery/accounts/<int:account_id>/password", "delivery_accounts.password",
     delivery_accounts_password),
    ("DELETE", "/api/delivery/accounts/<int:account_id>", "delivery_accounts.delete", delivery_accounts_delete),
]


def _register_routes(app: Flask, sim: QboxmailSimulator) -> None:
    @app.before_request
    def _authenticate():
        if request.path.startswith("/api/"):
            given = request.headers.get("X-Api-Token", "")
            if not hmac.compare_digest(given.encode(), sim.api_token.encode()):
                return _error(ApiError(401))
        return None

    @app.errorhandler(ApiError)
    def _api_error(err: ApiError):
        return _error(err)

    def bind(handler: Callable[..., Response]) -> Callable[..., Response]:
        def view(**params: Any) -> Response:
            with sim.lock:
                return handler(sim, **params)
        return view

    for method, rule, endpoint, handler in ROUTES:
        app.add_url_rule(rule, endpoint=endpoint, view_func=bind(handler), methods=[method])


def create_app(*, api_token: str = "dev-qboxmail-token", activation_delay: float = 0.0,
               verification_delay: float | None = None, seed: int | None = None,
               clock: Callable[[], float] | None = None, taken_domains: Iterable[str] = (),
               **_ignored: Any) -> Flask:
    """A fresh Qboxmail simulator app.

    ``api_token``: the ``X-Api-Token`` the API accepts; ``activation_delay``: seconds
    until a paid relay account's payment counts as received (free ones are active at
    once); ``verification_delay``: seconds after a domain's create until its ownership
    record counts as published (0: domains are active at once; None: only
    ``/_sim/mutate`` verifies them); ``taken_domains``: domains other Qboxmail
    customers host; ``seed``: for the fault dice; ``clock``: wall-clock seconds
    (tests). Other options (e.g. ``api_key`` from ``provisioner simulate``) are ignored."""
    if activation_delay < 0 or (verification_delay is not None and verification_delay < 0):
        raise ValueError("delays must not be negative")
    if not api_token:
        raise ValueError("api_token is required")
    app = Flask(__name__)
    app.json.sort_keys = False
    sim = QboxmailSimulator(api_token=api_token, activation_delay=activation_delay,
                            verification_delay=verification_delay, seed=seed, clock=clock or time.time,
                            taken_domains=taken_domains)
    install(app, sim)          # first: faults and call counting precede everything else
    _register_routes(app, sim)
    return app


#: the options `provisioner simulate qboxmail` reads from the environment when not given
create_app.env_options = {"api_token": "QBOXMAIL_API_TOKEN"}  # type: ignore[attr-defined]
