"""Adapter for Qboxmail (docs/providers/qboxmail.md): hosting domains and SMTP relay accounts.

The Management API is JSON under ``{base_url}/api``, authenticated with the header
``X-Api-Token``. Answers are ``{"resources": [...], "pagination": {...}}``; errors
``{"message": "...", "errors": [{"field", "description"}]}`` with 401/403/404/422/500.

One upstream connection serves two kinds of product, chosen per product by the limit
``qboxmail_product``:

- ``hosting``: one **domain** per service (``/api/domains``, code ``D`` + 9 digits),
  with its mailboxes (``email_accounts``). A new domain waits for DNS ownership
  verification (status ``ownership_check``): it is reported ``pending`` and
  ``dns_records()`` asks Qboxmail to check now and returns the record the customer
  must publish (``<possession_a_record>.<domain>`` A). A domain Qboxmail
  ``rejected`` is not pending: it reads as suspended and unsuspending it fails with
  a safe message. A custom DKIM signature is opt-in (``enable_dkim``).
- ``relay``: one **Delivery account** per service (``/api/delivery/accounts``, an
  integer id). Its SMTP password is shown once, in the create answer: it goes into
  ``UpstreamAccount.one_time_secrets`` and nowhere else.

Capabilities are a class attribute (the union of both kinds); an instance reports
those of the kinds it is configured to serve (setting ``product_kinds``), and a call
for the other kind's account raises NotSupported (``renew`` of a hosting domain and
``dns_records`` of a relay account answer "nothing" instead, so that the converge
step of an upstream serving both kinds works for each).
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import re
import secrets
import string
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import requests

from .base import (
    AccountSpec,
    AccountStatus,
    Capability,
    DnsRecord,
    Mailbox,
    MailboxSpec,
    Page,
    Provider,
    UpstreamAccount,
    Usage,
)
from .errors import (
    ConfigurationError,
    Conflict,
    LimitExceeded,
    MalformedResponse,
    NotFound,
    NotSupported,
    ProviderError,
    ValidationError,
)
from .http import HttpClient, Masker

log = logging.getLogger("provisioner.upstream.qboxmail")

DEFAULT_BASE_URL = "https://api.qboxmail.com"
HOSTING, RELAY = "hosting", "relay"
PRODUCT_LIMIT = "qboxmail_product"
GIB = 1024 ** 3
DOMAIN_PLANS = ("basic", "professional", "enterprise")
#: our relay_type -> the API's type (the panel's "promotional" is the API's "newsletter")
RELAY_TYPES = {"transactional": "transactional", "promotional": "newsletter"}
RELAY_PLANS = ("free", "monthly", "prepaid")
PREPAID_MONTHS = 12
PER_PAGE = 100                 # page size of look-ups
MAX_PER_PAGE = 100             # the largest page asked for (the API's own cap is unpublished)
LOOKUP_PAGES = 20              # bound on pages scanned by one look-up
MASKED_PASSWORDS = 16          # relay passwords still masked by value after they were read
MAX_PURCHASES = 5              # bound on prepaid packages bought by one renew
DEFAULT_RENEW_SLACK_DAYS = 31
#: what two production integrations publish (docs/providers/qboxmail.md, "MX hosts")
DEFAULT_MX_HOSTS = "mx01.qboxmail.com:10 mx02.qboxmail.com:20"
#: the address the ownership A record points at, where no check answer names it
DEFAULT_OWNERSHIP_IP = "185.97.217.16"
DEFAULT_SPF = "v=spf1 include:spf.qboxmail.com mx a -all"

_DOMAIN_CODE = re.compile(r"D\d{9}")
_RELAY_ID = re.compile(r"\d{1,12}")
_MAILBOX_CODE = re.compile(r"(EA\d{8}|P\d{9})")
_DESCRIPTION = re.compile(r"(?P<domain>\S+) \(service (?P<service>[^)]+)\)")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

KIND_CAPABILITIES: dict[str, frozenset[Capability]] = {
    HOSTING: frozenset({Capability.SUSPEND, Capability.LIMITS, Capability.PASSWORD, Capability.BULK_LIST,
                        Capability.MAILBOXES, Capability.DNS}),
    RELAY: frozenset({Capability.SUSPEND, Capability.LIMITS, Capability.TERMS, Capability.BULK_LIST,
                      Capability.RELAY}),
}

FREE_PLAN_TAKEN = ("Only one free relay account is allowed per customer. Choose a paid relay plan "
                   "or remove the existing free account first.")
NOT_VERIFIED = "The domain's ownership has not been verified yet."
DOMAIN_REJECTED = ("The e-mail platform rejected this domain, so mail for it cannot be enabled. "
                   "Please contact support.")
WEAK_PASSWORD = "The password must be at least 8 characters long and contain a letter and a number."


# --- errors -------------------------------------------------------------------------

_ALREADY = re.compile(r"already (exists|been taken|taken|in use|registered|used)|has already|duplicate",
                      re.IGNORECASE)
_LIMIT = re.compile(r"limit|maximum|exceed|too many", re.IGNORECASE)
_FREE = re.compile(r"\bfree\b", re.IGNORECASE)
_NOT_VERIFIED = re.compile(r"not (been )?verified|ownership", re.IGNORECASE)


def field_errors(body: Any) -> list[tuple[str, str]]:
    """The ``errors`` of an error answer as (field, description) pairs."""
    errors = body.get("errors") if isinstance(body, dict) else None
    pairs = []
    for item in errors if isinstance(errors, list) else []:
        if isinstance(item, dict):
            pairs.append((str(item.get("field") or "").strip(), str(item.get("description") or "").strip()))
        elif isinstance(item, str):
            pairs.append(("", item.strip()))
    return pairs


def qboxmail_error(response: requests.Response, body: Any) -> ProviderError | None:
    """422 (and 400) answers by their field errors; other statuses by the status mapping."""
    if response.status_code not in (400, 422):
        return None
    pairs = field_errors(body)
    message = body.get("message") if isinstance(body, dict) and isinstance(body.get("message"), str) else ""
    # "field description", not "field: description": the log masker hides values after
    # "password:" and would hide the reason with them.
    detail = "; ".join(" ".join(p for p in pair if p) for pair in pairs)
    text = f"{message or 'Validation failed'}: {detail}" if detail else (message or "Validation failed")
    descriptions = [d for _, d in pairs] or [message]
    err: ProviderError
    if any(f == "plan" and _FREE.search(d) for f, d in pairs):
        err = ValidationError(text, safe_message=FREE_PLAN_TAKEN)
    elif any(_ALREADY.search(d) for d in descriptions):
        err = Conflict(text)
    elif any(_LIMIT.search(d) for d in descriptions):
        err = LimitExceeded(text)
    elif any(_NOT_VERIFIED.search(d) for d in descriptions):
        err = Conflict(text, safe_message=NOT_VERIFIED)
    else:
        err = ValidationError(text)
    err.fields = {f: d for f, d in pairs if f}
    return err


def already_exists(err: ProviderError, field: str | None = None) -> bool:
    """Whether ``err`` says the object being created (its ``field``, or any) already exists."""
    if not isinstance(err, Conflict):
        return False
    fields = getattr(err, "fields", None) or {}
    if field is not None and fields:
        return bool(_ALREADY.search(fields.get(field, "")))
    return bool(_ALREADY.search(err.message))


# --- small helpers ----------------------------------------------------------------------

def normalise_domain(domain: str) -> str:
    return str(domain or "").strip().rstrip(".").lower()


def strong_enough(password: str | None) -> bool:
    return (bool(password) and len(password) >= 8 and any(c.isalpha() for c in password)
            and any(c.isdigit() for c in password))


def generate_password() -> str:
    alphabet = string.ascii_letters + string.digits
    while True:
        password = "".join(secrets.choice(alphabet) for _ in range(24))
        if strong_enough(password):
            return password


def add_months(day: dt.date, months: int) -> dt.date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return dt.date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def _date(value: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _int(value: Any, default: int | None = None) -> int | None:
    if isinstance(value, bool):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _gb(value: Any) -> int | None:
    number = _int(value)
    return None if number is None or number < 0 else int(round(number / GIB))


def _resources(body: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("resources", []), list):
        raise MalformedResponse(f"qboxmail: {what} is not a resource list")
    items = body.get("resources", [])
    if not all(isinstance(i, dict) for i in items):
        raise MalformedResponse(f"qboxmail: {what} holds something that is not a resource")
    return items


def _one(body: Any, what: str) -> dict[str, Any]:
    if isinstance(body, dict) and "resources" not in body and ("code" in body or "id" in body):
        return body                    # a bare object, as some endpoints may answer
    items = _resources(body, what)
    if not items:
        raise MalformedResponse(f"qboxmail: {what} answered no resource")
    return items[0]


def _total(body: Any, fallback: int) -> int:
    pagination = body.get("pagination") if isinstance(body, dict) else None
    total = _int(pagination.get("total_records")) if isinstance(pagination, dict) else None
    return fallback if total is None else total


def _clean_native(resource: dict[str, Any]) -> dict[str, Any]:
    """The upstream's record as stored on the service: never a password."""
    return {k: v for k, v in resource.items() if "password" not in str(k).lower()}


# Status vocabularies: the API's strings, the panel's names (seed 001) and the list filters.
# Waiting ones (``ownership_check``, ``wait_pay``, updating, error) fall through to PENDING.
_ACTIVE = {"enabled", "enable", "enablestatus", "active", "recordmxstatus", "record_mx"}
#: ``rejected`` is Qboxmail's refusal of a domain: not usable and never becoming so by
#: itself, so not PENDING (a create job would wait days for nothing); like ``blocked``
#: it reads as suspended, and unsuspending it fails with DOMAIN_REJECTED.
_REJECTED = {"rejected"}
_SUSPENDED = {"disabled", "disable", "disablestatus", "suspended", "blocked", *_REJECTED}
_DELETED = {"deleted", "deleting", "deletestatus", "removed"}
#: the integer ``status`` of Delivery accounts, where no string is given (*unverified*)
_RELAY_STATUS_CODES = {0: "wait_pay", 1: "enabled", 2: "disabled", 3: "error", 4: "blocked"}


def status_of(value: Any) -> AccountStatus:
    """Our status for a Qboxmail status string. Waiting (for ownership or payment),
    updating and error states are PENDING: not usable yet, and nothing for us to do;
    ``rejected`` is SUSPENDED (see _REJECTED)."""
    text = str(value or "").strip().lower()
    if text in _ACTIVE:
        return AccountStatus.ACTIVE
    if text in _SUSPENDED:
        return AccountStatus.SUSPENDED
    if text in _DELETED:
        return AccountStatus.DELETED
    return AccountStatus.PENDING


def relay_status(resource: dict[str, Any]) -> AccountStatus:
    for key in ("display_status", "status"):
        value = resource.get(key)
        if isinstance(value, str) and value.strip() and not value.strip().isdigit():
            return status_of(value)
    code = _int(resource.get("status"))
    return status_of(_RELAY_STATUS_CODES.get(code, "unknown"))


def description_for(spec: AccountSpec) -> str:
    """What names a relay account after its service (the API generates the username)."""
    return f"{normalise_domain(spec.domain)} (service {spec.service_id})"


class QboxmailProvider(Provider):
    kind = "qboxmail"
    capabilities = KIND_CAPABILITIES[HOSTING] | KIND_CAPABILITIES[RELAY]
    extra_limits = frozenset({PRODUCT_LIMIT, "plan", "relay_type", "relay_plan", "relay_messages",
                              "relay_max_domains"})
    required_settings = ("base_url", "api_token")
    # A hosting domain never becomes a relay account (or back), and a relay account's
    # sending type is fixed at creation (the panel offers no change either).
    fixed_limits = frozenset({PRODUCT_LIMIT, "relay_type"})

    def __init__(self, name: str, config: dict[str, Any], *, session: requests.Session | None = None,
                 today: Callable[[], dt.date] | None = None):
        super().__init__(name, config)
        for setting in self.required_settings:
            if not str(config.get(setting) or "").strip():
                raise ConfigurationError(f"upstream {name}: {setting} is required")
        self.base_url = str(config["base_url"]).rstrip("/")
        self._token = str(config["api_token"])
        self.kinds = self._product_kinds(config.get("product_kinds"))
        self.customer_code = str(config.get("customer_code") or "").strip() or None
        self.payment_method = str(config.get("payment_method") or "").strip() or None
        self.mx_hosts = self._mx_hosts(config.get("mx_hosts", DEFAULT_MX_HOSTS))
        self.spf_record = str(config.get("spf_record", DEFAULT_SPF) or "").strip()
        self.ownership_ip = str(config.get("ownership_ip") or DEFAULT_OWNERSHIP_IP).strip()
        self.renew_slack = dt.timedelta(days=self._number(config, "renew_slack_days", DEFAULT_RENEW_SLACK_DAYS))
        timeout = self._number(config, "timeout", None)
        if timeout is not None and timeout <= 0:
            raise ConfigurationError(f"upstream {name}: timeout must be positive")
        self.http = HttpClient(name, self.base_url, timeout=timeout or (5, 30),
                               headers={"X-Api-Token": self._token}, secrets=[self._token],
                               error_mapper=qboxmail_error, session=session)
        self._today = today or (lambda: dt.datetime.now(dt.timezone.utc).date())
        self._mask_lock = threading.Lock()
        self._recent_passwords: deque[str] = deque(maxlen=MASKED_PASSWORDS)

    # --- settings --------------------------------------------------------------------
    def _product_kinds(self, raw: Any) -> frozenset[str]:
        items = raw.replace(",", " ").split() if isinstance(raw, str) else list(raw or [HOSTING, RELAY])
        kinds = frozenset(str(k).strip().lower() for k in items)
        if not kinds or not kinds <= {HOSTING, RELAY}:
            raise ConfigurationError(f"upstream {self.name}: product_kinds must list hosting and/or relay")
        return kinds

    def _number(self, config: dict[str, Any], key: str, default: float | None) -> float | None:
        raw = config.get(key)
        if raw in (None, ""):
            return default
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ConfigurationError(f"upstream {self.name}: {key} must be a number") from None
        if value < 0:
            raise ConfigurationError(f"upstream {self.name}: {key} must not be negative")
        return value

    def _mx_hosts(self, raw: Any) -> list[tuple[str, int]]:
        """``mx_hosts``: "host:priority ..." (a string or a list), the MX records to publish."""
        hosts = []
        for item in raw.split() if isinstance(raw, str) else list(raw or []):
            host, _, priority = str(item).partition(":")
            try:
                hosts.append((host.strip().rstrip("."), int(priority or 10)))
            except ValueError:
                raise ConfigurationError(f"upstream {self.name}: mx_hosts entry {item!r} "
                                         "must look like host:priority") from None
        return hosts

    def supports(self, capability: Capability) -> bool:
        return any(capability in KIND_CAPABILITIES[kind] for kind in self.kinds)

    def close(self) -> None:
        self.http.close()

    # --- transport ---------------------------------------------------------------------
    def _call(self, method: str, path: str, action: str, *, secret: str | None = None, **kw: Any):
        """One API call (see HttpClient.request); a password sent in it is scrubbed from errors."""
        try:
            return self.http.request(method, path, action=action, **kw)
        except ProviderError as err:
            raise err.scrubbed(secret) from None

    def _get(self, path: str, action: str, params: dict[str, Any] | None = None) -> Any:
        return self._call("GET", path, action, params=params).data

    def _put(self, path: str, action: str, body: dict[str, Any], *, idempotent: bool = True,
             secret: str | None = None, log_bodies: bool = True) -> Any:
        return self._call("PUT", path, action, json=body, idempotent=idempotent, secret=secret,
                          log_bodies=log_bodies).data

    def _remember_secret(self, value: str) -> None:
        """Mask ``value`` (a relay password just read) in every later log line and error.
        Only the latest few are kept: masking each one for the life of the process would
        slow down every log line."""
        with self._mask_lock:
            self._recent_passwords.append(value)
            self.http.masker = Masker([self._token, *self._recent_passwords])

    def _pages(self, path: str, action: str, params: dict[str, Any], *, pages: int = LOOKUP_PAGES):
        """Resources of a paged list, page after page (at most ``pages`` pages)."""
        for page in range(1, pages + 1):
            body = self._get(path, action, {**params, "page": page, "per": PER_PAGE})
            items = _resources(body, action)
            yield from items
            if len(items) < PER_PAGE or page * PER_PAGE >= _total(body, page * PER_PAGE + 1):
                return

    # --- kinds --------------------------------------------------------------------------
    def _kind_of_spec(self, spec: AccountSpec) -> str:
        wanted = spec.limits.get(PRODUCT_LIMIT)
        kind = str(wanted).strip().lower() if wanted else (HOSTING if HOSTING in self.kinds else RELAY)
        if kind not in (HOSTING, RELAY):
            raise ConfigurationError(f"{self.name}: {PRODUCT_LIMIT} must be hosting or relay, not {wanted!r}")
        if kind not in self.kinds:
            raise ConfigurationError(f"upstream {self.name} is not configured for {kind} products "
                                     f"(product_kinds: {', '.join(sorted(self.kinds))})")
        return kind

    def _kind_of_limits(self, limits: dict[str, Any]) -> str:
        wanted = limits.get(PRODUCT_LIMIT)
        return str(wanted).strip().lower() if wanted else (HOSTING if HOSTING in self.kinds else RELAY)

    # --- what intake judges ------------------------------------------------------------
    def limit_problems(self, limits: dict[str, Any]) -> dict[str, str]:
        """What ``_kind_of_spec``, ``_domain_limits`` and ``_relay_settings`` would refuse."""
        kind = self._kind_of_limits(limits)
        if kind not in (HOSTING, RELAY):
            return {PRODUCT_LIMIT: "Must be hosting or relay."}
        if kind not in self.kinds:
            return {PRODUCT_LIMIT: f"This upstream is not configured for {kind} products "
                                   f"(product_kinds: {', '.join(sorted(self.kinds))})."}
        problems: dict[str, str] = {}
        if kind == HOSTING:
            for name in ("plan", "mailboxes", "mailbox_quota_gb"):
                if name in limits:
                    try:
                        self._domain_limits({name: limits[name]})
                    except ValidationError as err:
                        problems[name] = err.safe_message
            return problems
        if str(limits.get("relay_type") or "transactional").lower() not in RELAY_TYPES:
            problems["relay_type"] = "The relay type must be transactional or promotional."
        if str(limits.get("relay_plan") or "free").lower() not in RELAY_PLANS:
            problems["relay_plan"] = "The relay plan must be free, monthly or prepaid."
        return problems

    def password_problem(self, password: str, limits: dict[str, Any]) -> str | None:
        """What ``set_password`` would refuse before calling Qboxmail."""
        if self._kind_of_limits(limits) != HOSTING:
            return ("The password of an SMTP relay account is generated by the platform; "
                    "regenerate it in the client area instead.")
        return None if strong_enough(password) else WEAK_PASSWORD

    @staticmethod
    def _kind_of_id(account_id: str) -> str:
        account_id = str(account_id).strip()
        if _DOMAIN_CODE.fullmatch(account_id):
            return HOSTING
        if _RELAY_ID.fullmatch(account_id):
            return RELAY
        raise NotFound(f"qboxmail: {account_id[:40]!r} is neither a domain code nor a relay account id")

    def _domain_code(self, account_id: str, what: str) -> str:
        if self._kind_of_id(account_id) != HOSTING:
            raise NotSupported(f"{self.kind}: {what} applies to hosting domains, not relay accounts",
                               safe_message="This action is not available for SMTP relay accounts.",
                               action=what)
        return str(account_id).strip()

    def _relay_id(self, account_id: str, what: str) -> str:
        if self._kind_of_id(account_id) != RELAY:
            raise NotSupported(f"{self.kind}: {what} applies to relay accounts, not hosting domains",
                               safe_message="This action is only available for SMTP relay accounts.",
                               action=what)
        return str(int(str(account_id).strip()))

    # --- connection ---------------------------------------------------------------------
    def test_connection(self) -> None:
        if HOSTING in self.kinds:
            self._get("/api/domains", "domains.list", {"per": 1})
        else:
            self._get("/api/delivery/accounts", "delivery_accounts.list", {"per": 1})

    # --- accounts ----------------------------------------------------------------------------
    def get_account(self, account_id: str) -> UpstreamAccount:
        if self._kind_of_id(account_id) == HOSTING:
            code = str(account_id).strip()
            return self._domain_account(_one(self._get(f"/api/domains/{code}", "domains.get"), "domains.get"))
        relay_id = self._relay_id(account_id, "get_account")
        return self._relay_account(_one(self._get(f"/api/delivery/accounts/{relay_id}",
                                                  "delivery_accounts.get"), "delivery_accounts.get"))

    def find_account(self, spec: AccountSpec) -> UpstreamAccount | None:
        if self._kind_of_spec(spec) == HOSTING:
            found = self._find_domain(normalise_domain(spec.domain))
            return self._domain_account(found) if found else None
        found = self._find_relay(spec)
        return self._relay_account(found) if found else None

    def create_account(self, spec: AccountSpec) -> UpstreamAccount:
        if self._kind_of_spec(spec) == HOSTING:
            return self._create_domain(spec)
        return self._create_relay(spec)

    def delete_account(self, account_id: str) -> None:
        log.info("upstream %s delete_account %s", self.name, account_id)
        kind = self._kind_of_id(account_id)
        path = (f"/api/domains/{account_id}" if kind == HOSTING
                else f"/api/delivery/accounts/{self._relay_id(account_id, 'delete')}")
        try:
            # A repeat after a lost answer finds nothing: deleting is safe to retry.
            self._call("DELETE", path, "domains.delete" if kind == HOSTING else "delivery_accounts.delete",
                       expect_json=False)
        except NotFound:
            pass

    def suspend_account(self, account_id: str, reason: str) -> None:
        # Qboxmail keeps no suspension reason; the provisioner does.
        log.info("upstream %s suspend_account %s", self.name, account_id)
        self._set_status(account_id, "disabled")

    def unsuspend_account(self, account_id: str) -> None:
        log.info("upstream %s unsuspend_account %s", self.name, account_id)
        if self._kind_of_id(account_id) == HOSTING:
            # A rejected domain reads as suspended; enabling it is not ours to do.
            resource = _one(self._get(f"/api/domains/{account_id}", "domains.get"), "domains.get")
            status = str(resource.get("status") or "").strip().lower()
            if status in _REJECTED:
                detail = str(resource.get("status_detail") or "").strip()[:120]
                raise ValidationError(f"{self.name}: Qboxmail rejected domain {account_id}"
                                      + (f" ({detail})" if detail else ""),
                                      safe_message=DOMAIN_REJECTED, action="domains.status")
        self._set_status(account_id, "enabled")

    def _set_status(self, account_id: str, status: str) -> None:
        if self._kind_of_id(account_id) == HOSTING:
            self._call("PUT", f"/api/domains/{account_id}/status", "domains.status",
                       json={"status": status}, expect_json=False)
        else:
            relay_id = self._relay_id(account_id, "status")
            self._put(f"/api/delivery/accounts/{relay_id}/status", "delivery_accounts.status", {"status": status})

    def set_limits(self, account_id: str, limits: dict[str, Any]) -> None:
        log.info("upstream %s set_limits %s", self.name, account_id)
        if self._kind_of_id(account_id) == HOSTING:
            self._check_kind(limits, HOSTING)
            body = self._domain_limits(limits)
            if body:
                self._put(f"/api/domains/{account_id}", "domains.update", body)
            return
        relay_id = self._relay_id(account_id, "set_limits")
        self._check_kind(limits, RELAY)
        current = _one(self._get(f"/api/delivery/accounts/{relay_id}", "delivery_accounts.get"),
                       "delivery_accounts.get")
        body = self._relay_limit_changes(current, limits)
        if body:
            self._put(f"/api/delivery/accounts/{relay_id}", "delivery_accounts.update", body,
                      idempotent="plan" not in body)      # a plan change may order something

    @staticmethod
    def _check_kind(limits: dict[str, Any], kind: str) -> None:
        wanted = str(limits.get(PRODUCT_LIMIT) or kind).lower()
        if wanted != kind:
            raise ValidationError(f"qboxmail: a {kind} account cannot become a {wanted} one",
                                  safe_message="A package change cannot turn mail hosting into an SMTP "
                                               "relay account or the other way round; order a new service.")

    def set_password(self, account_id: str, password: str) -> None:
        """The postmaster password of a hosting domain (the billing system's service password)."""
        if self._kind_of_id(account_id) != HOSTING:
            raise NotSupported(f"{self.kind}: relay account passwords are generated by Qboxmail",
                               safe_message="The password of an SMTP relay account is generated by the "
                                            "platform; regenerate it in the client area instead.",
                               action="set_password")
        if not strong_enough(password):
            raise ValidationError(f"{self.kind}: the postmaster password is too weak",
                                  safe_message=WEAK_PASSWORD, action="set_password")
        log.info("upstream %s set_password %s (postmaster)", self.name, account_id)
        self._put(f"/api/domains/{account_id}", "domains.update",
                  {"postmaster_password": password, "postmaster_password_confirmation": password},
                  secret=password)

    def renew(self, account_id: str, until: dt.date) -> dt.date | None:
        """Prepaid relay accounts: buy 12-month message packages towards ``until``.

        A package moves the expiry 12 months on; one is bought only if that stays
        within ``until`` plus ``renew_slack_days`` (billing and Qboxmail count from
        different days), so a customer never gets more than was paid. Hosting domains,
        free and monthly relay plans have nothing to buy: None, without a call for
        hosting."""
        if self._kind_of_id(account_id) == HOSTING:
            return None
        relay_id = self._relay_id(account_id, "renew")
        resource = _one(self._get(f"/api/delivery/accounts/{relay_id}", "delivery_accounts.get"),
                        "delivery_accounts.get")
        if resource.get("plan") != "prepaid":
            return None
        expiry = _date(resource.get("plan_expiration_date"))
        bought = False
        for _ in range(MAX_PURCHASES):
            if expiry is not None and expiry >= until:
                break
            start = max(expiry or self._today(), self._today())
            if add_months(start, PREPAID_MONTHS) > until + self.renew_slack:
                log.info("upstream %s renew %s: a 12-month package would run past %s; not bought",
                         self.name, relay_id, until.isoformat())
                break
            body: dict[str, Any] = {"volume": 1}
            if self.payment_method:
                body["payment_method"] = self.payment_method
            log.info("upstream %s renew %s: buying one prepaid package", self.name, relay_id)
            # A purchase: never repeated by the client, even though it is a PUT.
            resource = _one(self._put(f"/api/delivery/accounts/{relay_id}", "delivery_accounts.buy",
                                      body, idempotent=False), "delivery_accounts.buy")
            new_expiry = _date(resource.get("plan_expiration_date"))
            if new_expiry is None or (expiry is not None and new_expiry <= expiry):
                raise MalformedResponse(f"{self.name} renew: the purchase did not move the expiry",
                                        action="delivery_accounts.buy")
            expiry, bought = new_expiry, True
        return expiry if bought else None

    def list_accounts(self, page: int = 1, per_page: int = 100) -> Page:
        """Domains, then relay accounts (the kinds this upstream serves), paged as one list."""
        page, per_page = max(1, page), max(1, min(per_page, MAX_PER_PAGE))
        start = (page - 1) * per_page
        items: list[UpstreamAccount] = []
        base = 0                                   # accounts of the kinds listed before this one
        for kind in (HOSTING, RELAY):
            if kind not in self.kinds:
                continue
            path, action, build, params = self._listing(kind)
            need = per_page - len(items)
            if need <= 0:                          # the page is full: only the count matters
                base += _total(self._get(path, action, {**params, "per": 1}), 0)
                continue
            offset = max(0, start - base)          # where this page starts within this kind
            first = offset // per_page + 1
            body = self._get(path, action, {**params, "page": first, "per": per_page})
            records = _resources(body, action)
            count = _total(body, (first - 1) * per_page + len(records))
            skip = offset - (first - 1) * per_page
            taken = records[skip:skip + need]
            if len(taken) < need and skip and first * per_page < count:
                more = self._get(path, action, {**params, "page": first + 1, "per": per_page})
                taken += _resources(more, action)[:need - len(taken)]
            items += [build(r) for r in taken]
            base += count
        return Page(items=items, page=page, per_page=per_page, total=base)

    def _listing(self, kind: str) -> tuple[str, str, Callable[[dict[str, Any]], UpstreamAccount], dict]:
        if kind == HOSTING:
            return "/api/domains", "domains.list", self._domain_account, {}
        return "/api/delivery/accounts", "delivery_accounts.list", self._relay_account, {"status": "all"}

    # --- hosting domains ---------------------------------------------------------------------
    def _find_domain(self, name: str, *, thorough: bool = False) -> dict[str, Any] | None:
        """The domain named ``name``, found with ``query=``; ``thorough`` also pages through
        the whole list should the search not match names (its semantics are unpublished)."""
        searches = [{"query": name}, {}] if thorough else [{"query": name}]
        for params in searches:
            for resource in self._pages("/api/domains", "domains.list", params):
                if (normalise_domain(resource.get("name")) == name
                        and status_of(resource.get("status")) != AccountStatus.DELETED):
                    return resource
        return None

    def _domain_account(self, resource: dict[str, Any]) -> UpstreamAccount:
        code = str(resource.get("code") or "")
        if not _DOMAIN_CODE.fullmatch(code):
            raise MalformedResponse("qboxmail: a domain without a valid code")
        limits: dict[str, Any] = {PRODUCT_LIMIT: HOSTING}
        if resource.get("plan"):
            limits["plan"] = str(resource["plan"])
        if _int(resource.get("max_email_accounts")) is not None:
            limits["mailboxes"] = _int(resource.get("max_email_accounts"))
        if _gb(resource.get("max_email_quota")) is not None:
            limits["mailbox_quota_gb"] = _gb(resource.get("max_email_quota"))
        return UpstreamAccount(
            id=code, domain=normalise_domain(resource.get("name")), status=status_of(resource.get("status")),
            limits=limits, usage=Usage(mailboxes=_int(resource.get("no_email_accounts"), 0)),
            native=_clean_native(resource))

    def _domain_limits(self, limits: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if "plan" in limits:
            plan = str(limits["plan"]).lower()
            if plan not in DOMAIN_PLANS:
                raise ValidationError(f"qboxmail: unknown plan {plan!r}",
                                      safe_message="The plan must be basic, professional or enterprise.")
            body["plan"] = plan
        if "mailboxes" in limits:
            mailboxes = _int(limits["mailboxes"])
            if mailboxes is None or mailboxes < -1:
                raise ValidationError(f"qboxmail: mailboxes {limits['mailboxes']!r} is not a count",
                                      safe_message="The number of mailboxes must be -1 (unlimited) or more.")
            body["max_email_accounts"] = mailboxes
        if "mailbox_quota_gb" in limits:
            quota = _int(limits["mailbox_quota_gb"])
            if quota is None or quota < 1:
                raise ValidationError(f"qboxmail: mailbox_quota_gb {limits['mailbox_quota_gb']!r}",
                                      safe_message="The mailbox quota must be a whole number of GB.")
            body["max_email_quota"] = quota * GIB
        return body

    def _create_domain(self, spec: AccountSpec) -> UpstreamAccount:
        name = normalise_domain(spec.domain)
        log.info("upstream %s create_account %s (hosting, service %s)", self.name, name, spec.service_id)
        # The billing system's service password when Qboxmail accepts it, so the customer's
        # panel login works; otherwise a generated one nobody keeps (the postmaster can
        # reset it, or the next change of password sets it). Never stored, never logged.
        password = spec.password if strong_enough(spec.password) else generate_password()
        body: dict[str, Any] = {"name": name, "postmaster_password": password,
                                "postmaster_password_confirmation": password,
                                **self._domain_limits({"plan": "basic", **spec.limits})}
        if "max_email_quota" in body:
            body["default_quota"] = body["max_email_quota"]
        if self.customer_code:
            body["customer_code"] = self.customer_code
        try:
            answer = self._call("POST", "/api/domains", "domains.create", json=body, secret=password)
        except Conflict as err:
            if not already_exists(err, "name"):
                raise
            return self._adopt_domain(name)
        code = self._created_code(answer)
        if code is None:
            found = self._find_domain(name)
            if found is None:
                raise MalformedResponse(f"{self.name} domains.create: no domain code in the answer",
                                        action="domains.create")
            return self._domain_account(found)
        return self.get_account(code)

    @staticmethod
    def _created_code(answer) -> str | None:
        """The new object's code: ``resource_code`` in the body, else the Location header."""
        data = answer.data if isinstance(answer.data, dict) else {}
        code = data.get("resource_code") or data.get("code")
        if not code and isinstance(data.get("resources"), list) and data["resources"]:
            code = data["resources"][0].get("code") if isinstance(data["resources"][0], dict) else None
        if not code:
            code = str(answer.headers.get("Location") or "").rstrip("/").rpartition("/")[2]
        return str(code) if code else None

    def _adopt_domain(self, name: str) -> UpstreamAccount:
        found = self._find_domain(name, thorough=True)
        if found is None:
            raise Conflict(f"{self.name}: {name} is hosted by another Qboxmail customer",
                           safe_message="This domain is already registered with the e-mail platform "
                                        "under another account.", action="domains.create")
        log.info("upstream %s adopts the existing domain %s (%s)", self.name, name, found.get("code"))
        return self._domain_account(found)

    def dns_records(self, account_id: str) -> list[DnsRecord]:
        """What the customer must publish. While the domain waits for ownership
        verification this asks Qboxmail to check now (``dns_ownership_check/sync``,
        which also queues the activation once the record resolves) and returns the
        record it expects first; once active, it asks Qboxmail to check the MX records
        again (``PUT /api/domains/{code}/dns``), since these are the records the
        customer is shown to publish. Relay accounts: none (their sender domains carry
        their own records)."""
        if self._kind_of_id(account_id) != HOSTING:
            return []
        resource = _one(self._get(f"/api/domains/{account_id}", "domains.get"), "domains.get")
        domain = normalise_domain(resource.get("name"))
        records: list[DnsRecord] = []
        status = status_of(resource.get("status"))
        if status == AccountStatus.PENDING:
            ownership = self._ownership_record(account_id, resource)
            if ownership is not None:
                records.append(ownership)
        elif status == AccountStatus.ACTIVE:
            self._check_mx(account_id)
        records += [DnsRecord("MX", domain, host, priority=priority, purpose="mail delivery")
                    for host, priority in self.mx_hosts]
        if self.spf_record:
            records.append(DnsRecord("TXT", domain, self.spf_record, purpose="SPF"))
        dkim = self._dkim_record(resource, domain)
        if dkim is not None:
            records.append(dkim)
        return records

    def _check_mx(self, code: str) -> None:
        """Queue Qboxmail's own check of the domain's MX records. A courtesy: its
        failure must not fail a converge, which has nothing else to do about it."""
        try:
            self._put(f"/api/domains/{code}/dns", "domains.dns_check", {})
        except ProviderError as err:
            log.warning("upstream %s: MX check of %s not queued: %s", self.name, code, err.message)

    @staticmethod
    def _dkim_record(resource: dict[str, Any], domain: str, txt: Any = None) -> DnsRecord | None:
        """The custom DKIM record of a domain that has one (``dkim_selector`` and
        ``dkim_public_key``; ``txt``: the ``txt_record`` of the DKIM answer)."""
        selector = str(resource.get("dkim_selector") or "").strip().rstrip(".").lower()
        key = str(resource.get("dkim_public_key") or "").strip()
        value = str(txt or "").strip() or (
            key if key.lower().startswith("v=dkim1") else f"v=DKIM1; k=rsa; p={key}" if key else "")
        if not selector or not value:
            return None
        # The panel calls "qbm1807252189._domainkey" the selector; RFC 6376 the first label.
        host = selector if selector.endswith("._domainkey") else f"{selector}._domainkey"
        return DnsRecord("TXT", f"{host}.{domain}", value, purpose="DKIM")

    def enable_dkim(self, account_id: str) -> DnsRecord:
        """A custom DKIM signature for a hosting domain (Qboxmail signs with a shared
        one until then): generated with ``POST /api/domains/{code}/dkim`` unless the
        domain has one already. Returns the TXT record the customer must publish."""
        code = self._domain_code(account_id, "enable_dkim")
        resource = _one(self._get(f"/api/domains/{code}", "domains.get"), "domains.get")
        domain = normalise_domain(resource.get("name"))
        existing = self._dkim_record(resource, domain)
        if existing is not None:
            return existing
        log.info("upstream %s enable_dkim %s", self.name, code)
        # A POST: never repeated by the HTTP client (a repeat could replace the key it made).
        answer = self._call("POST", f"/api/domains/{code}/dkim", "domains.dkim", json={}).data
        made = _one(answer, "domains.dkim") if isinstance(answer, dict) and answer.get("resources") else {}
        if not made.get("dkim_selector"):
            # The published answer carries the TXT value; the selector is on the domain.
            resource = _one(self._get(f"/api/domains/{code}", "domains.get"), "domains.get")
            made = {**resource, **{k: v for k, v in made.items() if v}}
        record = self._dkim_record(made, domain, made.get("txt_record"))
        if record is None:
            raise MalformedResponse(f"{self.name} domains.dkim: no selector or key in the answer",
                                    action="domains.dkim")
        return record

    def _ownership_record(self, code: str, resource: dict[str, Any]) -> DnsRecord | None:
        try:
            check = self._put(f"/api/domains/{code}/dns_ownership_check/sync", "domains.dns_ownership_check", {})
        except NotFound:
            # The synchronous check is documented for alias domains; the queued one
            # (``dns_ownership_check``) is what integrators call for a domain.
            check = self._queue_ownership_check(code)
        except ProviderError as err:
            if err.retryable:
                raise
            # Not worth failing a converge over: fall back to what the domain record says.
            log.warning("upstream %s: ownership check of %s refused: %s", self.name, code, err.message)
            check = {}
        check = check if isinstance(check, dict) else {}
        if check.get("verified") is True:
            return None
        domain = normalise_domain(resource.get("name"))
        expected = check.get("expected_record")
        if isinstance(expected, dict) and expected.get("name") and expected.get("value"):
            return DnsRecord(str(expected.get("type") or "A").upper(), normalise_domain(expected["name"]),
                             str(expected["value"]), purpose="ownership check")
        # The domain record names the label (its code in lower case) under the domain.
        label = normalise_domain(resource.get("possession_a_record"))
        if not label or not domain:
            return None
        host = label if label == domain or label.endswith("." + domain) else f"{label}.{domain}"
        return DnsRecord("A", host, self.ownership_ip, purpose="ownership check")

    def _queue_ownership_check(self, code: str) -> dict[str, Any]:
        try:
            self._put(f"/api/domains/{code}/dns_ownership_check", "domains.dns_ownership_check_queue", {})
        except ProviderError as err:
            if err.retryable:
                raise
            log.warning("upstream %s: ownership check of %s refused: %s", self.name, code, err.message)
        return {}

    # --- mailboxes -------------------------------------------------------------------------
    @staticmethod
    def _mailbox(resource: dict[str, Any], domain_name: str = "") -> Mailbox:
        name = str(resource.get("name") or "")
        address = str(resource.get("email_address") or (f"{name}@{domain_name}" if domain_name else name))
        return Mailbox(id=str(resource.get("code") or ""), address=address.lower(),
                       name=" ".join(p for p in (resource.get("firstname"), resource.get("lastname")) if p),
                       quota_gb=_gb(resource.get("quota")), type="basic",
                       enabled=str(resource.get("status") or "enabled").lower() in _ACTIVE,
                       used_mb=int((_int(resource.get("used_quota"), 0) or 0) // 2 ** 20))

    def _mailbox_code(self, mailbox_id: str) -> str:
        code = str(mailbox_id).strip()
        if not _MAILBOX_CODE.fullmatch(code):
            raise NotFound(f"qboxmail: {code[:40]!r} is not an email account code")
        return code

    def list_mailboxes(self, account_id: str) -> list[Mailbox]:
        code = self._domain_code(account_id, "mailboxes")
        return [self._mailbox(r) for r in self._pages(f"/api/domains/{code}/email_accounts",
                                                       "email_accounts.list", {}, pages=1000)]

    def create_mailbox(self, account_id: str, spec: MailboxSpec) -> Mailbox:
        code = self._domain_code(account_id, "mailboxes")
        if spec.type != "basic":
            raise ValidationError(f"qboxmail: no mailbox type {spec.type!r}",
                                  safe_message="Qboxmail mailboxes have a single type (basic).")
        if not strong_enough(spec.password):
            raise ValidationError("qboxmail: the mailbox password is too weak", safe_message=WEAK_PASSWORD)
        local = spec.local_part.strip().lower()
        first, _, last = (spec.name or "").strip().partition(" ")
        body: dict[str, Any] = {"name": local, "password": spec.password, "password_confirmation": spec.password,
                                "firstname": first or local, "lastname": last.strip()}
        if spec.quota_gb is not None:
            body["quota"] = int(spec.quota_gb) * GIB
        log.info("upstream %s create_mailbox %s in %s", self.name, local, code)
        answer = self._call("POST", f"/api/domains/{code}/email_accounts", "email_accounts.create", json=body,
                            secret=spec.password)
        mailbox_code = self._created_code(answer)
        if not mailbox_code:
            raise MalformedResponse(f"{self.name} email_accounts.create: no code in the answer",
                                    action="email_accounts.create")
        # Built from what was sent: a read failing now must not turn a made mailbox into an error.
        domain = self._mailbox_domain(code)
        return Mailbox(id=mailbox_code, address=f"{local}@{domain}" if domain else local,
                       name=" ".join(p for p in (body["firstname"], body["lastname"]) if p),
                       quota_gb=spec.quota_gb, type="basic")

    def _mailbox_domain(self, code: str) -> str:
        try:
            return normalise_domain(_one(self._get(f"/api/domains/{code}", "domains.get"), "domains.get").get("name"))
        except ProviderError:
            return ""

    def update_mailbox(self, account_id: str, mailbox_id: str, changes: dict[str, Any]) -> Mailbox:
        code = self._domain_code(account_id, "mailboxes")
        mailbox = self._mailbox_code(mailbox_id)
        path = f"/api/domains/{code}/email_accounts/{mailbox}"
        body: dict[str, Any] = {}
        if "name" in changes:
            first, _, last = str(changes["name"] or "").strip().partition(" ")
            body.update(firstname=first, lastname=last.strip())
        if changes.get("quota_gb") is not None:
            body["quota"] = int(changes["quota_gb"]) * GIB
        password = changes.get("password")
        if password:
            if not strong_enough(password):
                raise ValidationError("qboxmail: the mailbox password is too weak", safe_message=WEAK_PASSWORD)
            body.update(password=password, password_confirmation=password)
        log.info("upstream %s update_mailbox %s in %s", self.name, mailbox, code)
        if body:
            self._put(path, "email_accounts.update", body, secret=password)
        if "enabled" in changes:
            self._call("PUT", f"{path}/status", "email_accounts.status",
                       json={"status": "enabled" if changes["enabled"] else "disabled"}, expect_json=False)
        return self._mailbox(_one(self._get(path, "email_accounts.get"), "email_accounts.get"))

    def delete_mailbox(self, account_id: str, mailbox_id: str) -> None:
        code = self._domain_code(account_id, "mailboxes")
        mailbox = self._mailbox_code(mailbox_id)
        log.info("upstream %s delete_mailbox %s in %s", self.name, mailbox, code)
        self._call("DELETE", f"/api/domains/{code}/email_accounts/{mailbox}", "email_accounts.delete",
                   expect_json=False)

    # --- relay (Delivery) accounts ------------------------------------------------------------
    def _find_relay(self, spec: AccountSpec) -> dict[str, Any] | None:
        """The service's relay account, by its description. Nothing upstream keeps
        descriptions unique, so this look-up is all that stands between a retried create
        and a second account: when ``query=`` finds nothing (whether it searches
        descriptions is unpublished) the whole list is paged through too."""
        description = description_for(spec)
        for params in ({"query": normalise_domain(spec.domain), "status": "all"}, {"status": "all"}):
            for resource in self._pages("/api/delivery/accounts", "delivery_accounts.list", params):
                if (str(resource.get("description") or "").strip() == description
                        and relay_status(resource) != AccountStatus.DELETED):
                    return resource
        return None

    def _relay_account(self, resource: dict[str, Any]) -> UpstreamAccount:
        relay_id = str(resource.get("id") or "").strip()
        if not _RELAY_ID.fullmatch(relay_id):
            raise MalformedResponse("qboxmail: a relay account without a valid id")
        match = _DESCRIPTION.fullmatch(str(resource.get("description") or "").strip())
        plan = str(resource.get("plan") or "")
        kind = str(resource.get("type") or "")
        limits: dict[str, Any] = {PRODUCT_LIMIT: RELAY, "relay_plan": plan,
                                  "relay_type": "transactional" if kind == "transactional" else "promotional"}
        for limit, key in (("relay_messages", "plan_num_messages"), ("relay_max_domains", "max_domains")):
            if _int(resource.get(key)) is not None:
                limits[limit] = _int(resource.get(key))
        return UpstreamAccount(
            id=relay_id, domain=normalise_domain(match["domain"]) if match else "",
            status=relay_status(resource), limits=limits,
            paid_until=_date(resource.get("plan_expiration_date")) if plan == "prepaid" else None,
            external_id=match["service"] if match else None, native=_clean_native(resource))

    def _relay_settings(self, spec: AccountSpec) -> dict[str, Any]:
        limits = spec.limits
        kind = str(limits.get("relay_type") or "transactional").lower()
        plan = str(limits.get("relay_plan") or "free").lower()
        if kind not in RELAY_TYPES:
            raise ValidationError(f"qboxmail: relay_type {kind!r}",
                                  safe_message="The relay type must be transactional or promotional.")
        if plan not in RELAY_PLANS:
            raise ValidationError(f"qboxmail: relay_plan {plan!r}",
                                  safe_message="The relay plan must be free, monthly or prepaid.")
        body: dict[str, Any] = {"description": description_for(spec), "type": RELAY_TYPES[kind], "plan": plan,
                                "allow_nets": []}
        if plan != "free" and limits.get("relay_messages") is not None:
            body["plan_num_messages"] = _int(limits["relay_messages"])
        if limits.get("relay_max_domains") is not None:
            body["max_domains"] = _int(limits["relay_max_domains"])
        email = (spec.client.email or "").strip()
        # Bounce notifications go to the client's address; without one, to each message's sender.
        if _EMAIL.fullmatch(email):
            body.update(bounce_notification=email.lower(), bounce_notification_to_sender=False)
        else:
            body["bounce_notification_to_sender"] = True
        if self.customer_code:
            body["customer_code"] = self.customer_code
        if plan != "free" and self.payment_method:
            body["payment_method"] = self.payment_method
        return body

    def _create_relay(self, spec: AccountSpec) -> UpstreamAccount:
        body = self._relay_settings(spec)
        log.info("upstream %s create_account %s (relay %s/%s, service %s)", self.name,
                 normalise_domain(spec.domain), body["type"], body["plan"], spec.service_id)
        # Nothing upstream makes a description unique: look up first so a retried create adopts.
        existing = self._find_relay(spec)
        if existing is not None:
            log.info("upstream %s adopts the existing relay account %s", self.name, existing.get("id"))
            return self._relay_account(existing)
        try:
            # The answer carries the password: no bodies in the logs at all.
            answer = self._call("POST", "/api/delivery/accounts", "delivery_accounts.create", json=body,
                                log_bodies=False)
        except Conflict as err:
            existing = self._find_relay(spec) if already_exists(err) else None
            if existing is None:
                raise
            return self._relay_account(existing)
        resource = dict(_one(answer.data, "delivery_accounts.create"))
        password = resource.pop("password", None)
        account = self._relay_account(resource)
        if isinstance(password, str) and password:
            self._remember_secret(password)
            account.one_time_secrets = {"relay_password": password}
        else:
            log.warning("upstream %s: relay account %s was created without a password in the answer; "
                        "the customer must regenerate it", self.name, account.id)
        return account

    def _relay_limit_changes(self, current: dict[str, Any], limits: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if "relay_type" in limits:
            kind = RELAY_TYPES.get(str(limits["relay_type"]).lower())
            if kind is None:
                raise ValidationError(f"qboxmail: relay_type {limits['relay_type']!r}",
                                      safe_message="The relay type must be transactional or promotional.")
            if kind != current.get("type"):
                raise ValidationError("qboxmail: the type of a relay account cannot be changed",
                                      safe_message="The sending type of an SMTP relay account cannot be "
                                                   "changed; order a new relay account instead.")
        plan = str(limits.get("relay_plan") or current.get("plan") or "").lower()
        if "relay_plan" in limits and plan != current.get("plan"):
            if plan not in RELAY_PLANS:
                raise ValidationError(f"qboxmail: relay_plan {plan!r}",
                                      safe_message="The relay plan must be free, monthly or prepaid.")
            body["plan"] = plan
            if plan != "free" and self.payment_method:
                body["payment_method"] = self.payment_method
        messages = _int(limits.get("relay_messages"))
        if messages is not None and messages != _int(current.get("plan_num_messages")):
            if plan == "free":
                raise ValidationError("qboxmail: the free plan's message quota is fixed",
                                      safe_message="The message quota of a free relay account cannot be changed.")
            body["plan_num_messages"] = messages
        max_domains = _int(limits.get("relay_max_domains"))
        if max_domains is not None and max_domains != _int(current.get("max_domains")):
            body["max_domains"] = max_domains
        return body

    def _relay(self, account_id: str, what: str) -> tuple[str, dict[str, Any]]:
        relay_id = self._relay_id(account_id, what)
        return relay_id, _one(self._get(f"/api/delivery/accounts/{relay_id}", "delivery_accounts.get"),
                              "delivery_accounts.get")

    def relay_regenerate_password(self, account_id: str) -> str:
        """A new SMTP password for the relay account, returned once: show it to whoever
        asked and keep it nowhere (the old one stops working)."""
        relay_id = self._relay_id(account_id, "relay_regenerate_password")
        log.info("upstream %s relay_regenerate_password %s", self.name, relay_id)
        # Not repeated by the client: a repeat would replace the password it just answered.
        data = self._put(f"/api/delivery/accounts/{relay_id}/password", "delivery_accounts.password", {},
                         idempotent=False, log_bodies=False)
        password = _one(data, "delivery_accounts.password").get("password")
        if not isinstance(password, str) or not password:
            raise MalformedResponse(f"{self.name} delivery_accounts.password: no password in the answer",
                                    action="delivery_accounts.password")
        self._remember_secret(password)
        return password

    def relay_set_allowed_ips(self, account_id: str, ips: list[str]) -> list[str]:
        """The addresses allowed to send without authentication (IPs or networks)."""
        relay_id = self._relay_id(account_id, "relay_set_allowed_ips")
        nets = []
        for ip in ips:
            try:
                nets.append(str(ipaddress.ip_network(str(ip).strip(), strict=False)))
            except ValueError:
                raise ValidationError(f"qboxmail: {str(ip)[:60]!r} is not an IP address or network",
                                      safe_message=f"{str(ip)[:60]} is not a valid IP address or network.") from None
        nets = list(dict.fromkeys(nets))
        log.info("upstream %s relay_set_allowed_ips %s (%d)", self.name, relay_id, len(nets))
        self._put(f"/api/delivery/accounts/{relay_id}", "delivery_accounts.update", {"allow_nets": nets})
        return nets

    def relay_set_bounce_address(self, account_id: str, email: str | None) -> None:
        """Where bounce notifications go; empty: back to each message's sender."""
        relay_id = self._relay_id(account_id, "relay_set_bounce_address")
        email = (email or "").strip().lower()
        if email and not _EMAIL.fullmatch(email):
            raise ValidationError("qboxmail: not an e-mail address", safe_message="Enter a valid e-mail address.")
        body = ({"bounce_notification": email, "bounce_notification_to_sender": False} if email
                else {"bounce_notification": "", "bounce_notification_to_sender": True})
        self._put(f"/api/delivery/accounts/{relay_id}", "delivery_accounts.update", body)

    @staticmethod
    def _associated(resource: dict[str, Any]) -> list[dict[str, str]]:
        domains = resource.get("domains")
        return [{"code": str(d.get("code")), "name": normalise_domain(d.get("name"))}
                for d in domains if isinstance(d, dict) and d.get("code")] if isinstance(domains, list) else []

    def relay_associate_domain(self, account_id: str, domain: str) -> None:
        """Let the relay account send for ``domain`` (created as a Delivery domain if
        needed; it still needs its DNS records verified before mail flows)."""
        relay_id, resource = self._relay(account_id, "relay_associate_domain")
        name = normalise_domain(domain)
        associated = self._associated(resource)
        if any(d["name"] == name for d in associated):
            return
        maximum = _int(resource.get("max_domains"))
        if maximum is not None and len(associated) >= maximum:
            raise LimitExceeded(f"qboxmail: relay account {relay_id} has {len(associated)} of {maximum} domains",
                                safe_message=f"This relay account already has the most sender domains its "
                                             f"plan allows ({maximum}). Remove one first.")
        code = self._delivery_domain(name)
        log.info("upstream %s relay_associate_domain %s %s", self.name, relay_id, name)
        self._put(f"/api/delivery/accounts/{relay_id}", "delivery_accounts.update",
                  {"domain_codes": [d["code"] for d in associated] + [code]})

    def relay_dissociate_domain(self, account_id: str, domain: str) -> None:
        relay_id, resource = self._relay(account_id, "relay_dissociate_domain")
        name = normalise_domain(domain)
        associated = self._associated(resource)
        if all(d["name"] != name for d in associated):
            return                                     # the goal holds
        log.info("upstream %s relay_dissociate_domain %s %s", self.name, relay_id, name)
        self._put(f"/api/delivery/accounts/{relay_id}", "delivery_accounts.update",
                  {"domain_codes": [d["code"] for d in associated if d["name"] != name]})

    def _delivery_domain(self, name: str) -> str:
        for resource in self._pages("/api/delivery/domains", "delivery_domains.list", {"query": name}):
            if normalise_domain(resource.get("name")) == name and resource.get("code"):
                return str(resource["code"])
        body: dict[str, Any] = {"name": name}
        if self.customer_code:
            body["customer_code"] = self.customer_code
        try:
            return str(_one(self._call("POST", "/api/delivery/domains", "delivery_domains.create",
                                       json=body).data, "delivery_domains.create")["code"])
        except Conflict as err:
            raise Conflict(err.message, safe_message="This sender domain is already used by another "
                                                     "customer of the e-mail platform.",
                           action="delivery_domains.create") from None
        except KeyError:
            raise MalformedResponse(f"{self.name} delivery_domains.create: no code",
                                    action="delivery_domains.create") from None

    def relay_usage(self, account_id: str) -> dict[str, Any]:
        """Messages sent and left, the plan's quota and when it expires or renews."""
        _, resource = self._relay(account_id, "relay_usage")
        expires = (_date(resource.get("plan_expiration_date")) or _date(resource.get("next_renewal_date")))
        return {"plan": resource.get("plan"), "status": relay_status(resource).value,
                "messages_sent": _int(resource.get("messages_sent"), 0),
                "messages_remaining": _int(resource.get("remaining_messages")),
                "quota": _int(resource.get("plan_num_messages")),
                "extra_messages": _int(resource.get("extra_messages_total"), 0),
                "expires": expires.isoformat() if expires else None,
                "domains": [d["name"] for d in self._associated(resource)],
                "max_domains": _int(resource.get("max_domains")),
                "username": resource.get("username"),
                "smtp_host": resource.get("config_hostname")}
