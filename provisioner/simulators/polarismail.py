"""Simulator of the PolarisMail / EmailArray admin API (docs/providers/polarismail.md).

One endpoint, ``POST /admin/json.php``, form-encoded, the call named by the form
field ``action``. Answers are ``{"returncode": 1, "returndata": ...}``; refusals are
``{"returncode": 0, "returndata": "<message>"}`` with HTTP 200, as the public
clients of the real API (the PolarisMail Blesta module, polarismail-go) read them.
``action=login`` trades the reseller's username and password for a token that every
other call passes as ``token`` and that expires after ``token_ttl`` seconds.

A new domain needs its ownership verified (a TXT record at ``mx-verification``)
before it can be used; here verification completes by itself ``activation_delay``
seconds after ``addDomain`` (0: at once).

Two sign-ons, as PolarisMail's own Blesta module uses them: ``getOTPass`` answers a
one-time password that ``GET /processlogin.php?u=&p=`` (the user **control panel**
login) or a user-API ``login`` on ``POST /json.php`` accepts once;
``getOTPassAndToken`` answers ``{"otp", "token", "url"}``, ``url`` being the
**webmail** host, which this simulator serves at ``GET /webmail/``. The user API
(``/json.php``) carries the per-mailbox forwards (``addForward``, ``removeForward``,
``getForwards``) that the admin action ``getAllForwardsDomain`` lists.

State lives in a :class:`PolarisMailSimulator` attached to the app that
:func:`create_app` builds; message texts are this simulator's own (the real ones
are not published) and are listed in the provider docs.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from flask import Flask, Response, jsonify, request

from .control import SimulatorBase, UnknownAccount, install

ADMIN_PATH = "/admin/json.php"
USER_API_PATH = "/json.php"             # the user-level API (forwards), a user token per mailbox
LOGIN_PATH = "/processlogin.php"        # the user control panel's one-time-password login
WEBMAIL_PATH = "/webmail/"              # stands in for the webmail host getOTPassAndToken names
VERIFICATION_HOST = "mx-verification"
DKIM_SELECTOR = "dkim._domainkey"
BASIC, ENHANCED = 1, 2
MB_PER_GB = 1000              # the Blesta module converts the API's quotas with 1000

_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_LOCAL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9._+-]{0,62}[a-z0-9_+-])?$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class ApiError(Exception):
    """A refusal: ``returncode 0`` with ``message`` in ``returndata`` (HTTP 200)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 1000)
    return f"pbkdf2_sha256$1000${salt.hex()}${digest.hex()}"


def check_password(stored: str, password: str) -> bool:
    _, rounds, salt, digest = stored.split("$")
    candidate = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(rounds))
    return hmac.compare_digest(candidate.hex(), digest)


def _flag(value: bool) -> str:
    return "1" if value else "0"


# --- the data -------------------------------------------------------------------

@dataclass
class User:
    username: str
    password_hash: str = field(repr=False)
    uname: str = ""
    account_type: int = BASIC
    quota_gb: float = 10
    used_mb: int = 0
    disabled: bool = False
    twofa_allowed: bool = True
    language: str = "en"

    def quota_mb(self) -> int:
        return int(round(self.quota_gb * MB_PER_GB))

    def record(self, domain: str) -> dict[str, Any]:
        """One entry of getAllUsersDomain / getUserInfo."""
        return {"username": self.username, "domain": domain, "email": f"{self.username}@{domain}",
                "uname": self.uname, "account_type": self.account_type, "quota": self.quota_mb(),
                "usage": self.used_mb, "disabled": int(self.disabled),
                "twofa_allowed": int(self.twofa_allowed), "user_language": self.language,
                "lastauth_timestamp": None}


@dataclass
class MailList:
    lname: str
    listtype: int = 1
    members: list[str] = field(default_factory=list)


@dataclass
class Domain:
    id: int
    name: str
    foreign: bool = False                 # registered by another PolarisMail customer
    active: bool = True
    verified: bool = True
    verify_at: float | None = None        # clock() at which verification completes
    verification_code: str = ""
    timezone: str = "UTC"
    catchall: str = ""
    dkim_enabled: bool = False
    dkim_host: str = ""
    dkim_key: str = ""
    users: dict[str, User] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)      # alias -> forward
    lists: dict[str, MailList] = field(default_factory=dict)
    forwards: list[tuple[str, str]] = field(default_factory=list)   # (username, forward address)
    brand: dict[str, str] = field(default_factory=dict)             # empty: the reseller's default

    def addresses(self) -> set[str]:
        return set(self.users) | set(self.aliases) | set(self.lists)

    def status(self) -> str:
        if not self.active:
            return "suspended"
        return "active" if self.verified else "pending"

    def list_entry(self) -> dict[str, Any]:
        """One entry of getAllDomains (field names as polarismail-go reads them)."""
        return {"id": str(self.id), "domain": self.name, "isauditdomain": "0", "domaintype": "1",
                "active": _flag(self.active)}

    def info(self) -> dict[str, Any]:
        """getDomainInfo's returndata (field names as polarismail-go reads them)."""
        return {"dtzone": self.timezone, "expiry_notifications": 0, "catchall": self.catchall,
                "domaintype": "1", "webmail": "1", "vusers": len(self.users),
                "aliases": len(self.aliases), "lists": len(self.lists), "active": _flag(self.active),
                "exchange_enabled": "0", "audit_enabled": "0", "localdelivery": "1",
                "totalQuota": sum(u.quota_mb() for u in self.users.values()), "homecountry": ""}

    def dkim(self) -> dict[str, str]:
        return {"dkim_enabled": _flag(self.dkim_enabled), "dkim_host": self.dkim_host,
                "dkim_key": self.dkim_key}

    def forward_entries(self) -> list[dict[str, str]]:
        """getAllForwardsDomain's returndata (the fields the Blesta module's forwards tab reads)."""
        return [{"username": user, "forward": target} for user, target in self.forwards]


#: what a domain without branding of its own shows (getDomainBrandInfo)
DEFAULT_BRAND = {"brandname": "", "supportemail": "", "brandcolor": "", "brandlink": "",
                 "basic_logo": "", "basic_logo_href": ""}


# --- the simulator --------------------------------------------------------------

class PolarisMailSimulator(SimulatorBase):
    name: ClassVar[str] = "polarismail"
    # PolarisMail keeps no per-domain limits: only the status can drift.
    mutable_fields: ClassVar[frozenset[str]] = frozenset({"status"})

    def __init__(self, *, username: str, password: str, activation_delay: float = 0.0,
                 token_ttl: float = 600.0, otp_ttl: float = 60.0, seed: int | None = None,
                 clock: Callable[[], float] = time.time, taken_domains: Iterable[str] = (),
                 plan_basic: int | None = None, plan_enhanced: int | None = None,
                 webmail_url: str | None = None):
        super().__init__(seed=seed)
        self.webmail_url = webmail_url
        self.username = username
        self.password = password
        self.activation_delay = activation_delay
        self.token_ttl = token_ttl
        self.otp_ttl = otp_ttl
        self.clock = clock
        self.taken_domains = tuple(d.strip().lower() for d in taken_domains)
        self.plan = {BASIC: plan_basic, ENHANCED: plan_enhanced}
        self.reset_state()

    # --- control hooks -----------------------------------------------------------
    def action_name(self, req) -> str:
        if req.path == ADMIN_PATH:
            return req.form.get("action") or "unknown"
        if req.path == USER_API_PATH:
            return "user:" + (req.form.get("action") or "unknown")
        return req.path.strip("/") or "unknown"

    def error_response(self, status: int, message: str, code: str) -> Response:
        response = jsonify({"returncode": 0, "returndata": message})
        response.status_code = status
        return response

    def malformed_response(self) -> Response:
        return Response('{"returncode": 1, "returndata": [{"id": "4', status=200,
                        mimetype="application/json")

    def state(self) -> dict[str, Any]:
        return {"accounts": [self.state_entry(d) for d in self.own_domains()]}

    def state_entry(self, d: Domain) -> dict[str, Any]:
        self.refresh(d)
        return {
            "id": d.name, "domain": d.name, "status": d.status(), "limits": {},
            "mailboxes": [{"id": u.username, "address": f"{u.username}@{d.name}", "name": u.uname,
                           "quota_gb": u.quota_gb, "type": "enhanced" if u.account_type == ENHANCED else "basic",
                           "enabled": not u.disabled, "used_mb": u.used_mb} for u in d.users.values()],
            "aliases": [{"id": a, "address": f"{a}@{d.name}", "target": fwd} for a, fwd in d.aliases.items()],
            "lists": [{"id": lst.lname, "address": f"{lst.lname}@{d.name}", "members": list(lst.members)}
                      for lst in d.lists.values()],
            "native": {**d.list_entry(), "info": d.info(), "verified": d.verified,
                       "verification_code": d.verification_code, "dkim": d.dkim(),
                       "forwards": d.forward_entries(), "brand": {**DEFAULT_BRAND, **d.brand}},
        }

    def reset_state(self) -> None:
        with self.lock:
            self.domains: dict[str, Domain] = {}
            self.tokens: dict[str, float] = {}
            self.otps: dict[str, tuple[str, float]] = {}
            self.user_tokens: dict[str, tuple[str, float]] = {}     # token -> (address, expiry)
            self.webmail_otps: dict[str, tuple[str, str, float]] = {}  # otp -> (address, token, expiry)
            self.admin_brand = dict(DEFAULT_BRAND)
            self._next_id = 1
            for name in self.taken_domains:
                self.add_domain(name, foreign=True)

    def mutate(self, account_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        d = self.domains.get(account_id.strip().lower())
        if d is None or d.foreign:
            raise UnknownAccount(account_id)
        status = changes["status"]
        if status == "deleted":
            entry = self.state_entry(d)
            del self.domains[d.name]
            return {**entry, "status": "deleted"}
        if status == "active":
            d.active, d.verified, d.verify_at = True, True, None
        elif status == "suspended":
            d.active = False
        elif status == "pending":
            d.active, d.verified, d.verify_at = True, False, None
        return self.state_entry(d)

    # --- helpers --------------------------------------------------------------------
    def own_domains(self) -> list[Domain]:
        return [d for d in self.domains.values() if not d.foreign]

    def add_domain(self, name: str, *, foreign: bool = False) -> Domain:
        delayed = self.activation_delay > 0 and not foreign
        d = Domain(id=self._next_id, name=name, foreign=foreign, verified=not delayed,
                   verify_at=self.clock() + self.activation_delay if delayed else None,
                   verification_code="polarismail-verify-" + secrets.token_hex(8))
        self._next_id += 1
        self.domains[name] = d
        return d

    def refresh(self, d: Domain) -> None:
        # Verification is evaluated lazily on every read: no background thread.
        if not d.verified and d.verify_at is not None and self.clock() >= d.verify_at:
            d.verified, d.verify_at = True, None

    def issue_token(self) -> str:
        now = self.clock()
        self.tokens = {t: exp for t, exp in self.tokens.items() if exp > now}
        token = secrets.token_hex(20)
        self.tokens[token] = now + self.token_ttl
        return token

    def issue_otp(self, address: str) -> str:
        otp = secrets.token_urlsafe(18)
        self.otps[otp] = (address, self.clock() + self.otp_ttl)
        return otp

    def redeem_otp(self, otp: str, address: str) -> bool:
        """True once for a live one-time password of ``address`` (it is spent either way)."""
        entry = self.otps.pop(otp, None) if otp else None
        return entry is not None and entry[0] == address and entry[1] > self.clock()

    def issue_user_token(self, address: str) -> str:
        now = self.clock()
        self.user_tokens = {t: e for t, e in self.user_tokens.items() if e[1] > now}
        token = secrets.token_hex(20)
        self.user_tokens[token] = (address, now + self.token_ttl)
        return token

    def user_of(self, token: str) -> tuple[Domain, User]:
        """The mailbox a user-API token belongs to (it must still exist)."""
        entry = self.user_tokens.get(token)
        if entry is None or entry[1] <= self.clock():
            raise ApiError("Invalid or expired token")
        username, _, domain = entry[0].partition("@")
        d = self.domains.get(domain)
        if d is None or d.foreign or username not in d.users:
            raise ApiError("Invalid or expired token")
        return d, d.users[username]

    def token_valid(self, token: str) -> bool:
        expires = self.tokens.get(token)
        return expires is not None and expires > self.clock()

    def domain(self, form: dict[str, str], key: str = "domain") -> Domain:
        name = form.get(key, "").strip().lower()
        d = self.domains.get(name)
        if d is None or d.foreign:
            raise ApiError("Domain not found")
        self.refresh(d)
        return d

    def usable_domain(self, form: dict[str, str], key: str = "domain") -> Domain:
        d = self.domain(form, key)
        if not d.verified:
            raise ApiError("Domain ownership is not verified")
        return d

    def count_type(self, account_type: int) -> int:
        return sum(1 for d in self.own_domains() for u in d.users.values() if u.account_type == account_type)

    def check_plan(self, account_type: int) -> None:
        cap = self.plan.get(account_type)
        if cap is not None and self.count_type(account_type) >= cap:
            kind = "enhanced" if account_type == ENHANCED else "basic"
            raise ApiError(f"Maximum number of {kind} accounts reached for your plan")


# --- request parsing ------------------------------------------------------------------

def _required(form: dict[str, str], key: str) -> str:
    value = form.get(key, "").strip()
    if not value:
        raise ApiError(f"Missing parameter: {key}")
    return value


def _local_part(form: dict[str, str], key: str, what: str) -> str:
    value = _required(form, key).lower()
    if not _LOCAL_RE.match(value):
        raise ApiError(f"Invalid {what}")
    return value


def _email(value: str, what: str) -> str:
    value = value.strip().lower()
    if not _EMAIL_RE.match(value):
        raise ApiError(f"Invalid {what}")
    return value


def _account_type(value: str) -> int:
    if value not in ("1", "2"):
        raise ApiError("Invalid account type")
    return int(value)


def _quota_gb(value: str) -> float:
    try:
        quota = float(value)
    except ValueError:
        raise ApiError("Invalid quota") from None
    if not quota > 0:
        raise ApiError("Invalid quota")
    return int(quota) if quota.is_integer() else quota


def _int(form: dict[str, str], key: str, default: int) -> int:
    raw = form.get(key, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ApiError(f"Invalid {key}") from None


def _user(d: Domain, form: dict[str, str], key: str = "username") -> User:
    user = d.users.get(form.get(key, "").strip().lower())
    if user is None:
        raise ApiError("User does not exist")
    return user


def _list(d: Domain, form: dict[str, str], key: str = "lname") -> MailList:
    lst = d.lists.get(form.get(key, "").strip().lower())
    if lst is None:
        raise ApiError("List does not exist")
    return lst


def _check_free(d: Domain, name: str) -> None:
    if name in d.users:
        raise ApiError("User already exists")
    if name in d.aliases:
        raise ApiError("Alias already exists")
    if name in d.lists:
        raise ApiError("List already exists")


def ok(data: Any = "OK", **extra: Any) -> Response:
    return jsonify({"returncode": 1, "returndata": data, **extra})


# --- the API actions -------------------------------------------------------------------

Handler = Callable[[PolarisMailSimulator, dict[str, str]], Response]
ACTIONS: dict[str, Handler] = {}


def action(name: str):
    def register(fn: Handler) -> Handler:
        ACTIONS[name] = fn
        return fn
    return register


# domains

@action("isDomainAvailable")
def is_domain_available(sim, form):
    name = _required(form, "domain").lower()
    if not _DOMAIN_RE.match(name):
        raise ApiError("Invalid domain name")
    if name in sim.domains:
        raise ApiError("Domain is not available")
    return ok("Domain is available")


@action("addDomain")
def add_domain(sim, form):
    name = _required(form, "newdomain").lower()
    if not _DOMAIN_RE.match(name):
        raise ApiError("Invalid domain name")
    if name in sim.domains:
        raise ApiError("Domain already exists")
    sim.add_domain(name)
    return ok("Domain added")


@action("removeDomain")
def remove_domain(sim, form):
    d = sim.domain(form)
    del sim.domains[d.name]
    return ok("Domain removed")


@action("updateDomain")
def update_domain(sim, form):
    d = sim.domain(form)
    if "editdomainactive" in form:
        if form["editdomainactive"] not in ("0", "1"):
            raise ApiError("Invalid value for editdomainactive")
        d.active = form["editdomainactive"] == "1"
    if "editdtzone" in form:
        d.timezone = form["editdtzone"]
    if "editcatchall" in form:
        d.catchall = form["editcatchall"]
    return ok("Domain updated")


@action("getAllDomains")
def get_all_domains(sim, form):
    return ok([d.list_entry() for d in sim.own_domains()])


@action("getDomainInfo")
def get_domain_info(sim, form):
    return ok(sim.domain(form).info())


@action("getDomainVerification")
def get_domain_verification(sim, form):
    d = sim.domain(form)
    if d.verified:
        # The Blesta module reads returncode 0 here as "verification complete".
        return jsonify({"returncode": 0, "returndata": "Domain is already verified"})
    return ok(d.verification_code,
              message=f"Add a TXT record for {VERIFICATION_HOST}.{d.name} with this value to verify "
                      f"the ownership of {d.name}")


@action("getDomainAssignedQuota")
def get_domain_assigned_quota(sim, form):
    d = sim.domain(form)
    return ok({"totalquota": sum(u.quota_mb() for u in d.users.values())})


@action("getAdminStats")
def get_admin_stats(sim, form):
    domains = sim.own_domains()

    def cap(value: int | None) -> str:
        return "-1" if value is None else str(value)
    return ok({"curemails": sim.count_type(BASIC), "cureemails": str(sim.count_type(ENHANCED)),
               "maxemails": cap(sim.plan[BASIC]), "maxeemails": cap(sim.plan[ENHANCED]),
               "curdomains": str(len(domains)), "maxdomains": "-1",
               "curquota": str(sum(u.quota_mb() for d in domains for u in d.users.values())),
               "maxquota": "-1", "autogrow_quota": "0"})


# users (mailboxes)

@action("addUser")
def add_user(sim, form):
    d = sim.usable_domain(form)
    username = _local_part(form, "username", "username")
    account_type = _account_type(form.get("account_type", "1"))
    password = form.get("password", "")
    if not password:
        raise ApiError("Missing parameter: password")
    quota = _quota_gb(_required(form, "quota"))
    _check_free(d, username)
    sim.check_plan(account_type)
    d.users[username] = User(username=username, password_hash=_hash_password(password),
                             uname=form.get("uname", "").strip(), account_type=account_type,
                             quota_gb=quota, twofa_allowed=form.get("twofa_allowed", "1") != "0",
                             language=form.get("user_language", "en") or "en")
    return ok("User added")


@action("updateUser")
def update_user(sim, form):
    d = sim.domain(form, "editdomain")
    user = _user(d, form, "editusername")
    account_type = _account_type(form["editaccount_type"]) if form.get("editaccount_type") else None
    quota = _quota_gb(form["editquota"]) if form.get("editquota") else None
    if "editpassword" in form and not form["editpassword"]:
        raise ApiError("Invalid password")
    if account_type is not None and account_type != user.account_type:
        sim.check_plan(account_type)
        user.account_type = account_type
    if quota is not None:
        user.quota_gb = quota
    if "edituname" in form:
        user.uname = form["edituname"].strip()
    if form.get("editpassword"):
        user.password_hash = _hash_password(form["editpassword"])
    return ok("User updated")


@action("removeUser")
def remove_user(sim, form):
    d = sim.domain(form)
    username = _user(d, form).username
    del d.users[username]
    d.forwards = [f for f in d.forwards if f[0] != username]       # its forwards go with it
    return ok("User removed")


@action("disableUser")
def disable_user(sim, form):
    _user(sim.domain(form), form).disabled = True
    return ok("User disabled")


@action("enableUser")
def enable_user(sim, form):
    _user(sim.domain(form), form).disabled = False
    return ok("User enabled")


@action("getUserInfo")
def get_user_info(sim, form):
    d = sim.domain(form)
    return ok(_user(d, form).record(d.name))


def _user_page(d: Domain, users: list[User], form: dict[str, str]) -> Response:
    records = [u.record(d.name) for u in users]
    if form.get("slicing") == "1":
        offset = max(0, _int(form, "offset", 0))
        limit = max(0, _int(form, "limit", 10))
        records = records[offset:offset + limit]
    return ok(records, meta={"all": len(users)})


@action("getAllUsersDomain")
def get_all_users_domain(sim, form):
    d = sim.domain(form)
    return _user_page(d, list(d.users.values()), form)


@action("searchUsers")
def search_users(sim, form):
    d = sim.domain(form)
    needle = form.get("search", "").strip().lower()
    found = [u for u in d.users.values() if needle in u.username or needle in u.uname.lower()]
    return _user_page(d, found, form)


@action("getTotalUsersDomain")
def get_total_users_domain(sim, form):
    d = sim.domain(form)
    atype = form.get("atype", "").strip().upper()
    wanted = {"1": BASIC, "B": BASIC, "2": ENHANCED, "E": ENHANCED}.get(atype)
    if atype and wanted is None:
        raise ApiError("Invalid account type")
    return ok(sum(1 for u in d.users.values() if wanted is None or u.account_type == wanted))


@action("getOTPass")
def get_ot_pass(sim, form):
    # returndata is the bare one-time password (the Blesta module base64-encodes it
    # into processlogin.php?p= and also sends it as the password of a user-API login).
    d = sim.usable_domain(form)
    user = _user(d, form)
    return ok(sim.issue_otp(f"{user.username}@{d.name}"))


@action("getOTPassAndToken")
def get_ot_pass_and_token(sim, form):
    # returndata is an object {otp, token, url}: the Blesta module's getUserWebmailLoginUrl
    # reads returndata->otp, ->token and ->url (the webmail host).
    d = sim.usable_domain(form)
    user = _user(d, form)
    address = f"{user.username}@{d.name}"
    otp = secrets.token_urlsafe(18)
    token = sim.issue_user_token(address)
    sim.webmail_otps[otp] = (address, token, sim.clock() + sim.otp_ttl)
    url = sim.webmail_url or request.host_url.rstrip("/") + WEBMAIL_PATH
    return ok({"otp": otp, "token": token, "url": url})


# aliases

@action("addAlias")
def add_alias(sim, form):
    d = sim.usable_domain(form)
    alias = _local_part(form, "alias", "alias")
    forward = _required(form, "forward")
    if "@" not in forward:                       # a mailbox of the domain by its username
        forward = f"{forward}@{d.name}"
    forward = _email(forward, "forward address")
    _check_free(d, alias)
    d.aliases[alias] = forward
    return ok("Alias added")


@action("removeAlias")
def remove_alias(sim, form):
    d = sim.domain(form)
    if d.aliases.pop(form.get("alias", "").strip().lower(), None) is None:
        raise ApiError("Alias does not exist")
    return ok("Alias removed")


@action("getAllAliasesDomain")
def get_all_aliases_domain(sim, form):
    d = sim.domain(form)
    return ok([{"alias": a, "domain": d.name, "forward": fwd} for a, fwd in d.aliases.items()])


# distribution lists

@action("addList")
def add_list(sim, form):
    d = sim.usable_domain(form)
    lname = _local_part(form, "newlname", "list name")
    listtype = _int(form, "newlisttype", 1)
    if listtype < 1:
        raise ApiError("Invalid list type")
    _check_free(d, lname)
    d.lists[lname] = MailList(lname=lname, listtype=listtype)
    return ok("List added")


@action("removeList")
def remove_list(sim, form):
    d = sim.domain(form)
    del d.lists[_list(d, form).lname]
    return ok("List removed")


@action("getAllListsDomain")
def get_all_lists_domain(sim, form):
    d = sim.domain(form)
    return ok([{"lname": lst.lname, "domain": d.name, "listtype": str(lst.listtype),
                "members": len(lst.members)} for lst in d.lists.values()])


@action("getListMembers")
def get_list_members(sim, form):
    d = sim.domain(form)
    return ok([{"member": m} for m in _list(d, form).members])


@action("addListMember")
def add_list_member(sim, form):
    d = sim.domain(form, "editdomain")
    lst = _list(d, form, "editlname")
    member = _email(_required(form, "newmember"), "member address")
    if member in lst.members:
        raise ApiError("Member already exists")
    lst.members.append(member)
    return ok("Member added")


@action("removeListMember")
def remove_list_member(sim, form):
    d = sim.domain(form)
    lst = _list(d, form)
    member = form.get("member", "").strip().lower()
    if member not in lst.members:
        raise ApiError("Member does not exist")
    lst.members.remove(member)
    return ok("Member removed")


# forwards (per mailbox; written through the user API, listed per domain here)

@action("getAllForwardsDomain")
def get_all_forwards_domain(sim, form):
    return ok(sim.domain(form).forward_entries())


# branding

_BRAND_FIELDS = ("brandname", "supportemail", "brandcolor", "newlogo")
_COLOR_RE = re.compile(r"^[0-9a-fA-F]{6}$")


@action("getDomainBrandInfo")
def get_domain_brand_info(sim, form):
    return ok({**DEFAULT_BRAND, **sim.domain(form).brand})


@action("getAdminBrandInfo")
def get_admin_brand_info(sim, form):
    return ok(dict(sim.admin_brand))


@action("setDomainBrandingV2")
def set_domain_branding_v2(sim, form):
    # The Blesta module posts brand as a PHP array: brand[brandname], brand[supportemail],
    # brand[brandcolor] (hex without "#") and brand[newlogo] (the file's bytes; left out
    # when no new logo is uploaded, as http_build_query drops nulls).
    d = sim.domain(form)
    brand = {key: form[f"brand[{key}]"] for key in _BRAND_FIELDS if f"brand[{key}]" in form}
    if not brand:
        raise ApiError("Missing parameter: brand")
    color = brand.get("brandcolor", "").strip().lstrip("#")
    if color and not _COLOR_RE.match(color):
        raise ApiError("Invalid brand color")
    email = brand.get("supportemail", "").strip()
    if email:
        _email(email, "support email")
    logo = brand.pop("newlogo", "")
    updated = {k: v.strip() for k, v in brand.items()}
    if "brandcolor" in updated:
        updated["brandcolor"] = color
    if logo:
        updated["basic_logo"] = f"{d.name}.png"
        updated["basic_logo_href"] = f"{request.host_url.rstrip('/')}/branding/{d.name}.png"
    d.brand.update(updated)
    return ok("Branding updated")


@action("resetDomainBranding")
def reset_domain_branding(sim, form):
    sim.domain(form).brand.clear()
    return ok("Branding reset")


# DKIM

@action("getDKIM")
def get_dkim(sim, form):
    return ok(sim.domain(form).dkim())


@action("enableDKIM")
def enable_dkim(sim, form):
    d = sim.usable_domain(form)
    if not d.dkim_key:
        public_key = base64.b64encode(secrets.token_bytes(162)).decode()
        d.dkim_host = DKIM_SELECTOR
        d.dkim_key = f"v=DKIM1; k=rsa; p={public_key}"
    d.dkim_enabled = True
    # polarismail-go reads the new record from top-level dkimhost / dkimkey.
    return ok("DKIM enabled", dkimhost=d.dkim_host, dkimkey=d.dkim_key)


@action("disableDKIM")
def disable_dkim(sim, form):
    sim.domain(form).dkim_enabled = False
    return ok("DKIM disabled")


# --- the user API (/json.php): what one mailbox may do with its own user token ----------------

UserHandler = Callable[[PolarisMailSimulator, Domain, User, dict[str, str]], Response]
USER_ACTIONS: dict[str, UserHandler] = {}


def user_action(name: str):
    def register(fn: UserHandler) -> UserHandler:
        USER_ACTIONS[name] = fn
        return fn
    return register


def _user_login(sim: PolarisMailSimulator, form: dict[str, str]) -> Response:
    # The Blesta module's userLogin: username (local part), password = a getOTPass
    # one-time password, domain; returndata is the user token.
    address = f"{form.get('username', '').strip().lower()}@{form.get('domain', '').strip().lower()}"
    if not sim.redeem_otp(form.get("password", ""), address):
        raise ApiError("Invalid credentials")
    return ok(sim.issue_user_token(address))


@user_action("getForwards")
def get_forwards(sim, d, user, form):
    return ok([{"forward": target} for name, target in d.forwards if name == user.username])


@user_action("addForward")
def add_forward(sim, d, user, form):
    target = _email(_required(form, "newforward"), "forward address")
    if target == f"{user.username}@{d.name}":
        raise ApiError("Invalid forward address")
    if (user.username, target) in d.forwards:
        raise ApiError("Forward already exists")
    d.forwards.append((user.username, target))
    return ok("Forward added")


@user_action("removeForward")
def remove_forward(sim, d, user, form):
    entry = (user.username, form.get("forward", "").strip().lower())
    if entry not in d.forwards:
        raise ApiError("Forward does not exist")
    d.forwards.remove(entry)
    return ok("Forward removed")


# --- routes --------------------------------------------------------------------------------

def _form() -> dict[str, str]:
    return {k: v for k, v in request.form.items()}


def _decode(value: str) -> str | None:
    try:
        return base64.b64decode(value.encode(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _register_routes(app: Flask, sim: PolarisMailSimulator) -> None:
    @app.post(ADMIN_PATH)
    def admin_api():
        form = _form()
        name = form.get("action", "")
        with sim.lock:
            try:
                if name == "login":
                    return _login(sim, form)
                handler = ACTIONS.get(name)
                if handler is None:
                    raise ApiError("Invalid action")
                if not sim.token_valid(form.get("token", "")):
                    raise ApiError("Invalid or expired token")
                return handler(sim, form)
            except ApiError as exc:
                return jsonify({"returncode": 0, "returndata": exc.message})

    @app.post(USER_API_PATH)
    def user_api():
        form = _form()
        name = form.get("action", "")
        with sim.lock:
            try:
                if name == "login":
                    return _user_login(sim, form)
                handler = USER_ACTIONS.get(name)
                if handler is None:
                    raise ApiError("Invalid action")
                d, user = sim.user_of(form.get("token", ""))
                return handler(sim, d, user, form)
            except ApiError as exc:
                return jsonify({"returncode": 0, "returndata": exc.message})

    @app.get(LOGIN_PATH)
    def process_login():
        address = _decode(request.args.get("u", ""))
        otp = _decode(request.args.get("p", ""))
        with sim.lock:
            good = address is not None and otp is not None and sim.redeem_otp(otp, address)
        if not good:
            return _page("Login failed", "Login failed.", 403)
        return _page("Control panel", f"Control panel: signed in as {address}.")

    @app.get(WEBMAIL_PATH)
    def webmail_login():
        # How the real webmail host takes otp and token is not published; the adapter
        # and this page agree on ?otp=&token= (docs/providers/polarismail.md).
        otp, token = request.args.get("otp", ""), request.args.get("token", "")
        with sim.lock:
            entry = sim.webmail_otps.pop(otp, None) if otp else None
            good = (entry is not None and entry[2] > sim.clock()
                    and hmac.compare_digest(entry[1].encode(), token.encode()))
        if not good:
            return _page("Login failed", "Login failed.", 403)
        return _page("Webmail", f"Webmail: signed in as {entry[0]}.")


def _page(title: str, text: str, status: int = 200) -> Response:
    return Response(f"<!doctype html><title>{html.escape(title)}</title><p>{html.escape(text)}</p>",
                    status=status, mimetype="text/html")


def _login(sim: PolarisMailSimulator, form: dict[str, str]) -> Response:
    good_user = hmac.compare_digest(form.get("username", "").encode(), sim.username.encode())
    good_pass = hmac.compare_digest(form.get("password", "").encode(), sim.password.encode())
    if not (good_user and good_pass):
        raise ApiError("Invalid credentials")
    return ok(sim.issue_token())


def create_app(*, username: str = "dev-admin", password: str = "dev-polaris-password",
               activation_delay: float = 0.0, token_ttl: float = 600.0, seed: int | None = None,
               otp_ttl: float = 60.0, clock: Callable[[], float] | None = None,
               taken_domains: Iterable[str] = (), plan_basic: int | None = None,
               plan_enhanced: int | None = None, webmail_url: str | None = None,
               **_ignored: Any) -> Flask:
    """A fresh PolarisMail simulator app.

    ``username``/``password``: the reseller login the API accepts; ``activation_delay``:
    seconds until a new domain's ownership counts as verified; ``token_ttl`` /
    ``otp_ttl``: lifetimes of login tokens and webmail one-time passwords;
    ``taken_domains``: domains other PolarisMail customers already host;
    ``plan_basic`` / ``plan_enhanced``: the reseller plan's account totals (None:
    unlimited); ``webmail_url``: the webmail host getOTPassAndToken names (default: this
    server's ``/webmail/``); ``seed``: for the fault dice; ``clock``: wall-clock seconds (tests).
    Other options (e.g. ``api_key`` from ``provisioner simulate``) are ignored."""
    for option, value in (("activation_delay", activation_delay), ("token_ttl", token_ttl),
                          ("otp_ttl", otp_ttl)):
        if value < 0:
            raise ValueError(f"{option} must not be negative")
    if not username or not password:
        raise ValueError("username and password are required")
    app = Flask(__name__)
    app.json.sort_keys = False
    sim = PolarisMailSimulator(username=username, password=password,
                               activation_delay=activation_delay, token_ttl=token_ttl,
                               otp_ttl=otp_ttl, seed=seed, clock=clock or time.time,
                               taken_domains=taken_domains, plan_basic=plan_basic,
                               plan_enhanced=plan_enhanced, webmail_url=webmail_url)
    install(app, sim)          # first: faults and call counting precede everything else
    _register_routes(app, sim)
    return app


#: the options `provisioner simulate polarismail` reads from the environment when not given
create_app.env_options = {"username": "POLARISMAIL_USERNAME", "password": "POLARISMAIL_PASSWORD"}  # type: ignore[attr-defined]
