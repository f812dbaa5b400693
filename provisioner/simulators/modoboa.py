"""Simulator of Modoboa's REST API v2 (docs/providers/modoboa.md).

What a real Modoboa 2.12 answered, for the calls the adapter makes: JSON under
``/api/v2/``, ``Authorization: Token <40 hex>`` (401 ``{"detail": ...}`` without it),
quotas as strings in MB (a number it cannot read is stored as 0, unlimited),
lists paged as ``{"count", "next", "previous", "results"}`` (``page``,
``page_size``; a page past the last is 404 ``{"detail": "Invalid page."}``),
field errors as ``400 {"field": ["message"]}``, a mailbox quota beyond its domain's
as ``400 {"error": "<domain>: domain quota exceeded"}``, an account on an unknown
domain as 404.

Quirks kept on purpose: domains are deleted by ``POST /domains/{pk}/delete/``
(``DELETE`` on the domain or on that path answers ``400 {"name": ["This field is
required."]}`` and deletes nothing); deleting a domain leaves its users, still active
and without a mailbox, unless the global parameter ``auto_account_removal`` is on;
``/accounts/?domain=`` takes the domain's pk, ``/aliases/?domain=`` its name; an unknown
pk is ``404 {"detail": "No Domain matches the given query."}`` (``User``, ``Alias``);
create and update answer an account without its mailbox's usage (only reads carry
``quota_usage``); ``/accounts/`` lists the superadmin ``admin`` (``mailbox: null``);
each new mailbox takes an alias pk for its hidden internal alias; the global parameters
are ``{"label", "params"}`` and PUT takes the bare ``params`` (200, no body).
tests/real/test_modoboa_parity.py holds this simulator to the real instance's answers.

``/_sim/state`` shows each domain as the provisioner sees a service: the postmaster
mailbox and the adapter's memo alias (``provisioner-settings@``) are in ``native``,
not among ``mailboxes``/``aliases``, and the memo's count limits are in ``limits``.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import math
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlencode

from flask import Flask, Response, jsonify, request

from .control import ControlError, SimulatorBase, UnknownAccount, install

API = "/api/v2"
DEFAULT_PAGE_SIZE = 50
ROLES = ("SuperAdmins", "Resellers", "DomainAdmins", "SimpleUsers")
POSTMASTER = "postmaster"
MEMO_LOCAL = "provisioner-settings"
LIST_TAG = "provisioner:list"
MIB = 1024 * 1024

_HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)b?\s*$", re.IGNORECASE)


class ApiError(Exception):
    def __init__(self, status: int, body: Any = None):
        super().__init__(str(body))
        self.status = status
        self.body = body


def field_error(name: str, message: str, status: int = 400) -> ApiError:
    return ApiError(status, {name: [message]})


def not_found(model: str) -> ApiError:
    """Django's get_object_or_404 through DRF: the model's name in the detail."""
    return ApiError(404, {"detail": f"No {model} matches the given query."})


def _hash(password: str) -> str:
    salt = secrets.token_bytes(16)
    return f"{salt.hex()}${hashlib.pbkdf2_hmac('sha256', password.encode(), salt, 1000).hex()}"


def _verify(stored: str, password: str) -> bool:
    salt, digest = stored.split("$")
    candidate = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), 1000).hex()
    return hmac.compare_digest(candidate, digest)


def size_mb(value: Any) -> int:
    """Modoboa's size2integer: "500", "2G", "300KB" as MB; anything unreadable is 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(0, value)
    match = _SIZE.match(str(value or ""))
    if not match:
        return 0
    number, unit = int(match.group(1)), match.group(2).lower()
    return {"k": number // 1024, "g": number * 1024}.get(unit, number)


def password_error(password: Any) -> str | None:
    """Modoboa's default policy: 8+ characters with upper case, lower case and a digit."""
    if not isinstance(password, str) or len(password) < 8:
        return "This password is too short. It must contain at least 8 characters."
    if not any(c.isdigit() for c in password):
        return "Password must contain at least 1 digit."
    if not any(c.isupper() for c in password):
        return "Password must contain at least 1 uppercase letter."
    if not any(c.islower() for c in password):
        return "Password must contain at least 1 lowercase letter."
    return None


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class Domain:
    pk: int
    name: str
    quota: int = 0
    default_mailbox_quota: int = 0
    enabled: bool = True
    type: str = "domain"
    enable_dns_checks: bool = True
    creation: str = field(default_factory=_now)
    last_modification: str = field(default_factory=_now)


@dataclass
class User:
    pk: int
    username: str
    password: str = field(repr=False)
    role: str = "SimpleUsers"
    is_active: bool = True
    first_name: str = ""
    last_name: str = ""
    domain_pk: int | None = None          # None: no mailbox (its domain was deleted)
    mailbox_pk: int | None = None
    quota: int = 0                        # MB, 0 = unlimited
    use_domain_quota: bool = False
    used_bytes: int = 0
    date_joined: str = field(default_factory=_now)


@dataclass
class Alias:
    pk: int
    address: str
    domain_pk: int
    recipients: list[str]
    enabled: bool = True
    description: str = ""
    creation: str = field(default_factory=_now)
    last_modification: str = field(default_factory=_now)


class ModoboaSimulator(SimulatorBase):
    name: ClassVar[str] = "modoboa"
    mutable_fields: ClassVar[frozenset[str]] = frozenset({"status", "limits", "used_mb"})

    def __init__(self, *, token: str, seed: int | None = None, auto_account_removal: bool = False):
        super().__init__(seed=seed)
        self.token = token
        self.default_auto_removal = auto_account_removal
        self.reset_state()

    # --- control hooks ---------------------------------------------------------------
    def action_name(self, req) -> str:
        return req.endpoint if req.endpoint and req.url_rule is not None else "unknown"

    def error_response(self, status: int, message: str, code: str) -> Response:
        detail = {429: "Request was throttled.", 500: "Server Error (500)", 404: "Not found.",
                  405: "Method not allowed."}.get(status, message)
        if status == 500:         # Django's own error page, not JSON
            return Response("<h1>Server Error (500)</h1>", status=500, mimetype="text/html")
        return _json({"detail": detail}, status)

    def reset_state(self) -> None:
        with self.lock:
            self.domains: dict[int, Domain] = {}
            self.users: dict[int, User] = {}
            self.aliases: dict[int, Alias] = {}
            self.auto_account_removal = self.default_auto_removal
            self._serials = {"domain": 0, "user": 0, "mailbox": 0, "alias": 0}
            # the superadmin that owns the token (Modoboa's deploy creates "admin")
            self.users[self._next("user")] = User(pk=1, username="admin", password=_hash("password"),
                                                  role="SuperAdmins")

    def state(self) -> dict[str, Any]:
        return {"accounts": [self.domain_entry(d) for d in sorted(self.domains.values(), key=lambda d: d.pk)],
                "orphaned_users": [u.username for u in self.users.values()
                                   if u.domain_pk is None and u.role == "SimpleUsers"]}

    def mutate(self, account_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        d = self.domains.get(int(account_id)) if account_id.isdigit() else None
        if d is None:
            raise UnknownAccount(account_id)
        for key, value in (changes.get("limits") or {}).items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ControlError(f"limits: {key} must be a whole number", "limits")
            if key == "domain_quota_gb":
                d.quota = value * 1024
            elif key == "mailbox_quota_mb":
                d.default_mailbox_quota = value
                self.domain_saved(d)
            else:
                raise ControlError(f"limits: {key} cannot be set on a Modoboa domain", "limits")
        used = changes.get("used_mb")
        if used is not None:
            if not isinstance(used, dict):
                raise ControlError("used_mb: must map addresses to MB", "used_mb")
            for address, mb in used.items():
                user = self.user_by_name(str(address).lower())
                if user is None or user.domain_pk != d.pk or not isinstance(mb, int):
                    raise ControlError(f"used_mb: no mailbox {address} in this domain", "used_mb")
                user.used_bytes = mb * MIB
        status = changes.get("status")
        if status == "deleted":
            entry = self.domain_entry(d)
            self.delete_domain(d)
            return {**entry, "status": "deleted"}
        if status in ("active", "suspended"):
            d.enabled = status == "active"
        elif status == "pending":
            raise ControlError("status: a Modoboa domain is never pending", "status")
        return self.domain_entry(d)

    # --- normalised state ------------------------------------------------------------
    def memo(self, d: Domain) -> dict[str, Any]:
        alias = self.alias_by_address(f"{MEMO_LOCAL}@{d.name}")
        try:
            data = json.loads(alias.description) if alias else {}
        except ValueError:
            data = {}
        return data if isinstance(data, dict) else {}

    def domain_entry(self, d: Domain) -> dict[str, Any]:
        users = self.domain_users(d)
        boxes = [u for u in users if u.username != f"{POSTMASTER}@{d.name}"]
        own = [a for a in self.domain_aliases(d) if a.address != f"{MEMO_LOCAL}@{d.name}"]
        counts = {k: v for k, v in (self.memo(d).get("limits") or {}).items()
                  if k in ("mailboxes", "aliases", "distribution_lists")}
        postmaster = self.user_by_name(f"{POSTMASTER}@{d.name}")
        return {
            "id": str(d.pk), "domain": d.name, "status": "active" if d.enabled else "suspended",
            "limits": {"domain_quota_gb": d.quota // 1024, "mailbox_quota_mb": d.default_mailbox_quota, **counts},
            "mailboxes": [{"id": str(u.pk), "address": u.username,
                           "name": " ".join(p for p in (u.first_name, u.last_name) if p),
                           "quota_gb": None if not u.quota else max(1, math.ceil(u.quota / 1024)),
                           "quota_mb": u.quota, "type": "basic", "enabled": u.is_active,
                           "used_mb": u.used_bytes // MIB} for u in boxes],
            "aliases": [{"id": str(a.pk), "address": a.address, "target": a.recipients[0]}
                        for a in own if not is_list(a)],
            "lists": [{"id": str(a.pk), "address": a.address, "members": list(a.recipients)}
                      for a in own if is_list(a)],
            "native": {**self.domain_resource(d),
                       "postmaster": None if postmaster is None else
                       {"pk": postmaster.pk, "is_active": postmaster.is_active},
                       "inactive_accounts": sorted(u.username for u in users if not u.is_active),
                       "memo": self.memo(d)},
        }

    # --- look-ups ---------------------------------------------------------------------
    def _next(self, kind: str) -> int:
        self._serials[kind] += 1
        return self._serials[kind]

    def domain_by_name(self, name: str) -> Domain | None:
        return next((d for d in self.domains.values() if d.name == name), None)

    def user_by_name(self, username: str) -> User | None:
        return next((u for u in self.users.values() if u.username == username), None)

    def alias_by_address(self, address: str) -> Alias | None:
        return next((a for a in self.aliases.values() if a.address == address), None)

    def domain_users(self, d: Domain) -> list[User]:
        return sorted((u for u in self.users.values() if u.domain_pk == d.pk), key=lambda u: u.username)

    def domain_aliases(self, d: Domain) -> list[Alias]:
        return sorted((a for a in self.aliases.values() if a.domain_pk == d.pk), key=lambda a: a.address)

    def allocated(self, d: Domain, without: User | None = None) -> int:
        return sum(u.quota for u in self.domain_users(d) if u is not without)

    def domain_saved(self, d: Domain) -> None:
        """Modoboa's post_save handler on Domain: every mailbox that uses the domain's quota
        gets its (new) default mailbox quota, whatever that does to the domain's total."""
        for user in self.domain_users(d):
            if user.use_domain_quota:
                user.quota = d.default_mailbox_quota

    def delete_domain(self, d: Domain) -> None:
        for user in self.domain_users(d):
            if self.auto_account_removal:
                del self.users[user.pk]
            else:   # the mailbox goes with the domain; the user stays, still active
                user.domain_pk, user.mailbox_pk, user.used_bytes = None, None, 0
        for alias in self.domain_aliases(d):
            del self.aliases[alias.pk]
        del self.domains[d.pk]

    # --- representations -----------------------------------------------------------
    def domain_resource(self, d: Domain) -> dict[str, Any]:
        allocated = self.allocated(d)
        return {
            "pk": d.pk, "name": d.name, "quota": str(d.quota),
            "default_mailbox_quota": str(d.default_mailbox_quota), "enabled": d.enabled, "type": d.type,
            "enable_dkim": False, "dkim_key_selector": "modoboa", "dkim_key_length": None,
            "dkim_public_key": "", "dkim_private_key_path": "",
            "mailbox_count": len(self.domain_users(d)),
            "mbalias_count": len(self.domain_aliases(d)), "domainalias_count": 0,
            "dns_global_status": "disabled" if not d.enable_dns_checks else "pending",
            "message_limit": None, "creation": d.creation, "last_modification": d.last_modification,
            "allocated_quota_in_percent": int(allocated * 100 / d.quota) if d.quota else 0,
            "enable_dns_checks": d.enable_dns_checks, "transport": None, "opened_alarms_count": 0,
            "sent_messages": None, "sent_messages_in_percent": None, "last_dns_check_execution": None,
        }

    def user_resource(self, u: User) -> dict[str, Any]:
        """An account as lists and single reads show it (``AccountSerializer``)."""
        body = self.user_written(u)
        if body["mailbox"] is not None:
            body["mailbox"] = {"pk": u.mailbox_pk, "full_address": u.username,
                               "use_domain_quota": u.use_domain_quota, "quota": str(u.quota),
                               "message_limit": None,
                               # a whole percentage of the quota, truncated; 0 when unlimited
                               "quota_usage": int(u.used_bytes * 100 / (u.quota * MIB)) if u.quota else 0,
                               "is_send_only": False, "sent_messages_in_percent": None}
        body.update({"domains": [],
                     "aliases": [a.address for a in self.aliases.values() if u.username in a.recipients],
                     "possible_actions": [], "badges": [], "resources": []})
        return body

    @staticmethod
    def user_written(u: User) -> dict[str, Any]:
        """An account as create and update answer it (``WritableAccountSerializer``): the
        mailbox without its address or usage, and no lists of aliases, domains or actions."""
        mailbox = None
        if u.mailbox_pk is not None:
            mailbox = {"pk": u.mailbox_pk, "use_domain_quota": u.use_domain_quota, "quota": str(u.quota),
                       "message_limit": None, "is_send_only": False}
        return {"pk": u.pk, "username": u.username, "first_name": u.first_name, "last_name": u.last_name,
                "is_active": u.is_active, "master_user": False, "mailbox": mailbox, "role": u.role,
                "language": "en", "phone_number": None, "secondary_email": None,
                "tfa_enabled": False, "totp_enabled": False, "webauthn_enabled": False,
                "date_joined": u.date_joined, "last_login": None}

    @staticmethod
    def alias_resource(a: Alias) -> dict[str, Any]:
        return {"pk": a.pk, "address": a.address, "enabled": a.enabled, "recipients": list(a.recipients),
                "expire_at": None, "description": a.description, "creation": a.creation,
                "last_modification": a.last_modification}


def is_list(alias: Alias) -> bool:
    return alias.description == LIST_TAG or len(alias.recipients) > 1


# --- request helpers ---------------------------------------------------------------------------

def _json(body: Any, status: int = 200) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True) if request.data else {}
    if not isinstance(body, dict):
        raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary, but got str."]})
    return body


def _bool(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "1"):
        return True
    if str(value).lower() in ("false", "0"):
        return False
    raise field_error(key, "Must be a valid boolean.")


def _page(items: list[Any], render) -> Response:
    try:
        size = int(request.args.get("page_size", DEFAULT_PAGE_SIZE))
        size = size if size > 0 else DEFAULT_PAGE_SIZE
    except ValueError:
        size = DEFAULT_PAGE_SIZE
    raw_page = request.args.get("page", "1")
    try:
        page = int(raw_page)
    except ValueError:
        page = 0
    pages = max(1, math.ceil(len(items) / size))
    if page < 1 or page > pages:
        raise ApiError(404, {"detail": "Invalid page."})

    def link(number: int) -> str:
        return f"{request.base_url}?{urlencode({**request.args.to_dict(), 'page': number})}"

    chunk = items[(page - 1) * size: page * size]
    return _json({"count": len(items), "next": link(page + 1) if page < pages else None,
                  "previous": link(page - 1) if page > 1 else None,
                  "results": [render(i) for i in chunk]})


def _domain(sim: ModoboaSimulator, pk: int) -> Domain:
    d = sim.domains.get(pk)
    if d is None:
        raise not_found("Domain")
    return d


# --- domains -------------------------------------------------------------------------------------

def domains_list(sim: ModoboaSimulator):
    search = request.args.get("search", "").strip().lower()
    found = sorted((d for d in sim.domains.values() if d.name.startswith(search)), key=lambda d: d.name)
    return _page(found, sim.domain_resource)


def _quotas(body: dict[str, Any], quota: int, default: int) -> tuple[int, int]:
    quota = size_mb(body["quota"]) if "quota" in body else quota
    default = size_mb(body["default_mailbox_quota"]) if "default_mailbox_quota" in body else default
    return quota, default


def domains_create(sim: ModoboaSimulator):
    body = _body()
    name = str(body.get("name") or "").strip().lower()
    if not name:
        raise field_error("name", "This field is required.")
    if not _HOST.match(name):
        raise field_error("name", "Enter a valid domain name")
    if sim.domain_by_name(name):
        raise field_error("name", "domain with this name already exists.")
    dtype = body.get("type", "domain")
    if dtype not in ("domain", "relaydomain"):
        raise field_error("type", f'"{dtype}" is not a valid choice.')
    if dtype == "relaydomain":
        raise field_error("transport", "This field is required")
    quota, default = _quotas(body, 0, 0)
    if quota and default > quota:
        raise field_error("default_mailbox_quota", "Cannot be greater than domain quota")
    d = Domain(pk=sim._next("domain"), name=name, quota=quota, default_mailbox_quota=default,
               enabled=_bool(body, "enabled", True), enable_dns_checks=_bool(body, "enable_dns_checks", True))
    sim.domains[d.pk] = d
    return _json(sim.domain_resource(d), 201)


def domains_get(sim: ModoboaSimulator, pk: int):
    return _json(sim.domain_resource(_domain(sim, pk)))


def domains_update(sim: ModoboaSimulator, pk: int):
    d = _domain(sim, pk)
    body = _body()
    if request.method == "PUT" and "name" not in body:
        raise field_error("name", "This field is required.")
    if "name" in body and str(body["name"]).strip().lower() != d.name:
        other = sim.domain_by_name(str(body["name"]).strip().lower())
        if other:
            raise field_error("name", "domain with this name already exists.")
    quota, default = _quotas(body, d.quota, d.default_mailbox_quota)
    if quota and default > quota and ("quota" in body and "default_mailbox_quota" in body):
        raise field_error("default_mailbox_quota", "Cannot be greater than domain quota")
    d.quota, d.default_mailbox_quota = quota, default
    d.enabled = _bool(body, "enabled", d.enabled)
    d.enable_dns_checks = _bool(body, "enable_dns_checks", d.enable_dns_checks)
    d.last_modification = _now()
    sim.domain_saved(d)
    return _json(sim.domain_resource(d))


def domains_delete(sim: ModoboaSimulator, pk: int):
    d = _domain(sim, pk)
    _bool(_body(), "keep_folder", False)
    sim.delete_domain(d)
    return Response(status=204)


def domains_destroy(sim: ModoboaSimulator, pk: int):
    """DELETE on a domain or on its delete action: the viewset has no destroy, so Django
    dispatches to the ``delete`` action's method with the domain serializer, which wants a
    name. Nothing is deleted, whatever the pk."""
    raise field_error("name", "This field is required.")


# --- accounts ------------------------------------------------------------------------------------

def _user(sim: ModoboaSimulator, pk: int) -> User:
    u = sim.users.get(pk)
    if u is None:
        raise not_found("User")
    return u


def accounts_list(sim: ModoboaSimulator):
    users = sorted(sim.users.values(), key=lambda u: u.username)
    raw = request.args.get("domain")
    if raw not in (None, ""):
        if not raw.isdigit() or int(raw) not in sim.domains:
            raise field_error("domain", "Select a valid choice. That choice is not one of the available choices.")
        users = [u for u in users if u.domain_pk == int(raw)]
    search = request.args.get("search", "").strip().lower()
    if search:
        users = [u for u in users if search in u.username or u.first_name.lower().startswith(search)
                 or u.last_name.lower().startswith(search)]
    return _page(users, sim.user_resource)


def _mailbox_quota(sim: ModoboaSimulator, d: Domain, user: User | None, mailbox: dict[str, Any],
                   creating: bool) -> tuple[int, bool]:
    use_domain = _bool(mailbox, "use_domain_quota", user.use_domain_quota if user else False)
    if not use_domain and "quota" not in mailbox and creating:
        raise ApiError(400, {"mailbox": {"quota": ["This field is required"]}})
    if "quota" in mailbox:
        quota = size_mb(mailbox["quota"])
    elif use_domain:
        quota = d.default_mailbox_quota
    else:
        quota = user.quota if user else 0
    old = user.quota if user else 0
    # set_quota: a quota that grows must fit in the domain's (0 is allowed to the superadmin)
    if d.quota and quota > old and sim.allocated(d, without=user) + quota > d.quota:
        raise ApiError(400, {"error": f"{d.name}: domain quota exceeded"})
    return quota, use_domain


def accounts_create(sim: ModoboaSimulator):
    body = _body()
    role = body.get("role")
    if role not in ROLES:
        raise field_error("role", f'"{role}" is not a valid choice.' if role else "This field is required.")
    username = str(body.get("username") or "").strip().lower()
    if not username:
        raise field_error("username", "This field is required.")
    if role == "SimpleUsers" and not _EMAIL.match(username):
        raise field_error("username", "Enter a valid email address.")
    if sim.user_by_name(username):
        raise field_error("username", "user with this username already exists.")
    problem = password_error(body.get("password")) if body.get("password") else "This field is required."
    mailbox = body.get("mailbox")
    if mailbox is None and role == "SimpleUsers":
        mailbox = {"use_domain_quota": True}
    d = None
    if mailbox is not None:
        if not isinstance(mailbox, dict):
            raise ApiError(400, {"mailbox": {"non_field_errors": ["Invalid data."]}})
        local, _, domain_name = username.partition("@")
        d = sim.domain_by_name(domain_name)
        if d is None:
            raise not_found("Domain")
        if len(local) > 64:
            raise field_error("username", "The left part of an email address can't be more than 64 characters.")
    if problem:
        raise field_error("password", problem)
    quota, use_domain = _mailbox_quota(sim, d, None, mailbox, True) if d else (0, False)
    u = User(pk=sim._next("user"), username=username, password=_hash(body["password"]), role=role,
             is_active=_bool(body, "is_active", True), first_name=str(body.get("first_name") or "")[:150],
             last_name=str(body.get("last_name") or "")[:150], domain_pk=d.pk if d else None,
             mailbox_pk=sim._next("mailbox") if d else None, quota=quota, use_domain_quota=use_domain)
    sim.users[u.pk] = u
    if d is not None:
        sim._next("alias")        # the mailbox's own internal alias: never listed, but it takes a pk
    return _json(sim.user_written(u), 201)


def accounts_get(sim: ModoboaSimulator, pk: int):
    return _json(sim.user_resource(_user(sim, pk)))


def accounts_update(sim: ModoboaSimulator, pk: int):
    u = _user(sim, pk)
    body = _body()
    if "password" in body and body["password"]:
        problem = password_error(body["password"])
        if problem:
            raise field_error("password", problem)
    quota = None
    if isinstance(body.get("mailbox"), dict) and u.domain_pk is not None:
        quota = _mailbox_quota(sim, sim.domains[u.domain_pk], u, body["mailbox"], False)
    if body.get("password"):
        u.password = _hash(body["password"])
    if quota is not None:
        u.quota, u.use_domain_quota = quota
    u.is_active = _bool(body, "is_active", u.is_active)
    for key in ("first_name", "last_name"):
        if key in body:
            setattr(u, key, str(body[key] or "")[:150])
    return _json(sim.user_written(u))


def accounts_delete(sim: ModoboaSimulator, pk: int):
    u = _user(sim, pk)
    _bool(_body(), "keepdir", False)
    del sim.users[u.pk]
    return Response(status=204)


# --- aliases -------------------------------------------------------------------------------------

def _alias(sim: ModoboaSimulator, pk: int) -> Alias:
    a = sim.aliases.get(pk)
    if a is None:
        raise not_found("Alias")
    return a


def aliases_list(sim: ModoboaSimulator):
    aliases = sorted(sim.aliases.values(), key=lambda a: a.address)
    name = request.args.get("domain")
    if name not in (None, ""):
        d = sim.domain_by_name(name.lower())
        if d is None:
            raise field_error("domain", "Select a valid choice. That choice is not one of the available choices.")
        aliases = [a for a in aliases if a.domain_pk == d.pk]
    search = request.args.get("search", "").strip().lower()
    if search:
        aliases = [a for a in aliases if search in a.address]
    return _page(aliases, sim.alias_resource)


def _recipients(body: dict[str, Any]) -> list[str]:
    recipients = body.get("recipients")
    if recipients is None:
        raise field_error("recipients", "This field is required.")
    if not isinstance(recipients, list):
        raise field_error("recipients", 'Expected a list of items but got type "str".')
    if not recipients:
        raise field_error("recipients", "This list may not be empty.")
    bad = [r for r in recipients if not isinstance(r, str) or not _EMAIL.match(r.strip())]
    if bad:
        raise ApiError(400, {"recipients": {str(recipients.index(bad[0])): ["Enter a valid email address."]}})
    return [r.strip().lower() for r in recipients]


def _local_recipients_exist(sim: ModoboaSimulator, recipients: list[str], address: str) -> None:
    """Alias.add_recipients: a recipient in a local domain must be a mailbox or an alias."""
    for recipient in recipients:
        local, _, domain_name = recipient.partition("@")
        d = sim.domain_by_name(domain_name)
        if d is None:
            continue
        if recipient == address:
            raise ApiError(409, {"error": "An alias cannot point at itself"})
        if not any(u.username == recipient for u in sim.domain_users(d)) and sim.alias_by_address(recipient) is None:
            raise ApiError(404, {"error": f"Local recipient {local}@{domain_name} not found"})


def aliases_create(sim: ModoboaSimulator):
    body = _body()
    address = str(body.get("address") or "").strip().lower()
    if not address:
        raise field_error("address", "This field is required.")
    local, _, domain_name = address.partition("@")
    if not _EMAIL.match(address) or not local:
        raise field_error("address", "Enter a valid email address.")
    d = sim.domain_by_name(domain_name)
    if d is None:
        raise field_error("address", "Domain does not exist")
    if sim.alias_by_address(address):
        raise field_error("address", "This alias already exists")
    recipients = _recipients(body)
    _local_recipients_exist(sim, recipients, address)
    a = Alias(pk=sim._next("alias"), address=address, domain_pk=d.pk, recipients=recipients,
              enabled=_bool(body, "enabled", True), description=str(body.get("description") or ""))
    sim.aliases[a.pk] = a
    return _json(sim.alias_resource(a), 201)


def aliases_get(sim: ModoboaSimulator, pk: int):
    return _json(sim.alias_resource(_alias(sim, pk)))


def aliases_update(sim: ModoboaSimulator, pk: int):
    a = _alias(sim, pk)
    body = _body()
    if request.method == "PUT" and ("address" not in body or "recipients" not in body):
        raise field_error("address" if "address" not in body else "recipients", "This field is required.")
    if "recipients" not in body:
        # AliasSerializer.update calls set_recipients(None) when the body has none: a crash
        return Response("<h1>Server Error (500)</h1>", status=500, mimetype="text/html")
    recipients = _recipients(body)
    _local_recipients_exist(sim, recipients, a.address)
    a.recipients = recipients
    a.enabled = _bool(body, "enabled", a.enabled)
    if "description" in body:
        a.description = str(body["description"] or "")
    a.last_modification = _now()
    return _json(sim.alias_resource(a))


def aliases_delete(sim: ModoboaSimulator, pk: int):
    del sim.aliases[_alias(sim, pk).pk]
    return Response(status=204)


# --- global parameters ("admin" application) ------------------------------------------------------

#: ``AdminGlobalParametersSerializer``'s fields and defaults; the two without a default are
#: required on PUT
ADMIN_PARAMETERS: dict[str, Any] = {
    "enable_mx_checks": True, "valid_mxs": "", "domains_must_have_authorized_mx": False,
    "enable_ipv6_mx_checks": True, "enable_spf_checks": True, "enable_dkim_checks": True,
    "enable_dmarc_checks": True, "dmarc_check_is_critical": True, "enable_autoconfig_checks": True,
    "enable_dns_notifications": True, "custom_dns_server": None, "enable_dnsbl_checks": True,
    "dkim_keys_storage_dir": "", "dkim_default_key_length": 2048, "default_domain_quota": 0,
    "default_domain_message_limit": None, "handle_mailboxes": False, "default_mailbox_quota": 0,
    "default_mailbox_message_limit": None, "auto_account_removal": False,
    "auto_create_domain_and_mailbox": True, "create_alias_on_mbox_rename": False,
    "alias_can_target_any_domain": True, "alias_target_block_list": None, "alias_target_allow_list": None,
}
REQUIRED_PARAMETERS = ("custom_dns_server", "dkim_keys_storage_dir")


def parameters_get(sim: ModoboaSimulator):
    return _json({"label": "Administration",
                  "params": {**ADMIN_PARAMETERS, "auto_account_removal": sim.auto_account_removal}})


def parameters_put(sim: ModoboaSimulator):
    """PUT takes the bare ``params`` object; what it leaves out falls back to the default."""
    body = _body()
    missing = {name: ["This field is required."] for name in REQUIRED_PARAMETERS if name not in body}
    if missing:
        raise ApiError(400, missing)
    sim.auto_account_removal = _bool(body, "auto_account_removal", False)
    return Response(status=200)            # the real one answers 200 with an empty body


ROUTES: list[tuple[str, str, str, Any]] = [
    ("GET", "/domains/", "domains.list", domains_list),
    ("POST", "/domains/", "domains.create", domains_create),
    ("GET", "/domains/<int:pk>/", "domains.get", domains_get),
    ("PATCH", "/domains/<int:pk>/", "domains.update", domains_update),
    ("PUT", "/domains/<int:pk>/", "domains.put", domains_update),
    ("DELETE", "/domains/<int:pk>/", "domains.destroy", domains_destroy),
    ("POST", "/domains/<int:pk>/delete/", "domains.delete", domains_delete),
    ("DELETE", "/domains/<int:pk>/delete/", "domains.destroy_action", domains_destroy),
    ("GET", "/accounts/", "accounts.list", accounts_list),
    ("POST", "/accounts/", "accounts.create", accounts_create),
    ("GET", "/accounts/<int:pk>/", "accounts.get", accounts_get),
    ("PATCH", "/accounts/<int:pk>/", "accounts.update", accounts_update),
    ("POST", "/accounts/<int:pk>/delete/", "accounts.delete", accounts_delete),
    ("GET", "/aliases/", "aliases.list", aliases_list),
    ("POST", "/aliases/", "aliases.create", aliases_create),
    ("GET", "/aliases/<int:pk>/", "aliases.get", aliases_get),
    ("PATCH", "/aliases/<int:pk>/", "aliases.update", aliases_update),
    ("PUT", "/aliases/<int:pk>/", "aliases.put", aliases_update),
    ("DELETE", "/aliases/<int:pk>/", "aliases.delete", aliases_delete),
    ("GET", "/parameters/global/admin/", "parameters.get", parameters_get),
    ("PUT", "/parameters/global/admin/", "parameters.put", parameters_put),
]


def _register_routes(app: Flask, sim: ModoboaSimulator) -> None:
    @app.before_request
    def _authenticate():
        if not request.path.startswith(API + "/"):
            return None
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if not header:
            return _json({"detail": "Authentication credentials were not provided."}, 401)
        if scheme != "Token" or not hmac.compare_digest(given.strip().encode(), sim.token.encode()):
            return _json({"detail": "Invalid token."}, 401)
        return None

    @app.errorhandler(ApiError)
    def _api_error(err: ApiError):
        return _json(err.body, err.status)

    def bind(handler):
        def view(**params: Any) -> Response:
            with sim.lock:
                return handler(sim, **params)
        return view

    for method, rule, endpoint, handler in ROUTES:
        app.add_url_rule(API + rule, endpoint=endpoint, view_func=bind(handler), methods=[method])


def check_password(app: Flask, username: str, password: str) -> bool:
    """Whether ``username`` would log in (by IMAP) with ``password``: its stored hash
    matches, it is active, and its mailbox's domain is enabled (tests)."""
    sim: ModoboaSimulator = app.extensions["simulator"]
    with sim.lock:
        user = sim.user_by_name(username.lower())
        if user is None or not user.is_active or not _verify(user.password, password):
            return False
        domain = sim.domains.get(user.domain_pk) if user.domain_pk is not None else None
        return domain is not None and domain.enabled


def create_app(*, token: str = "dev0modoboa0token0000000000000000000000", seed: int | None = None,
               auto_account_removal: bool = False, **_ignored: Any) -> Flask:
    """A fresh Modoboa simulator app. ``token``: the API token it accepts;
    ``auto_account_removal``: Modoboa's global parameter (off by default, as installed).
    Other options (e.g. ``api_key`` from ``provisioner simulate``) are ignored."""
    if not token:
        raise ValueError("token is required")
    app = Flask(__name__)
    app.json.sort_keys = False
    app.url_map.strict_slashes = True
    sim = ModoboaSimulator(token=token, seed=seed, auto_account_removal=auto_account_removal)
    install(app, sim)
    _register_routes(app, sim)
    return app


#: the options `provisioner simulate modoboa` reads from the environment when not given
create_app.env_options = {"token": "MODOBOA_TOKEN"}  # type: ignore[attr-defined]
