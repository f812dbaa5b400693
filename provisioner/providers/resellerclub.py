"""Adapter for ResellerClub (LogicBoxes) Enterprise Email and Business Email (docs/providers/resellerclub.md).

One ResellerClub *order* per billing service; the order id is the account id.
Orders belong to an upstream *customer*, found by username (the billing
client's e-mail address) or signed up on first use. The domain identifies the
order upstream (``orderid.json``), which is what makes a retried create adopt
instead of ordering twice.

Every call carries ``auth-userid`` and ``api-key`` (query string on GET, form
body on POST). Errors come as ``{"status": "ERROR", "message": ...}`` in any
HTTP status, also 200, and a write can answer ``"status": "Failed"`` /
``"actionstatus": "Failed"`` with ``actionstatusdesc``; ``resellerclub_error``
turns every such shape into the error hierarchy (by their text, since the API
has no error codes). Write answers of PayInvoice/KeepInvoice may come nested
under the invoice id; ``unwrap`` and ``WriteAnswer`` read them.
"""
from __future__ import annotations

import calendar
import datetime as dt
import logging
import re
import secrets
import string
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from .base import (
    AccountSpec,
    AccountStatus,
    Capability,
    ClientInfo,
    DnsRecord,
    Page,
    PriceRow,
    Provider,
    UpstreamAccount,
    Usage,
    cycle_months,
)
from .errors import (
    AuthError,
    ConfigurationError,
    Conflict,
    MalformedResponse,
    NotFound,
    ProviderError,
    RateLimited,
    Unavailable,
    ValidationError,
)
from .http import HttpClient, parse_retry_after

log = logging.getLogger("provisioner.upstream.resellerclub")

INVOICE_OPTIONS = ("NoInvoice", "PayInvoice", "KeepInvoice", "OnlyAdd")
MAX_RECORDS = 500                 # no-of-records we ask for at most per search page
DEFAULT_RENEW_GRACE_DAYS = 7
MAX_RENEW_MONTHS = 120


# --- product lines ----------------------------------------------------------------

@dataclass(frozen=True)
class ProductLine:
    """One ResellerClub e-mail product on one server: its API path and product key."""
    product: str                  # the ``email_product`` limit: enterpriseemail | eelite
    region: str                   # the ``region`` limit: us | in
    key: str                      # ResellerClub's product key (details' productkey, price tables)

    @property
    def path(self) -> str:
        return f"{self.product}/{self.region}"

    def limits(self) -> dict[str, str]:
        return {"region": self.region, "email_product": self.product}


PRODUCT_LINES: dict[str, ProductLine] = {line.path: line for line in (
    ProductLine("enterpriseemail", "us", "enterpriseemailus"),
    ProductLine("enterpriseemail", "in", "enterpriseemailin"),
    ProductLine("eelite", "us", "eeliteus"),      # Business Email
    # Business Email's India and UK keys; their API paths follow the {product}/{region}
    # pattern of the others (unverified, see the doc), so they are opt-in.
    ProductLine("eelite", "in", "eelitein"),
    ProductLine("eelite", "uk", "eeliteuk"),
)}
LINES_BY_KEY = {line.key: line for line in PRODUCT_LINES.values()}
#: the lines used when ``product_lines`` is not set: those whose paths are verified
DEFAULT_LINES = ("enterpriseemail/us", "enterpriseemail/in", "eelite/us")
EMAIL_PRODUCTS = ("enterpriseemail", "eelite")
REGIONS = ("us", "in", "uk")

# currentstatus values (details, search) -> ours
STATUSES: dict[str, AccountStatus] = {
    "inactive": AccountStatus.PENDING,
    "active": AccountStatus.ACTIVE,
    "suspended": AccountStatus.SUSPENDED,
    "pending delete restorable": AccountStatus.DELETED,
    "deleted": AccountStatus.DELETED,
    "archived": AccountStatus.DELETED,
}


def order_status(value: Any) -> AccountStatus:
    """Our status for a ``currentstatus``; unknown ones count as not yet usable."""
    return STATUSES.get(" ".join(str(value or "").split()).lower(), AccountStatus.PENDING)


# --- errors ---------------------------------------------------------------------------

# Fragments of ResellerClub's error texts, matched lower-case. The API has no
# error codes; these follow the wordings its documentation and clients show.
AUTH_FRAGMENTS = ("access denied", "invalid credentials", "authentication", "not authorized",
                  "unauthorized", "whitelist", "white list", "api-key", "api key", "apikey",
                  "auth-userid", "reseller not found", "invalid reseller")
RATE_FRAGMENTS = ("too many requests", "rate limit")
NOT_FOUND_FRAGMENTS = ("not found", "no entity found", "no order", "no record", "no customer",
                       "doesn't exist", "does not exist", "could not find", "no such",
                       "invalid order id", "invalid order-id")
CONFLICT_FRAGMENTS = ("already", "duplicate", "exists for")
VALIDATION_FRAGMENTS = ("invalid", "required", "must ", "should ", "not allowed", "cannot",
                        "can not", "insufficient", "not valid", "exceed", "missing", "not supported")


def _has(text: str, fragments: Iterable[str]) -> bool:
    return any(fragment in text for fragment in fragments)


def unwrap(body: Any) -> Any:
    """A write answer without the invoice-id level that PayInvoice/KeepInvoice put
    around it (``{"78877737": {...}}``); anything else unchanged."""
    if isinstance(body, Mapping) and len(body) == 1:
        (key, inner), = body.items()
        if str(key).isdigit() and isinstance(inner, Mapping):
            return inner
    return body


FAILED = "failed"


def _error_text(body: Any) -> str | None:
    """The message of an error answer, or None if ``body`` is not one."""
    body = unwrap(body)
    if not isinstance(body, Mapping):
        return None
    status = str(body.get("status", "")).strip().lower()
    if status == "error":
        return str(body.get("message") or body.get("error") or "error").strip()
    if status == FAILED or str(body.get("actionstatus", "")).strip().lower() == FAILED:
        # a write the upstream accepted and then refused
        return str(body.get("actionstatusdesc") or body.get("message")
                   or "the action failed").strip()
    return None


def classify_error(message: str, status: int, retry_after: float | None = None) -> ProviderError:
    """The ProviderError for a ResellerClub error text answered with HTTP ``status``."""
    text = message.lower()
    if _has(text, AUTH_FRAGMENTS):
        return AuthError(message)
    if status == 429 or _has(text, RATE_FRAGMENTS):
        return RateLimited(message, retry_after=retry_after)
    if _has(text, NOT_FOUND_FRAGMENTS):
        return NotFound(message)
    if _has(text, CONFLICT_FRAGMENTS):
        return Conflict(message)
    if _has(text, VALIDATION_FRAGMENTS):
        return ValidationError(message)
    if status >= 500 or status == 408:
        # A server fault, or a refusal we cannot recognise: another attempt may help.
        return Unavailable(message)
    return ValidationError(message)


FAILED_SAFE_MESSAGE = "The e-mail platform could not carry out the request."


def resellerclub_error(response: requests.Response, body: Any) -> ProviderError | None:
    """HttpClient error mapper: ``{"status": "ERROR", "message": ...}`` in any HTTP
    status, and write answers whose ``status`` or ``actionstatus`` is ``Failed``.

    Errors made from an answer carry ``refused = True``: the upstream read the call
    and said no, which is not the same as a broken connection or server."""
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get("Retry-After")) if status in (429, 503) else None
    message = _error_text(body)
    if message is None:
        if status == 429:
            return RateLimited(retry_after=retry_after)
        return None            # a plain HTTP error: the status mapping applies
    err = classify_error(message, status, retry_after)
    inner = unwrap(body)
    if str(inner.get("status", "")).strip().lower() != "error" and type(err) is ValidationError:
        err.safe_message = FAILED_SAFE_MESSAGE      # a Failed action: never its own text
    err.refused = True         # type: ignore[attr-defined]
    return err


@dataclass(frozen=True)
class WriteAnswer:
    """What a write (add, renew, add/delete-email-account, ...) answered, unwrapped."""
    entity_id: str | None         # the order id; absent with OnlyAdd
    action_type: str              # Add, Renew, AddEmailAccount, DeleteEmailAccount, ...
    action_status: str            # InvoicePaid, PendingExecution, ExecutionStarted, ...
    invoice_id: str | None

    @classmethod
    def of(cls, body: Any) -> "WriteAnswer":
        data = unwrap(body)
        if not isinstance(data, Mapping):
            data = {}
        invoice = data.get("invoiceid")
        if invoice is None and isinstance(body, Mapping) and data is not body:
            invoice = next(iter(body))                  # the nesting key is the invoice id
        return cls(entity_id=_order_id(data.get("entityid")),
                   action_type=str(data.get("actiontype") or ""),
                   action_status=str(data.get("actionstatus") or ""),
                   invoice_id=_order_id(invoice))


# --- small conversions ------------------------------------------------------------

def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` plus calendar months, clamped to the month's end (Jan 31 + 1 = Feb 28/29)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def renew_months(paid_until: dt.date, until: dt.date, grace_days: int = 0) -> int:
    """Whole months to add to ``paid_until`` to reach ``until``, never ending more than
    ``grace_days`` after it (0 when nothing is due)."""
    limit = until + dt.timedelta(days=max(0, grace_days))
    months = 0
    while months < MAX_RENEW_MONTHS and add_months(paid_until, months + 1) <= limit:
        months += 1
    return months


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        try:
            number = float(str(value).strip())
        except (TypeError, ValueError):
            return None
        return int(number) if number.is_integer() else None


def _epoch_date(value: Any) -> dt.date | None:
    """A date (UTC) from a Unix timestamp as ResellerClub sends it ("1795089600")."""
    seconds = _int(value)
    if seconds is None or seconds <= 0:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).date()


def _order_id(value: Any) -> str | None:
    text = str(value).strip() if value is not None and not isinstance(value, bool) else ""
    return text if text.isdigit() and int(text) > 0 else None


_PHONE = re.compile(r"^\+?\s*(\d{1,4})\s*[.\s-]\s*([\d\s().-]{4,})$")


def split_phone(phone: str) -> tuple[str, str] | None:
    """(country code, number) from "+49.3012345678" (WHMCS) or "+49 30 1234567"."""
    match = _PHONE.match((phone or "").strip())
    if not match:
        return None
    number = re.sub(r"\D", "", match.group(2))
    return (match.group(1), number) if len(number) >= 4 else None


# LogicBoxes' two published customer password policies: the 2015 one (8-15
# characters; lower, upper, digit and one of @#$%^&+=.\\-_*; not the name) and
# the newer one of the v2 APIs (9-16 characters; lower, upper, digit and one of
# ~*!@$#%_+.?:,{}). A password in both: 9-15 characters, symbols from both sets.
PASSWORD_SYMBOLS = "@#$%+._*"
PASSWORD_LENGTH = 12


def new_customer_password(length: int = PASSWORD_LENGTH, avoid: Iterable[str] = ()) -> str:
    """A random password both LogicBoxes policies accept (see PASSWORD_SYMBOLS).

    ``avoid``: words (the customer's name) the password must not contain. Never
    stored or logged: the provisioner acts through the reseller's API key; a
    customer who needs the panel resets it there."""
    if not 9 <= length <= 15:
        raise ValueError("a LogicBoxes password has 9-15 characters under both policies")
    words = [w.lower() for w in avoid if len(w) >= 3]
    classes = (string.ascii_uppercase, string.ascii_lowercase, string.digits, PASSWORD_SYMBOLS)
    pool = "".join(classes)
    while True:
        chars = [secrets.choice(c) for c in classes]
        chars += [secrets.choice(pool) for _ in range(length - len(chars))]
        secrets.SystemRandom().shuffle(chars)
        password = "".join(chars)
        if not any(w in password.lower() for w in words):
            return password


PURPOSES = {"MX": "mail delivery", "CNAME": "webmail and client set-up", "SRV": "client set-up"}


def _dns_record(data: Any) -> DnsRecord | None:
    if not isinstance(data, Mapping):
        return None
    kind = str(data.get("type") or "").strip().upper()
    host = str(data.get("host") or "").strip()
    value = str(data.get("value") or "").strip()
    if not (kind and host and value):
        return None
    priority = None
    if kind == "MX":
        first, _, rest = value.partition(" ")
        if first.isdigit() and rest.strip():        # "10 mx1.example.net"
            priority, value = int(first), rest.strip()
    purpose = PURPOSES.get(kind, "")
    if kind == "TXT":
        purpose = "SPF" if value.lower().startswith("v=spf1") else "ownership check"
    return DnsRecord(type=kind, host=host, value=value, priority=priority, purpose=purpose)


def _range_start(accounts: str) -> int:
    return _int(accounts.split("-", 1)[0]) or 0


def _price_cells(data: Any) -> dict[tuple[str, str, str, int], float]:
    """``{(product key, account range, action, months): price}`` of a price answer.

    The answer maps every product of the reseller; e-mail products are those with
    ``email_account_ranges`` (``range -> add|renew -> {months: price}``)."""
    cells: dict[tuple[str, str, str, int], float] = {}
    if not isinstance(data, Mapping):
        raise MalformedResponse("resellerclub: a price table must be an object")
    for product, spec in data.items():
        ranges = spec.get("email_account_ranges") if isinstance(spec, Mapping) else None
        if not isinstance(ranges, Mapping):
            continue
        for accounts, actions in ranges.items():
            if not isinstance(actions, Mapping):
                continue
            for action, tenures in actions.items():
                if not isinstance(tenures, Mapping):
                    continue
                for months, price in tenures.items():
                    n = _int(months)
                    try:
                        value = float(price)
                    except (TypeError, ValueError):
                        continue
                    if n is not None and n > 0:
                        cells[(str(product), str(accounts), str(action).lower(), n)] = value
    return cells


# --- the adapter ------------------------------------------------------------------

class ResellerClubProvider(Provider):
    kind = "resellerclub"
    capabilities = frozenset({
        Capability.SUSPEND, Capability.LIMITS, Capability.TERMS, Capability.BULK_LIST,
        Capability.DNS, Capability.PRICING,
    })
    extra_limits = frozenset({"region", "email_product"})
    # An order lives on one product line: another region or product is a new order.
    fixed_limits = frozenset({"region", "email_product"})
    required_settings = ("base_url", "auth_userid", "api_key")

    CUSTOMER_DEFAULT_KEYS = frozenset({"address", "city", "state", "postcode", "zipcode", "country",
                                       "phone", "phone_cc", "language"})

    def __init__(self, name: str, config: dict[str, Any], *, session: requests.Session | None = None):
        super().__init__(name, config)
        for key in self.required_settings:
            if not str(config.get(key) or "").strip():
                raise ConfigurationError(f"upstream {name}: {key} is required")
        self._auth = (("auth-userid", str(config["auth_userid"]).strip()),
                      ("api-key", str(config["api_key"]).strip()))
        self.invoice_option = self._invoice_option(config.get("invoice_option"))
        self.lines = self._product_lines(config.get("product_lines"))
        self.customer_defaults = self._customer_defaults(config.get("customer_defaults"))
        self.renew_grace_days = self._whole_number(config, "renew_grace_days", DEFAULT_RENEW_GRACE_DAYS)
        self.http = HttpClient(
            name, str(config["base_url"]),
            timeout=self._timeout(config.get("timeout")),
            secrets=[self._auth[1][1]],
            error_mapper=resellerclub_error,
            session=session,
        )
        # order id -> product line, learnt from creates and look-ups (calls by id need the path)
        self._order_lines: dict[str, ProductLine] = {}
        self._lock = threading.Lock()

    # --- settings -----------------------------------------------------------------
    def _invoice_option(self, value: Any) -> str:
        option = str(value or "NoInvoice").strip()
        if option not in INVOICE_OPTIONS:
            raise ConfigurationError(f"upstream {self.name}: invoice_option must be one of "
                                     f"{', '.join(INVOICE_OPTIONS)} (got {option!r})")
        return option

    def _product_lines(self, value: Any) -> tuple[ProductLine, ...]:
        if value in (None, "", []):
            return tuple(PRODUCT_LINES[path] for path in DEFAULT_LINES)
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list):
            raise ConfigurationError(f"upstream {self.name}: product_lines must be a list")
        lines = []
        for item in names:
            line = PRODUCT_LINES.get(str(item).strip().lower())
            if line is None:
                raise ConfigurationError(f"upstream {self.name}: unknown product line {item!r} "
                                         f"(known: {', '.join(PRODUCT_LINES)})")
            lines.append(line)
        return tuple(dict.fromkeys(lines))

    def _customer_defaults(self, value: Any) -> dict[str, str]:
        if value in (None, ""):
            return {}
        if not isinstance(value, Mapping):
            raise ConfigurationError(f"upstream {self.name}: customer_defaults must be a mapping")
        unknown = set(value) - self.CUSTOMER_DEFAULT_KEYS
        if unknown:
            raise ConfigurationError(f"upstream {self.name}: customer_defaults: unknown key(s) "
                                     f"{', '.join(sorted(map(str, unknown)))}")
        return {str(k): str(v).strip() for k, v in value.items() if v not in (None, "")}

    def _whole_number(self, config: dict[str, Any], key: str, default: int) -> int:
        value = config.get(key)
        if value in (None, ""):
            return default
        number = _int(value)
        if number is None or number < 0:
            raise ConfigurationError(f"upstream {self.name}: {key} must be a whole number >= 0")
        return number

    def _timeout(self, value: Any) -> float | tuple[float, float]:
        if value in (None, ""):
            return (5, 30)
        try:
            timeout = float(value)
        except (TypeError, ValueError):
            raise ConfigurationError(f"upstream {self.name}: timeout must be a number of seconds") from None
        if timeout <= 0:
            raise ConfigurationError(f"upstream {self.name}: timeout must be positive")
        return timeout

    def close(self) -> None:
        self.http.close()

    # --- calls --------------------------------------------------------------------
    def _get(self, path: str, action: str, params: Iterable[tuple[str, Any]] = ()) -> Any:
        return self.http.get(path, action=action, params=[*self._auth, *params])

    def _post(self, path: str, action: str, data: Iterable[tuple[str, Any]] = (), *,
              idempotent: bool = False, log_bodies: bool = True) -> Any:
        return self.http.request("POST", path, action=action, data=[*self._auth, *data],
                                 idempotent=idempotent, log_bodies=log_bodies).data

    # --- product lines --------------------------------------------------------------
    def line_for_limits(self, limits: Mapping[str, Any]) -> ProductLine:
        """The product line a product's limits select (default: Enterprise Email, US)."""
        product = str(limits.get("email_product") or "enterpriseemail").strip().lower()
        region = str(limits.get("region") or "us").strip().lower()
        if product not in EMAIL_PRODUCTS:
            raise ConfigurationError(f"upstream {self.name}: email_product must be one of "
                                     f"{', '.join(EMAIL_PRODUCTS)} (got {product!r})")
        if region not in REGIONS:
            raise ConfigurationError(f"upstream {self.name}: region must be one of "
                                     f"{', '.join(REGIONS)} (got {region!r})")
        line = PRODUCT_LINES.get(f"{product}/{region}")
        if line is None:
            raise ConfigurationError(f"upstream {self.name}: {product} is not sold in region {region}")
        if line not in self.lines:
            raise ConfigurationError(f"upstream {self.name}: product line {line.path} is not in "
                                     f"its product_lines")
        return line

    def _remember(self, order_id: str, line: ProductLine) -> None:
        with self._lock:
            self._order_lines[order_id] = line

    def _known_line(self, order_id: str) -> ProductLine | None:
        with self._lock:
            return self._order_lines.get(order_id)

    def _details(self, order_id: str, action: str = "get_account") -> tuple[dict[str, Any], ProductLine]:
        """An order's ``details.json`` and its product line (probed when not known yet)."""
        if _order_id(order_id) is None:
            raise NotFound(f"{self.name} {action}: {order_id!r} is not a ResellerClub order id",
                           action=action)
        known = self._known_line(order_id)
        for line in ([known] if known else self.lines):
            try:
                data = self._get(f"{line.path}/details.json", action, [("order-id", order_id)])
            except NotFound:
                continue
            if not isinstance(data, Mapping):
                raise MalformedResponse(f"{self.name} {action}: order details must be an object",
                                        action=action)
            # The answer's product key names the line, should another path have answered.
            line = LINES_BY_KEY.get(str(data.get("productkey") or ""), line)
            self._remember(order_id, line)
            return dict(data), line
        raise NotFound(f"{self.name} {action}: no order {order_id}", action=action)

    def _line_of(self, order_id: str, action: str) -> ProductLine:
        """The product line of an order: known already, else from its details."""
        known = self._known_line(order_id) if _order_id(order_id) else None
        return known or self._details(order_id, action)[1]

    def _account(self, data: Mapping[str, Any], line: ProductLine) -> UpstreamAccount:
        order_id = _order_id(data.get("entityid") if data.get("entityid") is not None else data.get("orderid"))
        if order_id is None:
            raise MalformedResponse(f"{self.name}: order details without an entityid")
        limits: dict[str, Any] = {}
        mailboxes = _int(data.get("emailaccounts"))
        if mailboxes is not None:
            limits["mailboxes"] = mailboxes
        limits.update(line.limits())
        return UpstreamAccount(
            id=order_id,
            domain=str(data.get("domainname") or data.get("description") or "").lower(),
            status=order_status(data.get("currentstatus")),
            limits=limits,
            # The API does not report how many of the accounts are in use.
            usage=Usage(),
            paid_until=_epoch_date(data.get("endtime")),
            native=dict(data),
        )

    # --- connection -------------------------------------------------------------
    def test_connection(self) -> None:
        line = self.lines[0]
        data = self._get(f"{line.path}/search.json", "ping", [("no-of-records", 1), ("page-no", 1)])
        if not (isinstance(data, Mapping) and "recsindb" in data):
            raise MalformedResponse(f"{self.name} ping: unexpected answer", action="ping")

    # --- accounts -----------------------------------------------------------------
    def _lookup_order_id(self, line: ProductLine, domain: str, action: str) -> str | None:
        try:
            data = self._get(f"{line.path}/orderid.json", action, [("domain-name", domain)])
        except NotFound:
            return None
        if isinstance(data, (dict, list)):
            raise MalformedResponse(f"{self.name} {action}: orderid.json must answer a number",
                                    action=action)
        return _order_id(data)        # None for "", "null", 0 and other non-ids

    def find_account(self, spec: AccountSpec) -> UpstreamAccount | None:
        line = self.line_for_limits(spec.limits)
        domain = spec.domain.strip().lower()
        order_id = self._lookup_order_id(line, domain, "find_account")
        if order_id is None:
            return None
        self._remember(order_id, line)
        try:
            data, found_line = self._details(order_id, "find_account")
        except NotFound:
            return None
        account = self._account(data, found_line)
        return None if account.status is AccountStatus.DELETED else account

    def get_account(self, account_id: str) -> UpstreamAccount:
        data, line = self._details(str(account_id))
        return self._account(data, line)

    def _mailboxes(self, limits: Mapping[str, Any]) -> int:
        number = _int(limits.get("mailboxes", 1))
        if number is None or number < 1:
            raise ValidationError(f"{self.name}: a ResellerClub order needs at least one e-mail "
                                  f"account (mailboxes is {limits.get('mailboxes')!r})",
                                  safe_message="The plan must include at least one mailbox.")
        return number

    def create_account(self, spec: AccountSpec) -> UpstreamAccount:
        line = self.line_for_limits(spec.limits)
        accounts = self._mailboxes(spec.limits)
        existing = self.find_account(spec)
        if existing is not None:
            return existing               # an earlier attempt (or someone) ordered it: adopt
        customer_id = self._customer_id(spec.client)
        try:
            answer = self._post(f"{line.path}/add.json", "create_account", [
                ("domain-name", spec.domain.strip().lower()),
                ("customer-id", customer_id),
                ("months", cycle_months(spec.billing_cycle)),
                ("no-of-accounts", accounts),
                # renewals follow the billing system's renew events, never ResellerClub's own
                ("auto-renew", "false"),
                ("invoice-option", self.invoice_option),
            ])
        except Conflict:
            existing = self.find_account(spec)
            if existing is None:
                raise
            return existing
        written = self._written(answer, "create_account")
        order_id = written.entity_id
        if order_id is None:
            # OnlyAdd (and answers we cannot read) name no order: adopt it by its domain,
            # as a retry would; never order again.
            adopted = self.find_account(spec)
            if adopted is None:
                raise MalformedResponse(
                    f"{self.name} create_account: the answer names no order and orderid.json "
                    f"finds none for {spec.domain} yet (action {written.action_status or '?'})",
                    action="create_account")
            order_id = adopted.id
        self._remember(order_id, line)
        log.info("upstream %s: ordered %s for service %s as order %s (%s %s)", self.name, line.key,
                 spec.service_id, order_id, written.action_type or "?",
                 written.action_status or "?")
        return self.get_account(order_id)

    def _written(self, answer: Any, action: str) -> WriteAnswer:
        """A write's answer read. The error mapper already raises on every Failed shape;
        this check keeps a Failed answer from ever counting as done should one get past."""
        message = _error_text(answer)
        if message is not None:
            err = classify_error(message, 200)
            if type(err) is ValidationError:
                err.safe_message = FAILED_SAFE_MESSAGE
            err.action = action
            raise err
        written = WriteAnswer.of(answer)
        log.debug("upstream %s %s: %s %s (invoice %s)", self.name, action, written.action_type,
                  written.action_status, written.invoice_id)
        return written

    def delete_account(self, account_id: str) -> None:
        try:
            line = self._line_of(str(account_id), "delete_account")
        except NotFound:
            return                        # gone already: the goal holds
        try:
            self._post(f"{line.path}/delete.json", "delete_account", [("order-id", account_id)],
                       idempotent=True)
        except (NotFound, Conflict, ValidationError):
            # e.g. "already deleted" after a retry whose first attempt was applied
            if not self._is(account_id, AccountStatus.DELETED):
                raise

    def suspend_account(self, account_id: str, reason: str) -> None:
        try:
            self._post("orders/suspend.json", "suspend_account",
                       [("order-id", account_id), ("reason", (reason or "Suspended")[:255])],
                       idempotent=True)
        except (Conflict, ValidationError):
            if not self._is(account_id, AccountStatus.SUSPENDED):
                raise

    def unsuspend_account(self, account_id: str) -> None:
        try:
            self._post("orders/unsuspend.json", "unsuspend_account", [("order-id", account_id)],
                       idempotent=True)
        except (Conflict, ValidationError):
            if not self._is(account_id, AccountStatus.ACTIVE):
                raise

    def _is(self, account_id: str, status: AccountStatus) -> bool:
        """Whether the order already is in ``status`` (an order gone entirely counts as deleted),
        so that a call ResellerClub refused as redundant can count as done."""
        try:
            return self.get_account(account_id).status is status
        except NotFound:
            return status is AccountStatus.DELETED

    def set_limits(self, account_id: str, limits: dict[str, Any]) -> None:
        data, line = self._details(str(account_id), "set_limits")
        for key, value in line.limits().items():
            wanted = limits.get(key)
            if wanted is not None and str(wanted).strip().lower() != value:
                raise ValidationError(
                    f"{self.name}: order {account_id} is {line.path}; {key} {wanted!r} would need "
                    f"a new order (terminate and create)",
                    safe_message="This change needs a new order on the e-mail platform.")
        if "mailboxes" not in limits:
            return
        want = self._mailboxes(limits)
        have = _int(data.get("emailaccounts"))
        if have is None:
            raise MalformedResponse(f"{self.name} set_limits: order {account_id} has no emailaccounts")
        # Relative changes: not idempotent, so never retried blindly; a retried job
        # reads the count again and asks only for what is still missing.
        if want > have:
            # PayInvoice/KeepInvoice answer under the invoice id, OnlyAdd without entityid
            self._written(self._post(f"{line.path}/add-email-account.json", "set_limits",
                                     [("order-id", account_id), ("no-of-accounts", want - have),
                                      ("invoice-option", self.invoice_option)]), "set_limits")
        elif want < have:
            self._written(self._post(f"{line.path}/delete-email-account.json", "set_limits",
                                     [("order-id", account_id), ("no-of-accounts", have - want)]),
                          "set_limits")

    def renew(self, account_id: str, until: dt.date) -> dt.date | None:
        data, line = self._details(str(account_id), "renew")
        end = _epoch_date(data.get("endtime"))
        if end is None:
            raise MalformedResponse(f"{self.name} renew: order {account_id} has no endtime")
        months = renew_months(end, until, self.renew_grace_days)
        if months == 0:
            return None                   # already paid up to until (or less than a month short)
        # no-of-accounts on renew.json is how many accounts to *add* with the renewal:
        # none, since account changes go through add-email-account (set_limits).
        self._written(self._post(f"{line.path}/renew.json", "renew",
                                 [("order-id", account_id), ("months", months),
                                  ("no-of-accounts", 0), ("auto-renew", "false"),
                                  ("invoice-option", self.invoice_option)]), "renew")
        return add_months(end, months)

    # --- bulk reads -------------------------------------------------------------------
    def _search_page(self, line: ProductLine, page: int, per_page: int,
                     action: str) -> tuple[list[UpstreamAccount], int]:
        data = self._get(f"{line.path}/search.json", action,
                         [("no-of-records", per_page), ("page-no", page)])
        return self.parse_search(data, line)

    def parse_search(self, data: Any, line: ProductLine) -> tuple[list[UpstreamAccount], int]:
        """(orders, recsindb) of a ``search.json`` answer: numbered keys, dotted field names."""
        if not isinstance(data, Mapping):
            raise MalformedResponse(f"{self.name}: a search answer must be an object")
        total = _int(data.get("recsindb"))
        if total is None:
            raise MalformedResponse(f"{self.name}: a search answer without recsindb")
        rows = sorted(((int(k), v) for k, v in data.items() if str(k).isdigit()), key=lambda kv: kv[0])
        items = []
        for _, row in rows:
            if not isinstance(row, Mapping):
                raise MalformedResponse(f"{self.name}: a search row must be an object")
            order_id = _order_id(row.get("orders.orderid") or row.get("entity.entityid"))
            if order_id is None:
                raise MalformedResponse(f"{self.name}: a search row without orders.orderid")
            row_line = LINES_BY_KEY.get(str(row.get("entitytype.entitytypekey") or ""), line)
            self._remember(order_id, row_line)
            items.append(UpstreamAccount(
                id=order_id,
                domain=str(row.get("entity.description") or "").lower(),
                status=order_status(row.get("entity.currentstatus")),
                limits=row_line.limits(),        # search does not tell the account count
                paid_until=_epoch_date(row.get("orders.endtime")),
                native=dict(row),
            ))
        return items, total

    def list_accounts(self, page: int = 1, per_page: int = 100) -> Page:
        """Every order of the configured product lines, one line after the other."""
        page, per_page = max(1, int(page)), max(1, min(int(per_page), MAX_RECORDS))
        start, end = (page - 1) * per_page, page * per_page
        items: list[UpstreamAccount] = []
        offset = 0                       # index of the current line's first order overall
        for line in self.lines:
            first = max(0, start - offset)               # wanted slice of this line
            wanted = end - offset - first
            if wanted <= 0:                              # the page is full: only count this line
                offset += self._search_page(line, 1, 1, "list_accounts")[1]
                continue
            local_page = first // per_page + 1
            found, count = self._search_page(line, local_page, per_page, "list_accounts")
            skip = first - (local_page - 1) * per_page
            taken = found[skip:skip + wanted]
            if skip + wanted > per_page and first + len(taken) < count:
                more, count = self._search_page(line, local_page + 1, per_page, "list_accounts")
                taken += more[:wanted - len(taken)]
            items.extend(taken)
            offset += count
        return Page(items=items[:per_page], page=page, per_page=per_page, total=offset)

    # --- DNS and prices --------------------------------------------------------------
    def dns_records(self, account_id: str) -> list[DnsRecord]:
        line = self._line_of(str(account_id), "dns_records")
        try:
            data = self._get(f"{line.path}/dns-record.json", "dns_records", [("order-id", account_id)])
        except NotFound:
            return []                     # "no records found"
        rows: Iterable[Any]
        if isinstance(data, list):
            rows = data
        elif isinstance(data, Mapping):   # documented as a "hash map": numbered or named entries
            rows = [data] if "type" in data else list(data.values())
        else:
            raise MalformedResponse(f"{self.name} dns_records: unexpected answer", action="dns_records")
        return [record for record in map(_dns_record, rows) if record is not None]

    def price_table(self) -> list[PriceRow]:
        keys = {line.key for line in self.lines}        # only the lines this upstream sells
        cost = {k: v for k, v in _price_cells(self._get("products/reseller-price.json",
                                                        "price_table")).items() if k[0] in keys}
        price = _price_cells(self._get("products/customer-price.json", "price_table"))
        order = {"add": 0, "renew": 1}
        keys = sorted(cost, key=lambda k: (k[0], _range_start(k[1]), order.get(k[2], 9), k[2], k[3]))
        return [PriceRow(product=k[0], accounts=k[1], action=k[2], months=k[3], cost=cost[k],
                         price=price.get(k)) for k in keys]

    # --- the upstream customer ----------------------------------------------------------
    def _customer_lookup(self, username: str) -> str | None:
        """The customer id of ``username``, or None when ResellerClub answers with an error.

        As in ResellerClub's own WHMCS modules, *any* error answer of the look-up means
        "no such customer, sign up": its wording is not relied on. Only failures that
        are no answer (connection, timeout, HTTP errors without the envelope, HTTP 429)
        propagate; a real refusal (bad credentials) then fails the sign-up that follows."""
        try:
            data = self._get("customers/details.json", "find_customer", [("username", username)])
        except ProviderError as err:
            if getattr(err, "refused", False) and not isinstance(err, RateLimited):
                log.info("upstream %s find_customer: no customer for this username (%s)",
                         self.name, err.code)
                return None
            raise
        customer_id = _order_id(data.get("customerid")) if isinstance(data, Mapping) else None
        if customer_id is None:
            raise MalformedResponse(f"{self.name} find_customer: the answer has no customerid",
                                    action="find_customer")
        return customer_id

    def _customer_id(self, client: ClientInfo) -> str:
        """The upstream customer of the billing client: found by username, else signed up."""
        username = (client.email or "").strip().lower()
        if "@" not in username:
            raise ValidationError(
                f"{self.name}: billing client {client.id} has no e-mail address (the customer's "
                f"username at ResellerClub)",
                safe_message="Your billing profile has no e-mail address; please add one.")
        found = self._customer_lookup(username)
        if found is not None:
            return found
        details = self.customer_details(client)
        try:
            # the body holds the new customer's password: kept out of the logs entirely
            answer = self._post("customers/signup.json", "create_customer",
                                [("username", username),
                                 ("passwd", new_customer_password(avoid=details["name"].split())),
                                 *details.items()], log_bodies=False)
        except ProviderError as err:
            if not getattr(err, "refused", False) or isinstance(err, (RateLimited, AuthError)):
                raise
            # Refused, whatever the wording: maybe signed up meanwhile (a parallel job).
            found = self._customer_lookup(username)
            if found is None:
                raise
            return found
        customer_id = _order_id(answer.get("customerid") if isinstance(answer, Mapping) else answer)
        if customer_id is None:
            raise MalformedResponse(f"{self.name} create_customer: the answer is not a customer id",
                                    action="create_customer")
        log.info("upstream %s: signed up customer %s for billing client %s", self.name,
                 customer_id, client.id)
        return customer_id

    def _signup_fields(self, client: ClientInfo) -> tuple[dict[str, str], list[tuple[str, str]]]:
        """The ``customers/signup.json`` fields for ``client``, with ``customer_defaults``
        filling what the billing system did not send, and what is still missing as
        (``ClientInfo`` field, label) pairs."""
        defaults = self.customer_defaults
        name = " ".join(p for p in (client.first_name.strip(), client.last_name.strip()) if p)
        name = name or client.company.strip() or client.email.split("@")[0]
        phone = split_phone(client.phone) or split_phone(
            f"+{defaults.get('phone_cc', '')}.{defaults.get('phone', '')}")
        country = (client.country or defaults.get("country", "")).strip().upper()
        fields = {
            "name": name,
            "company": client.company.strip() or name,
            "address-line-1": client.address.strip() or defaults.get("address", ""),
            "city": client.city.strip() or defaults.get("city", ""),
            # ResellerClub's convention for countries without states
            "state": client.state.strip() or defaults.get("state", "") or "Not Applicable",
            "country": country,
            "zipcode": (client.postcode.strip() or defaults.get("postcode")
                        or defaults.get("zipcode", "")),
            "phone-cc": phone[0] if phone else "",
            "phone": phone[1] if phone else "",
            "lang-pref": ((client.language or defaults.get("language") or "en").strip()[:2].lower()
                          or "en"),
        }
        missing = [(attr, label) for key, attr, label in (
            ("address-line-1", "address", "address"), ("city", "city", "city"),
            ("zipcode", "postcode", "postcode"), ("phone", "phone", "phone number")) if not fields[key]]
        if len(country) != 2:
            missing.append(("country", "country"))
        return fields, missing

    def customer_details(self, client: ClientInfo) -> dict[str, str]:
        """The ``customers/signup.json`` fields for ``client``; ValidationError naming
        what neither the client nor ``customer_defaults`` has."""
        fields, missing = self._signup_fields(client)
        if missing:
            what = ", ".join(label for _, label in missing)
            raise ValidationError(
                f"{self.name}: billing client {client.id} has no {what}; ResellerClub needs them "
                f"to open a customer account (or set customer_defaults for this upstream)",
                safe_message=f"Your billing profile is missing details the e-mail platform needs "
                             f"({what}); please complete it.")
        return fields

    # --- what intake judges ------------------------------------------------------------
    def missing_client_fields(self, client: ClientInfo) -> list[str]:
        """The e-mail (the customer's username) and what a customer sign-up needs.

        Judged for every new order, although an upstream customer that already exists
        (found by username) would need no sign-up: whether it does is known only by
        asking ResellerClub, and intake makes no upstream call."""
        missing = [] if "@" in (client.email or "") else ["email"]
        return missing + [attr for attr, _ in self._signup_fields(client)[1]]

    def limit_problems(self, limits: dict[str, Any]) -> dict[str, str]:
        problems: dict[str, str] = {}
        try:
            self.line_for_limits(limits)
        except ConfigurationError as err:
            problems["email_product"] = f"Not sold through this upstream ({err})."
        number = _int(limits.get("mailboxes", 1))
        if number is None or number < 1:
            problems["mailboxes"] = "A ResellerClub order needs at least one e-mail account."
        return problems
