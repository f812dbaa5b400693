"""Simulator of the ``sandbox`` upstream (docs/sandbox-api.md).

All state lives in a :class:`SandboxSimulator` attached to the app that
:func:`create_app` builds, so every app (and every test) starts empty.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from flask import Flask, Response, jsonify, request

from .control import ControlError, SimulatorBase, UnknownAccount, control_route, install

LIMIT_KEYS = ("mailboxes", "enhanced_mailboxes", "mailbox_quota_gb", "aliases", "distribution_lists")
STATUSES = ("pending", "active", "suspended", "deleted")
MAILBOX_TYPES = ("basic", "enhanced")
MAX_PER_PAGE = 500
#: the most accounts one ``/_sim/seed`` makes
SEED_MAX = 2_000_000

_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_LOCAL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9._+-]{0,62}[a-z0-9_+-])?$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class ApiError(Exception):
    """An error answer of the sandbox API."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def _invalid(field_name: str, problem: str) -> ApiError:
    return ApiError(400, "invalid_request", f"{field_name}: {problem}", field_name)


def _hash_password(password: str) -> str:
    # Salted and slow enough to be a real hash, fast enough for tests.
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 1000)
    return f"pbkdf2_sha256$1000${salt.hex()}${digest.hex()}"


def check_password(stored: str, password: str) -> bool:
    _, rounds, salt, digest = stored.split("$")
    candidate = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(rounds))
    return hmac.compare_digest(candidate.hex(), digest)


# --- request validation ---------------------------------------------------

def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise _invalid("body", "must be a JSON object")
    return body


def _only(body: dict[str, Any], allowed: tuple[str, ...], prefix: str = "") -> None:
    for key in body:
        if key not in allowed:
            raise _invalid(prefix + key, f"unknown field (allowed: {', '.join(allowed)})")


def _string(body: dict[str, Any], key: str, *, required: bool = False, prefix: str = "") -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise _invalid(prefix + key, "required")
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise _invalid(prefix + key, "must be a non-empty string" if required else "must be a string")
    return value


def _int(value: Any, name: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _invalid(name, f"must be an integer >= {minimum}")
    return value


def _date(value: Any, name: str) -> dt.date:
    # fromisoformat alone would also take "20261221" and week dates.
    if isinstance(value, str) and _DATE_RE.match(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise _invalid(name, "must be a date YYYY-MM-DD")


def _limits(value: Any, name: str = "limits") -> dict[str, int | None]:
    """Limit values are integers >= 0, or null for "not enforced"."""
    if not isinstance(value, dict):
        raise _invalid(name, "must be an object")
    _only(value, LIMIT_KEYS, prefix=f"{name}.")
    return {k: None if v is None else _int(v, f"{name}.{k}") for k, v in value.items()}


def _local_part(body: dict[str, Any]) -> str:
    value = _string(body, "local_part", required=True).lower()
    if not _LOCAL_RE.match(value):
        raise _invalid("local_part", "not a valid mailbox name")
    return value


def _email(value: Any, name: str) -> str:
    if not isinstance(value, str) or not _EMAIL_RE.match(value):
        raise _invalid(name, "must be an e-mail address")
    return value.lower()


def _members(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise _invalid("members", "must be a list of e-mail addresses")
    return [_email(m, f"members[{i}]") for i, m in enumerate(value)]


def _page_arg(name: str, default: int, maximum: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _invalid(name, "must be an integer") from None
    if value < 1 or (maximum is not None and value > maximum):
        bound = f"between 1 and {maximum}" if maximum else ">= 1"
        raise _invalid(name, f"must be {bound}")
    return value


# --- the data ---------------------------------------------------------------

@dataclass
class Mailbox:
    id: str
    address: str
    password_hash: str
    name: str = ""
    quota_gb: int | None = None
    type: str = "basic"
    enabled: bool = True
    used_mb: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "address": self.address, "name": self.name,
                "quota_gb": self.quota_gb, "type": self.type, "enabled": self.enabled,
                "used_mb": self.used_mb}


@dataclass
class Alias:
    id: str
    address: str
    target: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "address": self.address, "target": self.target}


@dataclass
class MailList:
    id: str
    address: str
    members: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "address": self.address, "members": list(self.members)}


@dataclass
class Account:
    id: str
    external_id: str
    domain: str
    status: str
    limits: dict[str, int | None]
    created_at: str
    updated_at: str
    activate_at: float | None = None       # clock() at which pending turns active
    suspend_reason: str | None = None
    paid_until: dt.date | None = None
    owner: dict[str, str] = field(default_factory=dict)
    password_hash: str | None = None
    mailboxes: dict[str, Mailbox] = field(default_factory=dict)
    aliases: dict[str, Alias] = field(default_factory=dict)
    lists: dict[str, MailList] = field(default_factory=dict)

    def usage(self) -> dict[str, int]:
        boxes = self.mailboxes.values()
        return {
            "mailboxes": len(self.mailboxes),
            "enhanced_mailboxes": sum(1 for m in boxes if m.type == "enhanced"),
            "aliases": len(self.aliases),
            "distribution_lists": len(self.lists),
            "storage_mb": sum(m.used_mb for m in boxes),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "external_id": self.external_id, "domain": self.domain,
            "status": self.status, "suspend_reason": self.suspend_reason,
            "limits": dict(self.limits),
            "paid_until": self.paid_until.isoformat() if self.paid_until else None,
            "owner": dict(self.owner), "usage": self.usage(),
            "created_at": self.created_at, "updated_at": self.updated_at,
        }

    def addresses(self) -> set[str]:
        return ({m.address for m in self.mailboxes.values()}
                | {a.address for a in self.aliases.values()}
                | {lst.address for lst in self.lists.values()})


class SandboxSimulator(SimulatorBase):
    name: ClassVar[str] = "sandbox"
    mutable_fields: ClassVar[frozenset[str]] = frozenset(
        {"status", "limits", "suspend_reason", "paid_until", "used_mb"})

    #: API action of each Flask endpoint, filled in by ``_register_routes``
    actions: dict[str, str]

    def __init__(self, *, activation_delay: float = 0.0, api_key: str | None = None,
                 seed: int | None = None, clock: Callable[[], float] = time.time):
        super().__init__(seed=seed)
        self.activation_delay = activation_delay
        self.api_key = api_key
        self.clock = clock
        self.actions = {}
        self.reset_state()

    # --- control hooks ---------------------------------------------------
    def action_name(self, req) -> str:
        return self.actions.get(req.endpoint or "", "unknown")

    def error_response(self, status: int, message: str, code: str) -> Response:
        response = jsonify({"error": {"code": code, "message": message}})
        response.status_code = status
        return response

    def state(self) -> dict[str, Any]:
        accounts = []
        for acc in self.accounts.values():
            self._refresh(acc)
            accounts.append({
                "id": acc.id, "domain": acc.domain, "status": acc.status,
                "limits": dict(acc.limits),
                "mailboxes": [m.as_dict() for m in acc.mailboxes.values()],
                "aliases": [a.as_dict() for a in acc.aliases.values()],
                "lists": [lst.as_dict() for lst in acc.lists.values()],
                "native": acc.as_dict(),
            })
        return {"accounts": accounts}

    def reset_state(self) -> None:
        with self.lock:
            self.accounts: dict[str, Account] = {}
            self.order: list[str] = []          # account ids in creation order (never removed)
            self._serial: dict[str, int] = {}

    def add(self, acc: Account) -> None:
        self.accounts[acc.id] = acc
        self.order.append(acc.id)

    def seed(self, body: Any) -> dict[str, Any]:
        """``POST /_sim/seed``: ``count`` active accounts at once, for benchmarks at scale.

        ``id``, ``external_id`` and ``domain`` are templates in which ``{n}`` runs from
        ``first`` (default 1); ``limits`` are every account's (default: the create's)."""
        if not isinstance(body, dict):
            raise ControlError("the body must be a JSON object")
        unknown = set(body) - {"count", "first", "id", "external_id", "domain", "limits"}
        if unknown:
            raise ControlError(f"{sorted(unknown)[0]}: unknown field", sorted(unknown)[0])
        count, first = body.get("count"), body.get("first", 1)
        for name, value, low in (("count", count, 1), ("first", first, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= SEED_MAX:
                raise ControlError(f"{name}: an integer from {low} to {SEED_MAX}", name)
        templates = {}
        for name, default in (("id", "seed_{n}"), ("external_id", "{n}"), ("domain", "seed-{n}.example.com")):
            template = body.get(name, default)
            if not isinstance(template, str) or "{n}" not in template:
                raise ControlError(f"{name}: a string with {{n}} in it", name)
            templates[name] = template
        if not _DOMAIN_RE.match(templates["domain"].replace("{n}", str(first))):
            raise ControlError("domain: not a valid domain name", "domain")
        try:
            limits = _limits(body.get("limits", {"mailboxes": 1}))
        except ApiError as exc:
            raise ControlError(f"limits: {exc.message}", "limits") from None
        now = self.now_iso()
        with self.lock:
            ids = [templates["id"].replace("{n}", str(n)) for n in range(first, first + count)]
            taken = next((i for i in ids if i in self.accounts), None)
            if taken is not None:
                raise ControlError(f"id: {taken} exists already", "id")
            for n, account_id in enumerate(ids, start=first):
                self.add(Account(id=account_id, external_id=templates["external_id"].replace("{n}", str(n)),
                                 domain=templates["domain"].replace("{n}", str(n)), status="active",
                                 limits=dict(limits), created_at=now, updated_at=now))
        return {"created": count, "total": len(self.order)}

    def mutate(self, account_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        acc = self.accounts.get(account_id)
        if acc is None:
            raise UnknownAccount(account_id)
        try:
            limits = _limits(changes["limits"]) if "limits" in changes else None
            paid_until = changes.get("paid_until")
            if paid_until is not None:
                paid_until = _date(paid_until, "paid_until")
            reason = changes.get("suspend_reason")
            if reason is not None and not isinstance(reason, str):
                raise _invalid("suspend_reason", "must be a string")
            used = changes.get("used_mb", {})
            if not isinstance(used, dict):
                raise _invalid("used_mb", "must be an object of mailbox id or address to MB")
            boxes = {}
            for key, mb in used.items():
                box = acc.mailboxes.get(key) or next(
                    (m for m in acc.mailboxes.values() if m.address == key), None)
                if box is None:
                    raise _invalid(f"used_mb.{key}", "no such mailbox")
                boxes[box.id] = (box, _int(mb, f"used_mb.{key}"))
        except ApiError as exc:
            raise ControlError(exc.message, exc.field) from None
        # Validated everything first: a rejected mutation changes nothing.
        if "status" in changes:
            acc.status = changes["status"]
            acc.activate_at = None
            if acc.status != "suspended":
                acc.suspend_reason = None
        if "suspend_reason" in changes:
            acc.suspend_reason = reason
        if limits is not None:
            acc.limits.update(limits)
        if "paid_until" in changes:
            acc.paid_until = paid_until
        for box, mb in boxes.values():
            box.used_mb = mb
        self._touch(acc)
        return next(a for a in self.state()["accounts"] if a["id"] == account_id)

    # --- helpers ------------------------------------------------------------
    def new_id(self, prefix: str) -> str:
        self._serial[prefix] = self._serial.get(prefix, 0) + 1
        return f"{prefix}_{self._serial[prefix]:04d}"

    def now_iso(self) -> str:
        stamp = dt.datetime.fromtimestamp(self.clock(), dt.timezone.utc)
        return stamp.isoformat(timespec="seconds").replace("+00:00", "Z")

    def _touch(self, acc: Account) -> None:
        acc.updated_at = self.now_iso()

    def _refresh(self, acc: Account) -> None:
        # Activation is evaluated lazily on every read: no background thread.
        if acc.status == "pending" and acc.activate_at is not None and self.clock() >= acc.activate_at:
            acc.status = "active"
            acc.activate_at = None
            self._touch(acc)

    def account(self, account_id: str) -> Account:
        acc = self.accounts.get(account_id)
        if acc is None:
            raise ApiError(404, "not_found", f"account {account_id} not found")
        self._refresh(acc)
        return acc

    def live_account(self, account_id: str) -> Account:
        acc = self.account(account_id)
        if acc.status == "deleted":
            raise ApiError(409, "conflict", f"account {account_id} is deleted")
        return acc

    def active_account(self, account_id: str) -> Account:
        acc = self.account(account_id)
        if acc.status != "active":
            raise ApiError(409, "conflict", f"account {account_id} is {acc.status}, not active")
        return acc


def _check_limit(acc: Account, key: str, current: int, what: str) -> None:
    limit = acc.limits.get(key)
    if limit is not None and current >= limit:
        raise ApiError(422, "limit_exceeded", f"{what} limit reached: limits.{key} is {limit}")


def _check_quota(acc: Account, quota_gb: int | None) -> None:
    limit = acc.limits.get("mailbox_quota_gb")
    if quota_gb is not None and limit is not None and quota_gb > limit:
        raise ApiError(422, "limit_exceeded",
                       f"quota_gb {quota_gb} is above limits.mailbox_quota_gb ({limit})")


def _check_free(acc: Account, address: str) -> None:
    if address in acc.addresses():
        raise ApiError(409, "conflict", f"{address} already exists")


def _rename(acc: Account, domain: str) -> None:
    """Move the account and every address in it to ``domain`` (the local parts stay)."""
    def moved(address: str) -> str:
        local, at, old = address.rpartition("@")
        return f"{local}@{domain}" if at and old == acc.domain else address

    for box in acc.mailboxes.values():
        box.address = moved(box.address)
    for alias in acc.aliases.values():
        alias.address, alias.target = moved(alias.address), moved(alias.target)
    for lst in acc.lists.values():
        lst.address, lst.members = moved(lst.address), [moved(m) for m in lst.members]
    acc.domain = domain


# --- routes -----------------------------------------------------------------

def _register_routes(app: Flask, sim: SandboxSimulator) -> None:
    def route(rule: str, method: str, action: str):
        def decorator(view):
            endpoint = action.replace(".", "_")
            sim.actions[endpoint] = action

            def locked(**kwargs):
                with sim.lock:
                    return view(**kwargs)
            app.add_url_rule("/api/v1" + rule, endpoint, locked, methods=[method])
            return view
        return decorator

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return sim.error_response(exc.status, exc.message, exc.code)

    @app.before_request
    def _authenticate():
        if sim.api_key is None or not request.path.startswith("/api/"):
            return None
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), sim.api_key.encode()):
            return sim.error_response(401, "missing or invalid API key", "unauthorized")
        return None

    @route("/ping", "GET", "ping")
    def ping():
        return jsonify({"ok": True})

    # --- accounts ---
    @route("/accounts", "GET", "accounts.list")
    def accounts_list():
        page = _page_arg("page", 1)
        per_page = _page_arg("per_page", 100, MAX_PER_PAGE)
        status = request.args.get("status")
        if status is not None and status not in STATUSES:
            raise _invalid("status", f"must be one of {', '.join(STATUSES)}")
        external_id = request.args.get("external_id")
        domain = request.args.get("domain")
        start = (page - 1) * per_page
        if external_id is None and domain is None and status is None:
            # Every account, in creation order: only the page is read (a listing of a
            # million accounts stays a page's work per call).
            ids = sim.order[start:start + per_page]
            matches, total = [sim.accounts[i] for i in ids], len(sim.order)
            for acc in matches:
                sim._refresh(acc)
        else:
            found = []
            for acc in sim.accounts.values():
                sim._refresh(acc)
                if ((external_id is None or acc.external_id == external_id)
                        and (domain is None or acc.domain == domain.lower())
                        and (status is None or acc.status == status)):
                    found.append(acc)
            matches, total = found[start:start + per_page], len(found)
        return jsonify({"data": [a.as_dict() for a in matches], "page": page, "per_page": per_page,
                        "total": total})

    @route("/accounts", "POST", "accounts.create")
    def accounts_create():
        body = _body()
        _only(body, ("external_id", "domain", "limits", "password", "paid_until", "owner"))
        external_id = _string(body, "external_id", required=True)
        domain = _string(body, "domain", required=True).strip().lower()
        if not _DOMAIN_RE.match(domain):
            raise _invalid("domain", "not a valid domain name")
        if "limits" not in body:
            raise _invalid("limits", "required")
        limits = _limits(body["limits"])
        password = _string(body, "password")
        paid_until = _date(body["paid_until"], "paid_until") if body.get("paid_until") is not None else None
        owner_in = body.get("owner") or {}
        if not isinstance(owner_in, dict):
            raise _invalid("owner", "must be an object")
        _only(owner_in, ("email", "name", "company"), prefix="owner.")
        owner = {k: _string(owner_in, k, prefix="owner.") or "" for k in ("email", "name", "company")}
        for acc in sim.accounts.values():
            if acc.external_id == external_id and acc.status != "deleted":
                raise ApiError(409, "conflict",
                               f"external_id {external_id} already has live account {acc.id}")
        now = sim.now_iso()
        delayed = sim.activation_delay > 0
        acc = Account(
            id=sim.new_id("acc"), external_id=external_id, domain=domain,
            status="pending" if delayed else "active", limits=limits,
            created_at=now, updated_at=now,
            activate_at=sim.clock() + sim.activation_delay if delayed else None,
            paid_until=paid_until, owner=owner,
            password_hash=_hash_password(password) if password else None,
        )
        sim.add(acc)
        return jsonify(acc.as_dict()), 201

    @route("/accounts/<account_id>", "GET", "accounts.get")
    def accounts_get(account_id: str):
        return jsonify(sim.account(account_id).as_dict())

    @route("/accounts/<account_id>", "PATCH", "accounts.update")
    def accounts_update(account_id: str):
        acc = sim.live_account(account_id)
        body = _body()
        _only(body, ("limits", "password", "paid_until", "domain"))
        limits = _limits(body["limits"]) if "limits" in body else {}
        password = _string(body, "password", required="password" in body)
        paid_until = _date(body["paid_until"], "paid_until") if body.get("paid_until") is not None else None
        domain = _string(body, "domain", required="domain" in body)
        if domain is not None:
            domain = domain.strip().lower()
            if not _DOMAIN_RE.match(domain):
                raise _invalid("domain", "not a valid domain name")
            _rename(acc, domain)
        acc.limits.update(limits)
        if password:
            acc.password_hash = _hash_password(password)
        if "paid_until" in body:
            acc.paid_until = paid_until
        sim._touch(acc)
        return jsonify(acc.as_dict())

    @route("/accounts/<account_id>/suspend", "POST", "accounts.suspend")
    def accounts_suspend(account_id: str):
        acc = sim.live_account(account_id)
        body = request.get_json(silent=True) or {}
        if not isinstance(body, dict):
            raise _invalid("body", "must be a JSON object")
        reason = _string(body, "reason")
        if acc.status != "suspended":
            acc.status = "suspended"
            acc.activate_at = None
            acc.suspend_reason = reason or None
            sim._touch(acc)
        return jsonify(acc.as_dict())

    @route("/accounts/<account_id>/unsuspend", "POST", "accounts.unsuspend")
    def accounts_unsuspend(account_id: str):
        acc = sim.live_account(account_id)
        if acc.status == "suspended":
            acc.status = "active"
            acc.suspend_reason = None
            sim._touch(acc)
        return jsonify(acc.as_dict())

    @route("/accounts/<account_id>/renew", "POST", "accounts.renew")
    def accounts_renew(account_id: str):
        acc = sim.live_account(account_id)
        body = _body()
        _only(body, ("paid_until",))
        if body.get("paid_until") is None:
            raise _invalid("paid_until", "required")
        until = _date(body["paid_until"], "paid_until")
        if acc.paid_until is None or until > acc.paid_until:
            acc.paid_until = until
            sim._touch(acc)
        return jsonify(acc.as_dict())

    @route("/accounts/<account_id>", "DELETE", "accounts.delete")
    def accounts_delete(account_id: str):
        acc = sim.account(account_id)
        if acc.status == "deleted":
            raise ApiError(404, "not_found", f"account {account_id} is already deleted")
        acc.status = "deleted"
        acc.activate_at = None
        sim._touch(acc)
        return Response(status=204)

    # --- mailboxes ---
    @route("/accounts/<account_id>/mailboxes", "GET", "mailboxes.list")
    def mailboxes_list(account_id: str):
        return jsonify({"data": [m.as_dict() for m in sim.account(account_id).mailboxes.values()]})

    @route("/accounts/<account_id>/mailboxes", "POST", "mailboxes.create")
    def mailboxes_create(account_id: str):
        acc = sim.active_account(account_id)
        body = _body()
        _only(body, ("local_part", "password", "name", "quota_gb", "type"))
        local = _local_part(body)
        password = _string(body, "password", required=True)
        name = _string(body, "name") or ""
        quota = _int(body["quota_gb"], "quota_gb", minimum=1) if body.get("quota_gb") is not None else None
        kind = body.get("type") or "basic"
        if kind not in MAILBOX_TYPES:
            raise _invalid("type", f"must be one of {', '.join(MAILBOX_TYPES)}")
        address = f"{local}@{acc.domain}"
        _check_free(acc, address)
        usage = acc.usage()
        _check_limit(acc, "mailboxes", usage["mailboxes"], "mailbox")
        if kind == "enhanced":
            _check_limit(acc, "enhanced_mailboxes", usage["enhanced_mailboxes"], "enhanced mailbox")
        _check_quota(acc, quota)
        box = Mailbox(id=sim.new_id("mbx"), address=address, password_hash=_hash_password(password),
                      name=name, quota_gb=quota if quota is not None else acc.limits.get("mailbox_quota_gb"),
                      type=kind)
        acc.mailboxes[box.id] = box
        sim._touch(acc)
        return jsonify(box.as_dict()), 201

    def _mailbox(acc: Account, mailbox_id: str) -> Mailbox:
        box = acc.mailboxes.get(mailbox_id)
        if box is None:
            raise ApiError(404, "not_found", f"mailbox {mailbox_id} not found")
        return box

    @route("/accounts/<account_id>/mailboxes/<mailbox_id>", "PATCH", "mailboxes.update")
    def mailboxes_update(account_id: str, mailbox_id: str):
        acc = sim.active_account(account_id)
        box = _mailbox(acc, mailbox_id)
        body = _body()
        _only(body, ("password", "name", "quota_gb", "type", "enabled"))
        password = _string(body, "password", required="password" in body)
        name = _string(body, "name")
        quota = _int(body["quota_gb"], "quota_gb", minimum=1) if body.get("quota_gb") is not None else None
        kind = body.get("type")
        if kind is not None and kind not in MAILBOX_TYPES:
            raise _invalid("type", f"must be one of {', '.join(MAILBOX_TYPES)}")
        enabled = body.get("enabled")
        if enabled is not None and not isinstance(enabled, bool):
            raise _invalid("enabled", "must be true or false")
        if kind == "enhanced" and box.type != "enhanced":
            _check_limit(acc, "enhanced_mailboxes", acc.usage()["enhanced_mailboxes"], "enhanced mailbox")
        _check_quota(acc, quota)
        if password:
            box.password_hash = _hash_password(password)
        if name is not None:
            box.name = name
        if quota is not None:
            box.quota_gb = quota
        if kind is not None:
            box.type = kind
        if enabled is not None:
            box.enabled = enabled
        sim._touch(acc)
        return jsonify(box.as_dict())

    @route("/accounts/<account_id>/mailboxes/<mailbox_id>", "DELETE", "mailboxes.delete")
    def mailboxes_delete(account_id: str, mailbox_id: str):
        acc = sim.active_account(account_id)
        del acc.mailboxes[_mailbox(acc, mailbox_id).id]
        sim._touch(acc)
        return Response(status=204)

    # --- aliases ---
    @route("/accounts/<account_id>/aliases", "GET", "aliases.list")
    def aliases_list(account_id: str):
        return jsonify({"data": [a.as_dict() for a in sim.account(account_id).aliases.values()]})

    @route("/accounts/<account_id>/aliases", "POST", "aliases.create")
    def aliases_create(account_id: str):
        acc = sim.active_account(account_id)
        body = _body()
        _only(body, ("local_part", "target"))
        local = _local_part(body)
        target = _email(body.get("target"), "target")
        address = f"{local}@{acc.domain}"
        _check_free(acc, address)
        _check_limit(acc, "aliases", len(acc.aliases), "alias")
        alias = Alias(id=sim.new_id("als"), address=address, target=target)
        acc.aliases[alias.id] = alias
        sim._touch(acc)
        return jsonify(alias.as_dict()), 201

    @route("/accounts/<account_id>/aliases/<alias_id>", "DELETE", "aliases.delete")
    def aliases_delete(account_id: str, alias_id: str):
        acc = sim.active_account(account_id)
        if acc.aliases.pop(alias_id, None) is None:
            raise ApiError(404, "not_found", f"alias {alias_id} not found")
        sim._touch(acc)
        return Response(status=204)

    # --- distribution lists ---
    @route("/accounts/<account_id>/lists", "GET", "lists.list")
    def lists_list(account_id: str):
        return jsonify({"data": [lst.as_dict() for lst in sim.account(account_id).lists.values()]})

    @route("/accounts/<account_id>/lists", "POST", "lists.create")
    def lists_create(account_id: str):
        acc = sim.active_account(account_id)
        body = _body()
        _only(body, ("local_part", "members"))
        local = _local_part(body)
        members = _members(body.get("members", []))
        address = f"{local}@{acc.domain}"
        _check_free(acc, address)
        _check_limit(acc, "distribution_lists", len(acc.lists), "distribution list")
        lst = MailList(id=sim.new_id("lst"), address=address, members=members)
        acc.lists[lst.id] = lst
        sim._touch(acc)
        return jsonify(lst.as_dict()), 201

    def _list(acc: Account, list_id: str) -> MailList:
        lst = acc.lists.get(list_id)
        if lst is None:
            raise ApiError(404, "not_found", f"list {list_id} not found")
        return lst

    @route("/accounts/<account_id>/lists/<list_id>", "PATCH", "lists.update")
    def lists_update(account_id: str, list_id: str):
        acc = sim.active_account(account_id)
        lst = _list(acc, list_id)
        body = _body()
        _only(body, ("members",))
        if "members" in body:
            lst.members = _members(body["members"])
        sim._touch(acc)
        return jsonify(lst.as_dict())

    @route("/accounts/<account_id>/lists/<list_id>", "DELETE", "lists.delete")
    def lists_delete(account_id: str, list_id: str):
        acc = sim.active_account(account_id)
        del acc.lists[_list(acc, list_id).id]
        sim._touch(acc)
        return Response(status=204)


def create_app(*, activation_delay: float = 0.0, api_key: str | None = None,
               seed: int | None = None, clock: Callable[[], float] | None = None) -> Flask:
    """A fresh sandbox simulator app.

    ``activation_delay``: seconds a new account stays ``pending``; ``api_key``:
    require ``Authorization: Bearer <key>`` on /api/; ``seed``: for the fault
    dice; ``clock``: wall-clock seconds (tests pass a fake one)."""
    if activation_delay < 0:
        raise ValueError("activation_delay must not be negative")
    app = Flask(__name__)
    app.json.sort_keys = False
    sim = SandboxSimulator(activation_delay=activation_delay, api_key=api_key or None,
                           seed=seed, clock=clock or time.time)
    install(app, sim)          # first: faults and counting precede the key check
    _register_routes(app, sim)
    control_route(app, "seed", sim.seed, status=201)
    return app


#: the options `provisioner simulate sandbox` reads from the environment when not given
create_app.env_options = {"api_key": "SANDBOX_API_KEY"}  # type: ignore[attr-defined]
