"""Simulator of ResellerClub's HTTP API for Enterprise Email and Business Email.

Serves what ``provider: resellerclub`` uses, in the shapes public clients show
(docs/providers/resellerclub.md, "Where the API facts come from"): the order
actions under ``/api/enterpriseemail/{us,in}/`` and ``/api/eelite/{us,in,uk}/``,
customers (``signup.json`` with the 2015 password policy, ``v2/signup.json`` with
the newer one), order suspension and the price tables. Every call needs
``auth-userid`` and ``api-key`` (query or form); errors answer
``{"status": "ERROR", "message": ...}``, refused writes ``"status": "Failed"``.
New orders are ``InActive`` until ``activation_delay`` seconds have passed, then
``Active``.

All state lives in the :class:`ResellerClubSimulator` of the app that
:func:`create_app` builds, so every app (and every test) starts empty.
"""
from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import hmac
import re
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from flask import Flask, Response, jsonify, request

from .control import ControlError, SimulatorBase, UnknownAccount, control_route, install

# (product, region) -> product key; the API path is /api/{product}/{region}/{action}.json
LINES: dict[tuple[str, str], str] = {
    ("enterpriseemail", "us"): "enterpriseemailus",
    ("enterpriseemail", "in"): "enterpriseemailin",
    ("eelite", "us"): "eeliteus",
    ("eelite", "in"): "eelitein",        # paths of these two: unverified (see the doc)
    ("eelite", "uk"): "eeliteuk",
}
LINE_NAMES = {"enterpriseemailus": "Enterprise Email US", "enterpriseemailin": "Enterprise Email IN",
              "eeliteus": "Business Email", "eelitein": "Business Email IN",
              "eeliteuk": "Business Email UK"}
#: details' entitytypeid: eeliteus's from Pitchero's fixture, the others made up (unverified)
ENTITY_TYPE_IDS = {"eeliteus": "283", "enterpriseemailus": "281", "enterpriseemailin": "282",
                   "eelitein": "284", "eeliteuk": "285"}
#: the writes ``POST /_sim/fail-actions`` can make answer ``Failed``
FAILABLE = ("add", "renew", "add-email-account", "delete-email-account", "delete")
INVOICE_OPTIONS = ("NoInvoice", "PayInvoice", "KeepInvoice", "OnlyAdd")
LIVE = ("InActive", "Active", "Suspended")
STATUS_NAMES = ("InActive", "Active", "Suspended", "Pending Delete Restorable", "Deleted", "Archived")
NORMALISED = {"InActive": "pending", "Active": "active", "Suspended": "suspended",
              "Pending Delete Restorable": "deleted", "Deleted": "deleted", "Archived": "deleted"}
FROM_NORMALISED = {"pending": "InActive", "active": "Active", "suspended": "Suspended", "deleted": "Deleted"}
RESELLER_PARENTS = "999999999_999999998"
MAX_RECORDS = 500
MAX_MONTHS = 120
MAX_ACCOUNTS = 10000

_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class ApiError(Exception):
    """An error answer: ``{"status": "ERROR", "message": ...}`` with an HTTP status.

    ResellerClub answers most refusals with HTTP 500 and the envelope; the
    simulator does the same (see docs/providers/resellerclub.md)."""

    def __init__(self, message: str, status: int = 500):
        super().__init__(message)
        self.message, self.status = message, status


ACCESS_DENIED = "Access Denied: You are not authorized to perform this action"


# --- parameters (query string or form) ------------------------------------------------

def _param(name: str, *, required: bool = False) -> str | None:
    value = request.values.get(name)
    if value is None or not value.strip():
        if required:
            raise ApiError(f"{name} is required")
        return None
    return value.strip()


def _list_param(name: str) -> list[str]:
    values = []
    for raw in request.values.getlist(name):
        values += [v.strip() for v in raw.split(",") if v.strip()]
    return values


def _int_param(name: str, *, required: bool = False, minimum: int = 0,
               maximum: int | None = None) -> int | None:
    raw = _param(name, required=required)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(f"{name} is invalid: {raw!r} is not a whole number") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ApiError(f"{name} is invalid: must be {bound}")
    return value


def _bool_param(name: str, default: bool = False) -> bool:
    raw = _param(name)
    if raw is None:
        return default
    if raw.lower() not in ("true", "false"):
        raise ApiError(f"{name} is invalid: must be true or false")
    return raw.lower() == "true"


def _invoice_option() -> str:
    option = _param("invoice-option") or "NoInvoice"
    if option not in INVOICE_OPTIONS:
        raise ApiError(f"invoice-option is invalid: must be one of {', '.join(INVOICE_OPTIONS)}")
    return option


def _epoch_param(name: str) -> int | None:
    return _int_param(name, minimum=0)


# --- time ---------------------------------------------------------------------------

def add_months(stamp: float, months: int) -> int:
    """A Unix time plus calendar months (UTC), clamped to the month's end."""
    moment = dt.datetime.fromtimestamp(stamp, dt.timezone.utc)
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())


# LogicBoxes' published customer password policies (docs/providers/resellerclub.md):
# the 2015 one, which the original signup.json keeps, and the newer one of v2/signup.json.
OLD_POLICY_SYMBOLS = "@#$%^&+=.\\-_*"
NEW_POLICY_SYMBOLS = "~*!@$#%_+.?:,{}"
OLD_POLICY_TEXT = ("Password must be 8 - 15 characters long, cannot contain your name and must contain 1 "
                   "character each from lowercase letters, uppercase letters, numbers and symbols "
                   "(@ , # , $ , % , ^ , & , + , = , . , \\ , - , _ , *)")
NEW_POLICY_TEXT = ("Password must be between 9-16 characters and contain uppercase characters (A-Z), "
                   "lowercase characters (a-z), numbers (0-9) and special characters ~*!@$#%_+.?:,{}")


def password_problem(password: str, name: str, *, v2: bool) -> str | None:
    """Why ``password`` breaks the policy of ``signup.json`` (or ``v2/signup.json``), or None."""
    low, high, symbols, text = ((9, 16, NEW_POLICY_SYMBOLS, NEW_POLICY_TEXT) if v2
                                else (8, 15, OLD_POLICY_SYMBOLS, OLD_POLICY_TEXT))
    allowed = set(string.ascii_letters + string.digits + symbols)
    ok = (low <= len(password) <= high and re.search(r"[a-z]", password) and re.search(r"[A-Z]", password)
          and re.search(r"\d", password) and any(c in symbols for c in password)
          and set(password) <= allowed)
    if ok and not v2:
        ok = not any(len(w) >= 3 and w.lower() in password.lower() for w in name.split())
    return None if ok else text


def _hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 1000)
    return f"pbkdf2_sha256$1000${salt.hex()}${digest.hex()}"


# --- pricing ----------------------------------------------------------------------

ACCOUNT_RANGES = ("1-5", "6-10", "11-15", "16-25", "26-35", "36-55", "56-65", "66-75", "76-85",
                  "86-100", "101-10000")
TENURES = (1, 3, 6, 12)
# Cost per e-mail account and month for 1-5 accounts, 1 month (illustrative values).
BASE_COST = {"enterpriseemailus": 1.20, "enterpriseemailin": 0.90, "eeliteus": 0.80,
             "eelitein": 0.60, "eeliteuk": 0.85}
CUSTOMER_MARKUP = 1.35
RANGE_DISCOUNT = 0.03          # per range step
TENURE_DISCOUNT = {1: 1.0, 3: 0.97, 6: 0.93, 12: 0.85}


def _price(product: str, range_index: int, action: str, months: int, markup: float = 1.0) -> float:
    base = BASE_COST[product] * (1 - RANGE_DISCOUNT * range_index) * TENURE_DISCOUNT[months]
    if action == "renew":
        base *= 1.05
    return round(base * markup, 2)


def price_table(markup: float) -> dict[str, Any]:
    """A price answer: the e-mail products plus a few others, as the real one has."""
    table: dict[str, Any] = {}
    for product in BASE_COST:
        ranges = {}
        for index, accounts in enumerate(ACCOUNT_RANGES):
            ranges[accounts] = {action: {str(m): _price(product, index, action, m, markup) for m in TENURES}
                                for action in ("renew", "add")}
        table[product] = {"email_account_ranges": ranges}
    # other products of the reseller, in their own shapes; clients must skip them
    table["domcno"] = {"addnewdomain": {str(y): round(8.99 * markup, 2) for y in range(1, 11)},
                       "renewdomain": {str(y): round(9.49 * markup, 2) for y in range(1, 11)},
                       "addtransferdomain": {"1": round(8.99 * markup, 2)}}
    table["sslcert"] = {"ssl_cert_addnew": {"12": round(9.0 * markup, 2)}}
    return table


def _range_of(accounts: int) -> int:
    for index, text in enumerate(ACCOUNT_RANGES):
        low, high = (int(x) for x in text.split("-"))
        if low <= accounts <= high:
            return index
    return len(ACCOUNT_RANGES) - 1


# --- the data -------------------------------------------------------------------------

@dataclass
class Customer:
    id: int
    username: str
    name: str
    company: str
    address: str
    city: str
    state: str
    country: str
    zipcode: str
    phone_cc: str
    phone: str
    lang_pref: str
    created: int
    pin: str = "0000"
    other_state: str = ""
    password_hash: str = field(repr=False, default="")

    def details(self, reseller_id: str) -> dict[str, Any]:
        """The ``customers/details.json`` answer: the field set of a captured real answer
        (TI-Sin-Problemas/resellerclub-python tests/responses/customers/customer_details.txt),
        values as strings except the two that real answers send as JSON types."""
        return {
            "city": self.city, "langpref": self.lang_pref, "twofactorsmsauth_enabled": "false",
            "totalreceipts": "0.0", "company": self.company, "username": self.username,
            "pin": self.pin, "country": self.country, "ispasswdexpired": "false",
            "useremail": self.username, "telno": self.phone, "customerid": str(self.id),
            "twofactorgoogleauth_enabled": "false", "creationdt": str(self.created),
            "zip": self.zipcode, "address1": self.address, "parentid": reseller_id,
            "salescontactid": "0", "name": self.name, "isDominicanTaxConfiguredByParent": False,
            "resellerid": reseller_id, "salespersonshash": {}, "telnocc": self.phone_cc,
            "other_state": self.other_state or self.state, "customerstatus": "Active",
            "stateid": "0", "twofactorauth_enabled": "false", "state": self.state,
        }


@dataclass
class Order:
    id: int
    product_key: str
    product: str
    region: str
    domain: str
    customer_id: int
    status: str
    email_accounts: int
    created: int
    end: int
    activate_at: float | None = None
    auto_renew: bool = False
    suspended_by_parent: bool = False
    suspended_on_expiry: bool = False
    suspend_reason: str | None = None

    def details(self, reseller_id: str) -> dict[str, Any]:
        """The order's ``details.json``: the fields of the eelite/us answer that
        Pitchero/ResellerClub's tests use (BusinessEmailOrderTest::...Get), plus
        ``autoRenew``. Values are strings there except ``emailaccounts`` (a number
        in that fixture; strings here, as the adapter reads both), the two lists and
        ``currentOrderPrice``."""
        return {
            "orderid": str(self.id), "eaqid": "0", "description": self.domain,
            "currentstatus": self.status, "paused": "false", "emailaccounts": str(self.email_accounts),
            "customercost": "0.0", "parentkey": f"{RESELLER_PARENTS}_{reseller_id}", "orderstatus": [],
            "creationtime": str(self.created), "recurring": "true" if self.auto_renew else "false",
            "entitytypeid": ENTITY_TYPE_IDS[self.product_key], "isDeletionRequest": "false",
            "isImmediateReseller": "true", "productkey": self.product_key,
            "customerid": str(self.customer_id), "resellercost": "0",
            "orderSuspendedByParent": "true" if self.suspended_by_parent else "false",
            "endtime": str(self.end), "entityid": str(self.id), "jumpConditions": [],
            "currentOrderPrice": 0.0,
            "isOrderSuspendedUponExpiry": "true" if self.suspended_on_expiry else "false",
            "actioncompleted": "0", "domainname": self.domain, "productcategory": "hosting",
            "allowdeletion": "true", "moneybackperiod": "30",
            "autoRenew": "true" if self.auto_renew else "false",
        }

    def search_row(self) -> dict[str, Any]:
        return {
            "orders.orderid": str(self.id), "entity.entityid": str(self.id),
            "entity.description": self.domain, "entity.customerid": str(self.customer_id),
            "orders.creationdt": str(self.created), "orders.creationtime": str(self.created),
            "orders.endtime": str(self.end), "entity.currentstatus": self.status,
            "entitytype.entitytypename": LINE_NAMES[self.product_key],
            "entitytype.entitytypekey": self.product_key,
            "hosting_group_info.location": self.region.upper(),
            "orders.autorenew": "true" if self.auto_renew else "false",
        }

    @property
    def live(self) -> bool:
        return self.status in LIVE


def dns_records_for(order: Order) -> list[dict[str, str]]:
    """What the customer publishes for an order (simulated host names under .invalid)."""
    platform = f"{order.product}-{order.region}.sim.invalid"
    return [
        {"type": "MX", "host": order.domain, "value": f"mx1.{platform}", "class": "IN"},
        {"type": "MX", "host": order.domain, "value": f"mx2.{platform}", "class": "IN"},
        {"type": "TXT", "host": order.domain, "value": f"v=spf1 include:spf.{platform} ~all", "class": "IN"},
        {"type": "CNAME", "host": f"webmail.{order.domain}", "value": f"webmail.{platform}", "class": "IN"},
        {"type": "CNAME", "host": f"autodiscover.{order.domain}", "value": f"autodiscover.{platform}",
         "class": "IN"},
    ]


class ResellerClubSimulator(SimulatorBase):
    name: ClassVar[str] = "resellerclub"

    def __init__(self, *, auth_userid: str, api_key: str, activation_delay: float = 0.0,
                 seed: int | None = None, clock: Callable[[], float] = time.time):
        super().__init__(seed=seed)
        self.auth_userid = str(auth_userid)
        self.api_key = str(api_key)
        self.activation_delay = activation_delay
        self.clock = clock
        self.actions: dict[str, str] = {}
        self.failing: dict[str, str] = {}
        self.reset_state()

    # --- control hooks ---------------------------------------------------------
    def action_name(self, req) -> str:
        return self.actions.get(req.endpoint or "", "unknown")

    def error_response(self, status: int, message: str, code: str) -> Response:
        if code == "rate_limited":
            message = "Too many requests: rate limit exceeded, please try again later"
        elif code == "internal_error":
            message = "An unexpected error occurred, please try again later"
        response = jsonify({"status": "ERROR", "message": message})
        response.status_code = status
        return response

    def malformed_response(self) -> Response:
        return Response('{"entityid":"8000', status=200, mimetype="application/json")

    def state(self) -> dict[str, Any]:
        accounts = []
        for order in self.orders.values():
            self.refresh(order)
            accounts.append({
                "id": str(order.id), "domain": order.domain, "status": NORMALISED[order.status],
                "limits": {"mailboxes": order.email_accounts},
                "mailboxes": [], "aliases": [], "lists": [],
                "native": order.details(self.auth_userid),
                "suspend_reason": order.suspend_reason,
            })
        customers = [c.details(self.auth_userid) for c in self.customers.values()]
        return {"accounts": accounts, "customers": customers}

    def reset_state(self) -> None:
        with self.lock:
            self.orders: dict[int, Order] = {}
            self.customers: dict[int, Customer] = {}
            self.next_order_id = 80000001
            self.next_customer_id = 20000001
            self.next_action_id = 500000001
            self.failing = {}

    def mutate(self, account_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        order = self.orders.get(int(account_id)) if account_id.isdigit() else None
        if order is None:
            raise UnknownAccount(account_id)
        limits = changes.get("limits") or {}
        unknown = set(limits) - {"mailboxes"}
        if unknown:
            raise ControlError(f"limits.{sorted(unknown)[0]}: only mailboxes can be changed", "limits")
        mailboxes = limits.get("mailboxes")
        if "mailboxes" in limits and (isinstance(mailboxes, bool) or not isinstance(mailboxes, int)
                                      or mailboxes < 1):
            raise ControlError("limits.mailboxes: must be an integer >= 1", "limits")
        if "status" in changes:
            order.status = FROM_NORMALISED[changes["status"]]
            order.activate_at = None
            order.suspended_by_parent = order.status == "Suspended"
            if order.status != "Suspended":
                order.suspend_reason = None
        if mailboxes is not None:
            order.email_accounts = mailboxes
        return next(a for a in self.state()["accounts"] if a["id"] == account_id)

    # --- helpers ------------------------------------------------------------------
    def now(self) -> int:
        return int(self.clock())

    def action_id(self) -> str:
        self.next_action_id += 1
        return str(self.next_action_id)

    def refresh(self, order: Order) -> None:
        # Activation is evaluated lazily on every read: no background thread.
        if order.status == "InActive" and order.activate_at is not None and self.clock() >= order.activate_at:
            order.status = "Active"
            order.activate_at = None

    def order(self, order_id: int, product_key: str | None = None) -> Order:
        order = self.orders.get(order_id)
        if order is None or (product_key is not None and order.product_key != product_key):
            raise ApiError(f"No Entity found for Entityid: {order_id}")
        self.refresh(order)
        return order

    def live_order(self, order_id: int, product_key: str | None = None) -> Order:
        order = self.order(order_id, product_key)
        if not order.live:
            raise ApiError(f"Action not allowed: order {order_id} is {order.status}")
        return order

    def active_order(self, order_id: int, product_key: str) -> Order:
        order = self.live_order(order_id, product_key)
        if order.status == "InActive":
            raise ApiError(f"Action not allowed: order {order_id} is not yet provisioned (InActive)")
        return order

    def customer_by_username(self, username: str) -> Customer | None:
        wanted = username.strip().lower()
        return next((c for c in self.customers.values() if c.username == wanted), None)

    def write_answer(self, order: Order, action_type: str, description: str,
                     invoice_option: str, amount: float = 0.0,
                     action_status: str = "InvoicePaid") -> dict[str, Any]:
        """The answer of a write, in the shapes Pitchero/ResellerClub's fixtures show:
        flat with ``"status": "Success"``; invoice fields unless ``NoInvoice``."""
        pending = order.status == "InActive"
        answer: dict[str, Any] = {
            "description": order.domain, "entityid": str(order.id), "actiontype": action_type,
            "actiontypedesc": description, "eaqid": self.action_id(),
            "actionstatus": action_status,
            "actionstatusdesc": ("Your Order will be processed by our automatic provisioning system "
                                 "in the next 5-10 minutes." if pending
                                 else "Request will be processed in some time."),
            "status": "Success",
        }
        if invoice_option != "NoInvoice":
            answer.update({"invoiceid": self.action_id(), "customerid": str(order.customer_id),
                           "sellingcurrencysymbol": "USD", "sellingamount": f"{amount:.2f}",
                           "unutilisedsellingamount": f"{amount:.2f}"})
        return answer

    def only_add_answer(self, order: Order, amount: float) -> dict[str, Any]:
        """What an ``OnlyAdd`` write answers: the invoice, no ``entityid``."""
        return {"customercost": f"{amount:.2f}", "eaqid": self.action_id(),
                "customerid": str(order.customer_id), "invoiceid": self.action_id()}

    def failed_answer(self, action: str) -> dict[str, Any] | None:
        """The ``Failed`` answer ``/_sim/fail-actions`` armed for ``action``, once."""
        description = self.failing.pop(action, None)
        if description is None:
            return None
        return {"actiontype": ACTION_TYPES.get(action, action), "eaqid": self.action_id(),
                "actionstatus": "Failed", "actionstatusdesc": description, "status": "Failed"}

    def amount(self, order: Order, action: str, accounts: int, months: int) -> float:
        tenure = max(t for t in TENURES if t <= months) if months >= 1 else 1
        per_month = _price(order.product_key, _range_of(accounts), action, tenure, CUSTOMER_MARKUP)
        return round(per_month * accounts * months, 2)


# --- routes -----------------------------------------------------------------------

#: actiontype of each write (add, renew and the account changes: Pitchero/ResellerClub's
#: fixtures; delete, suspend and unsuspend: unverified)
ACTION_TYPES = {"add": "Add", "renew": "Renew", "add-email-account": "AddEmailAccount",
                "delete-email-account": "DeleteEmailAccount", "delete": "Delete",
                "suspend": "Suspend", "unsuspend": "UnSuspend"}


def _invoiced(answer: dict[str, Any], invoice: str) -> dict[str, Any]:
    """PayInvoice/KeepInvoice nest a write's answer under its invoice id."""
    return {answer["invoiceid"]: answer} if invoice in ("PayInvoice", "KeepInvoice") else answer


def _register_line(sim: ResellerClubSimulator, route, product: str, region: str, key: str) -> None:
    prefix = f"/api/{product}/{region}"
    name = f"{product}/{region}"

    def order_param() -> int:
        value = _int_param("order-id", required=True, minimum=1)
        assert value is not None
        return value

    @route(f"{prefix}/add.json", "POST", f"{name}/add")
    def add():
        domain = (_param("domain-name", required=True) or "").lower()
        if not _DOMAIN_RE.match(domain):
            raise ApiError(f"domain-name is invalid: {domain}")
        customer_id = _int_param("customer-id", required=True, minimum=1)
        if customer_id not in sim.customers:
            raise ApiError(f"customer-id is invalid: no customer {customer_id}")
        months = _int_param("months", required=True, minimum=1, maximum=MAX_MONTHS)
        accounts = _int_param("no-of-accounts", required=True, minimum=1, maximum=MAX_ACCOUNTS)
        auto_renew = _bool_param("auto-renew")
        invoice = _invoice_option()
        if _param("discount-amount") is not None:
            try:
                float(_param("discount-amount") or "")
            except ValueError:
                raise ApiError("discount-amount is invalid") from None
        for other in sim.orders.values():
            sim.refresh(other)
            if other.domain == domain and other.live and other.product in ("enterpriseemail", "eelite"):
                raise ApiError(f"An e-mail order already exists for {domain} (order {other.id})")
        failed = sim.failed_answer("add")
        if failed is not None:
            return jsonify(failed)
        now = sim.now()
        delayed = sim.activation_delay > 0
        order = Order(id=sim.next_order_id, product_key=key, product=product, region=region,
                      domain=domain, customer_id=customer_id,
                      status="InActive" if delayed else "Active", email_accounts=accounts,
                      created=now, end=add_months(now, months),
                      activate_at=sim.clock() + sim.activation_delay if delayed else None,
                      auto_renew=auto_renew)
        sim.next_order_id += 1
        sim.orders[order.id] = order
        amount = sim.amount(order, "add", accounts, months)
        if invoice == "OnlyAdd":           # unverified for add.json: as add-email-account
            return jsonify(sim.only_add_answer(order, amount))
        return jsonify(sim.write_answer(
            order, ACTION_TYPES["add"],
            f"Addition of {LINE_NAMES[key]} {accounts} for {domain} for {months} month", invoice,
            amount))

    @route(f"{prefix}/renew.json", "POST", f"{name}/renew")
    def renew():
        order = sim.live_order(order_param(), key)
        months = _int_param("months", required=True, minimum=1, maximum=MAX_MONTHS)
        # the number of *additional* accounts bought with the renewal (RenewRequest in
        # Pitchero/ResellerClub): 0 or absent renews the order as it is
        extra = _int_param("no-of-accounts", minimum=0, maximum=MAX_ACCOUNTS) or 0
        invoice = _invoice_option()
        if order.email_accounts + extra > MAX_ACCOUNTS:
            raise ApiError(f"no-of-accounts is invalid: an order cannot exceed {MAX_ACCOUNTS} accounts")
        failed = sim.failed_answer("renew")
        if failed is not None:
            return jsonify(failed)
        order.auto_renew = _bool_param("auto-renew", order.auto_renew)
        order.email_accounts += extra
        order.end = add_months(order.end, months)
        if order.suspended_on_expiry:
            order.suspended_on_expiry = False
            if order.status == "Suspended" and not order.suspended_by_parent:
                order.status = "Active"
        return jsonify(sim.write_answer(
            order, ACTION_TYPES["renew"], f"Renewal of {LINE_NAMES[key]} {order.email_accounts} for "
            f"{order.domain} for {months} month", invoice,
            sim.amount(order, "renew", order.email_accounts, months)))

    @route(f"{prefix}/add-email-account.json", "POST", f"{name}/add-email-account")
    def add_email_account():
        order = sim.active_order(order_param(), key)
        accounts = _int_param("no-of-accounts", required=True, minimum=1, maximum=MAX_ACCOUNTS)
        invoice = _invoice_option()
        if order.email_accounts + accounts > MAX_ACCOUNTS:
            raise ApiError(f"no-of-accounts is invalid: an order cannot exceed {MAX_ACCOUNTS} accounts")
        failed = sim.failed_answer("add-email-account")
        if failed is not None:
            return jsonify(failed)
        order.email_accounts += accounts
        remaining = max(1, round((order.end - sim.now()) / (30 * 86400)))
        amount = sim.amount(order, "add", accounts, remaining)
        if invoice == "OnlyAdd":           # Pitchero's fixture: the invoice, no entityid
            return jsonify(sim.only_add_answer(order, amount))
        return jsonify(_invoiced(sim.write_answer(
            order, ACTION_TYPES["add-email-account"],
            f"Addition of {accounts} email account for {order.domain}", invoice, amount), invoice))

    @route(f"{prefix}/delete-email-account.json", "POST", f"{name}/delete-email-account")
    def delete_email_account():
        order = sim.active_order(order_param(), key)
        accounts = _int_param("no-of-accounts", required=True, minimum=1, maximum=MAX_ACCOUNTS)
        if accounts >= order.email_accounts:
            raise ApiError(f"no-of-accounts is invalid: cannot delete {accounts} of the order's "
                           f"{order.email_accounts} e-mail account(s); at least one must remain")
        failed = sim.failed_answer("delete-email-account")
        if failed is not None:
            return jsonify(failed)
        order.email_accounts -= accounts
        return jsonify(sim.write_answer(
            order, ACTION_TYPES["delete-email-account"],
            f"Deletion of {accounts} email account for {order.domain}", "NoInvoice",
            action_status="ExecutionStarted"))

    @route(f"{prefix}/delete.json", "POST", f"{name}/delete")
    def delete():
        order = sim.order(order_param(), key)
        if order.status in ("Deleted", "Archived", "Pending Delete Restorable"):
            raise ApiError(f"Order {order.id} is already {order.status}")
        failed = sim.failed_answer("delete")
        if failed is not None:
            return jsonify(failed)
        order.status = "Deleted"
        order.activate_at = None
        order.suspend_reason = None
        return jsonify(sim.write_answer(order, ACTION_TYPES["delete"],
                                        f"Deletion of {LINE_NAMES[key]} order for {order.domain}",
                                        "NoInvoice", action_status="PendingExecution"))

    @route(f"{prefix}/details.json", "GET", f"{name}/details")
    def details():
        return jsonify(sim.order(order_param(), key).details(sim.auth_userid))

    @route(f"{prefix}/orderid.json", "GET", f"{name}/orderid")
    def orderid():
        domain = (_param("domain-name", required=True) or "").lower()
        matches = [o for o in sim.orders.values() if o.domain == domain and o.product_key == key]
        for order in matches:
            sim.refresh(order)
        live = [o for o in matches if o.live]
        chosen = (live or matches)[-1:] if matches else []
        if not chosen:
            raise ApiError(f"No order found for domain-name {domain}")
        return jsonify(chosen[0].id)

    @route(f"{prefix}/dns-record.json", "GET", f"{name}/dns-record")
    def dns_record():
        order = sim.live_order(order_param(), key)
        return jsonify(dns_records_for(order))

    @route(f"{prefix}/search.json", "GET", f"{name}/search")
    def search():
        records = _int_param("no-of-records", required=True, minimum=1, maximum=MAX_RECORDS)
        page = _int_param("page-no", required=True, minimum=1)
        matches = [o for o in sim.orders.values() if o.product_key == key]
        for order in matches:
            sim.refresh(order)
        matches = _filter_orders(matches)
        start = (page - 1) * records
        shown = matches[start:start + records]
        answer: dict[str, Any] = {str(i): o.search_row() for i, o in enumerate(shown, start=1)}
        answer["recsonpage"] = str(len(shown))
        answer["recsindb"] = str(len(matches))
        return jsonify(answer)


SORT_KEYS: dict[str, Callable[[Order], Any]] = {
    "orderid": lambda o: o.id, "creationtime": lambda o: o.created, "endtime": lambda o: o.end,
    "domainname": lambda o: o.domain, "description": lambda o: o.domain,
    "customerid": lambda o: o.customer_id,
}


def _filter_orders(orders: list[Order]) -> list[Order]:
    """The search filters of ``search.json``; ``order-by`` sorts (default orderid)."""
    ids = {_as_int(v, "order-id") for v in _list_param("order-id")}
    customers = {_as_int(v, "customer-id") for v in _list_param("customer-id")}
    statuses = {v.lower() for v in _list_param("status")}
    unknown = statuses - {s.lower() for s in STATUS_NAMES}
    if unknown:
        raise ApiError(f"status is invalid: {sorted(unknown)[0]}")
    domain = (_param("domain-name") or "").lower()
    bounds = {name: _epoch_param(name) for name in ("creation-date-start", "creation-date-end",
                                                    "expiry-date-start", "expiry-date-end")}
    _bool_param("show-child-orders")
    selected = [o for o in orders
                if (not ids or o.id in ids) and (not customers or o.customer_id in customers)
                and (not statuses or o.status.lower() in statuses)
                and (not domain or o.domain == domain)
                and _within(o.created, bounds["creation-date-start"], bounds["creation-date-end"])
                and _within(o.end, bounds["expiry-date-start"], bounds["expiry-date-end"])]
    order_by = [v.lower() for v in _list_param("order-by")] or ["orderid"]
    bad = [v for v in order_by if v not in SORT_KEYS]
    if bad:
        raise ApiError(f"order-by is invalid: {bad[0]}")
    return sorted(selected, key=lambda o: tuple(SORT_KEYS[k](o) for k in order_by))


def _as_int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ApiError(f"{name} is invalid: {value!r}") from None


def _within(value: int, start: int | None, end: int | None) -> bool:
    return (start is None or value > start) and (end is None or value < end)


def _register_other_routes(sim: ResellerClubSimulator, route) -> None:
    @route("/api/orders/suspend.json", "POST", "orders/suspend")
    def suspend():
        order = sim.live_order(_int_param("order-id", required=True, minimum=1) or 0)
        reason = _param("reason", required=True)
        if order.status == "Suspended":
            raise ApiError(f"Order {order.id} is already Suspended")
        if order.status == "InActive":
            raise ApiError(f"Action not allowed: order {order.id} is not yet provisioned (InActive)")
        order.status = "Suspended"
        order.suspended_by_parent = True
        order.suspend_reason = reason
        return jsonify(sim.write_answer(order, ACTION_TYPES["suspend"],
                                        f"Suspension of order {order.id}: {reason}", "NoInvoice",
                                        action_status="ExecutionStarted"))

    @route("/api/orders/unsuspend.json", "POST", "orders/unsuspend")
    def unsuspend():
        order = sim.live_order(_int_param("order-id", required=True, minimum=1) or 0)
        if order.status != "Suspended":
            raise ApiError(f"Order {order.id} is already {order.status}, not Suspended")
        order.status = "Active"
        order.suspended_by_parent = False
        order.suspended_on_expiry = False
        order.suspend_reason = None
        return jsonify(sim.write_answer(order, ACTION_TYPES["unsuspend"],
                                        f"Unsuspension of order {order.id}", "NoInvoice",
                                        action_status="ExecutionStarted"))

    @route("/api/customers/details.json", "GET", "customers/details")
    def customer_details():
        username = _param("username", required=True) or ""
        customer = sim.customer_by_username(username)
        if customer is None:
            raise ApiError(f"Customer not found: {username}")
        return jsonify(customer.details(sim.auth_userid))

    @route("/api/customers/details-by-id.json", "GET", "customers/details-by-id")
    def customer_details_by_id():
        customer_id = _int_param("customer-id", required=True, minimum=1)
        customer = sim.customers.get(customer_id or 0)
        if customer is None:
            raise ApiError(f"Customer not found: {customer_id}")
        return jsonify(customer.details(sim.auth_userid))

    @route("/api/customers/signup.json", "POST", "customers/signup")
    def customer_signup():
        return jsonify(_signup(sim, v2=False).id)

    @route("/api/customers/v2/signup.json", "POST", "customers/v2/signup")
    def customer_signup_v2():
        return jsonify(_signup(sim, v2=True).id)

    @route("/api/products/customer-price.json", "GET", "products/customer-price")
    def customer_price():
        _int_param("customer-id", minimum=1)
        return jsonify(price_table(CUSTOMER_MARKUP))

    @route("/api/products/reseller-price.json", "GET", "products/reseller-price")
    def reseller_price():
        _int_param("reseller-id", minimum=1)
        return jsonify(price_table(1.0))


def _signup(sim: ResellerClubSimulator, *, v2: bool) -> Customer:
    username = (_param("username", required=True) or "").lower()
    if not _EMAIL_RE.match(username):
        raise ApiError("username is invalid: must be an e-mail address")
    fields = {name: _param(name, required=True) or "" for name in
              ("name", "company", "address-line-1", "city", "state", "country", "zipcode",
               "phone-cc", "phone")}
    # the password as sent: surrounding blanks are part of it (and refused)
    password = request.values.get("passwd") or ""
    if not password:
        raise ApiError("passwd is required")
    problem = password_problem(password, fields["name"], v2=v2)
    if problem is not None:
        raise ApiError(problem)
    if not re.fullmatch(r"[A-Za-z]{2}", fields["country"]):
        raise ApiError("country is invalid: must be a two-letter country code")
    if not re.fullmatch(r"\d{1,4}", fields["phone-cc"]):
        raise ApiError("phone-cc is invalid: must be 1-4 digits")
    if not re.fullmatch(r"\d{4,12}", fields["phone"]):
        raise ApiError("phone is invalid: must be 4-12 digits")
    if len(fields["zipcode"]) > 10:
        raise ApiError("zipcode is invalid: at most 10 characters")
    lang = (_param("lang-pref", required=True) or "").lower()
    if not re.fullmatch(r"[a-z]{2}", lang):
        raise ApiError("lang-pref is invalid: must be a two-letter language code")
    if sim.customer_by_username(username) is not None:
        raise ApiError(f"Customer {username} already exists")
    customer = Customer(
        id=sim.next_customer_id, username=username, name=fields["name"], company=fields["company"],
        address=fields["address-line-1"], city=fields["city"], state=fields["state"],
        country=fields["country"].upper(), zipcode=fields["zipcode"], phone_cc=fields["phone-cc"],
        phone=fields["phone"], lang_pref=lang, created=sim.now(),
        pin=f"{secrets.randbelow(10000):04d}",   # not the fault dice: faults stay seeded
        other_state=_param("other-state") or "", password_hash=_hash_password(password))
    sim.next_customer_id += 1
    sim.customers[customer.id] = customer
    return customer


def _register_routes(app: Flask, sim: ResellerClubSimulator) -> None:
    def route(rule: str, method: str, action: str):
        def decorator(view):
            endpoint = action.replace("/", "_").replace("-", "_")
            sim.actions[endpoint] = action

            def locked():
                with sim.lock:
                    return view()
            app.add_url_rule(rule, endpoint, locked, methods=[method])
            return view
        return decorator

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        response = jsonify({"status": "ERROR", "message": exc.message})
        response.status_code = exc.status
        return response

    @app.before_request
    def _authenticate():
        if not request.path.startswith("/api/"):
            return None
        userid = request.values.get("auth-userid", "")
        key = request.values.get("api-key", "")
        if not (hmac.compare_digest(userid.encode(), sim.auth_userid.encode())
                and hmac.compare_digest(key.encode(), sim.api_key.encode())):
            return sim.error_response(500, ACCESS_DENIED, "unauthorized")
        return None

    for (product, region), key in LINES.items():
        _register_line(sim, route, product, region, key)
    _register_other_routes(sim, route)


def _arm_failure(sim: ResellerClubSimulator, body: Any) -> dict[str, Any]:
    """``POST /_sim/fail-actions {"action": "add", "description": "..."}``: the next such
    write answers ``"status": "Failed"`` with the description, and changes nothing."""
    if not isinstance(body, dict):
        raise ControlError("the body must be a JSON object", "body")
    action = body.get("action")
    if action not in FAILABLE:
        raise ControlError(f"action: one of {', '.join(FAILABLE)}", "action")
    description = body.get("description") or "The action could not be completed"
    if not isinstance(description, str):
        raise ControlError("description: must be a string", "description")
    with sim.lock:
        sim.failing[action] = description
    return {"armed": dict(sim.failing)}


def create_app(*, auth_userid: str = "100001", api_key: str = "dev-resellerclub-key",
               activation_delay: float = 0.0, seed: int | None = None,
               clock: Callable[[], float] | None = None, **_ignored: Any) -> Flask:
    """A fresh ResellerClub simulator app.

    ``auth_userid`` / ``api_key``: the credentials every call must carry;
    ``activation_delay``: seconds a new order stays ``InActive``; ``seed``: for
    the fault dice; ``clock``: Unix seconds (tests pass a fixed or shifted one)."""
    if activation_delay < 0:
        raise ValueError("activation_delay must not be negative")
    if not str(auth_userid).strip() or not str(api_key).strip():
        raise ValueError("auth_userid and api_key must not be empty")
    app = Flask(__name__)
    app.json.sort_keys = False
    sim = ResellerClubSimulator(auth_userid=str(auth_userid).strip(), api_key=str(api_key).strip(),
                                activation_delay=activation_delay, seed=seed, clock=clock or time.time)
    install(app, sim)          # first: faults and counting precede the credentials check
    _register_routes(app, sim)
    control_route(app, "fail-actions", lambda body: _arm_failure(sim, body))
    return app


#: the options `provisioner simulate resellerclub` reads from the environment when not given
create_app.env_options = {"auth_userid": "RESELLERCLUB_AUTH_USERID", "api_key": "RESELLERCLUB_API_KEY"}  # type: ignore[attr-defined]
