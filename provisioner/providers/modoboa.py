"""Adapter for Modoboa, the self-hosted mail platform (docs/providers/modoboa.md).

Modoboa's REST API v2 lives under ``{base_url}/api/v2/`` (Django REST framework),
authenticated with ``Authorization: Token <token>``. Bodies are JSON; quotas are
strings in MB (``"0"`` is unlimited); lists are ``{"count", "next", "previous",
"results"}``; field errors are ``400 {"field": ["message"]}`` and quota refusals
``400 {"error": "<domain>: domain quota exceeded"}``.

One service is one Modoboa **domain** (its ``pk`` is the account id) with its
quota and default mailbox quota, plus a first mailbox ``postmaster@<domain>``
whose password is the billing system's service password, so the customer can log
in by IMAP with it. The postmaster is the service's own login: it is not one of the
client area's mailboxes and does not count against the ``mailboxes`` limit.

Modoboa has no per-domain counts of mailboxes or aliases unless an operator turns
on its domain limits, so the adapter keeps the product's count limits itself, in a
disabled memo alias ``provisioner-settings@<domain>`` whose ``description`` holds
JSON (``{"limits": {...}, "suspended": ..., "inactive_before": [...]}``); being
disabled, it delivers nothing, and it is left out of every listing and count.

Suspension disables the domain *and* its accounts (``is_active``): a stock Modoboa
install lets the accounts of a disabled domain log in. Accounts already inactive
are noted in the memo first, so unsuspend leaves them off.
"""
from __future__ import annotations

import json
import logging
import math
import re
import secrets
import string
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from .base import (
    AccountSpec,
    AccountStatus,
    Alias,
    Capability,
    DistributionList,
    Mailbox,
    MailboxSpec,
    Page,
    Provider,
    UpstreamAccount,
    Usage,
)
from .errors import (
    AuthError,
    ConfigurationError,
    Conflict,
    LimitExceeded,
    MalformedResponse,
    NotFound,
    ProviderError,
    ValidationError,
)
from .http import HttpClient

log = logging.getLogger("provisioner.upstream.modoboa")

API = "/api/v2"
POSTMASTER = "postmaster"
MEMO_LOCAL = "provisioner-settings"
#: description of aliases made as distribution lists (so a one-member list stays a list)
LIST_TAG = "provisioner:list"
PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
LOOKUP_PAGES = 50
#: the count limits the adapter enforces (Modoboa has none by default)
COUNT_LIMITS = ("mailboxes", "aliases", "distribution_lists")
QUOTA_LIMITS = ("domain_quota_gb", "mailbox_quota_mb", "mailbox_quota_gb")
#: the memo's per-mailbox quota cap in MB (the product's mailbox quota; Modoboa's
#: default mailbox quota is only a default)
CAP = "mailbox_cap_mb"

WEAK_PASSWORD = ("The password must be at least 8 characters long and contain an upper-case "
                 "letter, a lower-case letter and a digit.")
QUOTA_EXCEEDED = "The storage quota of your mail domain is used up."
_ALREADY = re.compile(r"already exists|already in use|already taken", re.IGNORECASE)
_QUOTA = re.compile(r"quota exceeded", re.IGNORECASE)
_LIMIT = re.compile(r"limit reached", re.IGNORECASE)
_SAFE_FIELD = re.compile(r"[a-z_]{1,40}")


# --- errors -------------------------------------------------------------------------

def _flatten(errors: Any, prefix: str = "") -> list[tuple[str, str]]:
    """DRF error bodies as (field, message) pairs: ``{"f": ["m"]}``, nested objects, strings."""
    pairs: list[tuple[str, str]] = []
    if isinstance(errors, dict):
        for key, value in errors.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            pairs += _flatten(value, name)
    elif isinstance(errors, list):
        for item in errors:
            pairs += _flatten(item, prefix)
    elif errors not in (None, ""):
        pairs.append((prefix, str(errors)))
    return pairs


def modoboa_error(response: requests.Response, body: Any) -> ProviderError | None:
    """Modoboa's 400 shapes (and its 403 "limit reached") mapped to our errors."""
    status = response.status_code
    if status not in (400, 403) or not isinstance(body, dict):
        return None
    pairs = _flatten(body)
    text = "; ".join(f"{f} {m}" if f else m for f, m in pairs)[:300]
    if any(_QUOTA.search(m) for _, m in pairs):
        return LimitExceeded(text, safe_message=QUOTA_EXCEEDED)
    if any(_LIMIT.search(m) for _, m in pairs):
        return LimitExceeded(text)
    if status == 403:
        return AuthError(text) if text else None
    if any(_ALREADY.search(m) for _, m in pairs):
        err: ProviderError = Conflict(text)
    else:
        named = [(f.split(".")[-1], m) for f, m in pairs if f and f not in ("error", "detail",
                                                                            "non_field_errors")]
        field, message = named[0] if named else ("", pairs[0][1] if pairs else "")
        if field and _SAFE_FIELD.fullmatch(field):
            err = ValidationError(text, safe_message=f"The e-mail platform rejected the {field.replace('_', ' ')}: "
                                                     f"{message[:160]}")
        else:
            err = ValidationError(text)
    err.fields = {f: m for f, m in pairs if f}
    return err


# --- helpers ---------------------------------------------------------------------------

def normalise_domain(domain: Any) -> str:
    return str(domain or "").strip().rstrip(".").lower()


def strong_enough(password: str | None) -> bool:
    return (bool(password) and len(password) >= 8 and any(c.isupper() for c in password)
            and any(c.islower() for c in password) and any(c.isdigit() for c in password))


def generate_password() -> str:
    alphabet = string.ascii_letters + string.digits
    while True:
        password = "".join(secrets.choice(alphabet) for _ in range(24))
        if strong_enough(password):
            return password


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _mb(value: Any) -> int:
    """A Modoboa quota string ("500") as MB; what it cannot read counts as 0, as Modoboa does."""
    number = _int(value)
    return number if number is not None and number > 0 else 0


def _gb_of_mb(mb: int) -> int | None:
    return None if mb <= 0 else max(1, math.ceil(mb / 1024))


def _results(body: Any, what: str) -> list[dict[str, Any]]:
    if isinstance(body, dict):
        body = body.get("results")
    if not isinstance(body, list) or not all(isinstance(i, dict) for i in body):
        raise MalformedResponse(f"modoboa: {what} is not a list of objects")
    return body


def _pk(item: dict[str, Any], what: str) -> str:
    pk = item.get("pk")
    if _int(pk) is None:
        raise MalformedResponse(f"modoboa: a {what} without a pk")
    return str(pk)


def _split_name(name: str) -> tuple[str, str]:
    first, _, last = (name or "").strip().partition(" ")
    return first[:30], last.strip()[:30]


class ModoboaProvider(Provider):
    kind = "modoboa"
    capabilities = frozenset({
        Capability.SUSPEND, Capability.LIMITS, Capability.PASSWORD, Capability.BULK_LIST,
        Capability.MAILBOXES, Capability.ALIASES, Capability.LISTS,
    })
    extra_limits = frozenset({"domain_quota_gb", "mailbox_quota_mb"})
    required_settings = ("base_url", "token")
    # usage needs the domain's accounts and aliases: only get_account reads it
    lists_usage = False

    def __init__(self, name: str, config: dict[str, Any], *, session: requests.Session | None = None):
        super().__init__(name, config)
        for setting in self.required_settings:
            if not str(config.get(setting) or "").strip():
                raise ConfigurationError(f"upstream {name}: {setting} is required")
        root = str(config["base_url"]).strip().rstrip("/")
        if root.endswith(API):            # tolerate a base_url that already names the API
            root = root[: -len(API)]
        self._token = str(config["token"]).strip()
        raw = config.get("timeout")
        try:
            timeout = float(raw) if raw not in (None, "") else None
        except (TypeError, ValueError):
            raise ConfigurationError(f"upstream {name}: timeout must be a number of seconds") from None
        if timeout is not None and timeout <= 0:
            raise ConfigurationError(f"upstream {name}: timeout must be positive")
        self.http = HttpClient(name, root + API, timeout=timeout or (5, 30),
                               headers={"Authorization": f"Token {self._token}",
                                        "Content-Type": "application/json"},
                               secrets=[self._token], error_mapper=modoboa_error, session=session)

    def close(self) -> None:
        self.http.close()

    # --- transport ----------------------------------------------------------------------
    def _call(self, method: str, path: str, action: str, *, secret: str | None = None, **kw: Any) -> Any:
        try:
            return self.http.request(method, path, action=action, **kw).data
        except ProviderError as err:
            raise err.scrubbed(secret) from None

    def _pages(self, path: str, action: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every item of a paged list, following ``next`` (bounded)."""
        page = 1
        for _ in range(LOOKUP_PAGES):
            body = self._call("GET", path, action, params={**params, "page": page, "page_size": PAGE_SIZE})
            yield from _results(body, action)
            nxt = body.get("next") if isinstance(body, dict) else None
            if not nxt:
                return
            page = _int((parse_qs(urlsplit(str(nxt)).query).get("page") or [None])[0]) or page + 1

    # --- what intake can judge ------------------------------------------------------------
    def limit_problems(self, limits: dict[str, Any]) -> dict[str, str]:
        problems: dict[str, str] = {}
        for name in (*COUNT_LIMITS, *QUOTA_LIMITS):
            if name in limits and limits[name] is not None:
                number = _int(limits[name])
                if number is None or number < (-1 if name in COUNT_LIMITS else 0):
                    problems[name] = ("Must be a whole number, -1 for unlimited." if name in COUNT_LIMITS
                                      else "Must be a whole number, 0 for unlimited.")
        if not problems:
            domain_mb, mailbox_mb = self._quotas(limits)
            if domain_mb and mailbox_mb and mailbox_mb > domain_mb:
                problems["mailbox_quota_mb"] = "The mailbox quota cannot be larger than the domain quota."
        return problems

    def password_problem(self, password: str, limits: dict[str, Any]) -> str | None:
        return None if strong_enough(password) else WEAK_PASSWORD

    @staticmethod
    def _quotas(limits: dict[str, Any]) -> tuple[int | None, int | None]:
        """(domain quota MB, default mailbox quota MB) from the limits; None: not given."""
        domain = _int(limits.get("domain_quota_gb"))
        mailbox = _int(limits.get("mailbox_quota_mb"))
        if mailbox is None and _int(limits.get("mailbox_quota_gb")) is not None:
            mailbox = _int(limits.get("mailbox_quota_gb")) * 1024
        return (None if domain is None else max(0, domain) * 1024,
                None if mailbox is None else max(0, mailbox))

    def _check_limits(self, limits: dict[str, Any]) -> None:
        problems = self.limit_problems(limits)
        if problems:
            name, why = next(iter(problems.items()))
            raise ValidationError(f"{self.name}: limit {name} {limits.get(name)!r}: {why}",
                                  safe_message=f"{name}: {why}")

    # --- connection -------------------------------------------------------------------------
    def test_connection(self) -> None:
        _results(self._call("GET", "/domains/", "domains.list", params={"page_size": 1}), "domains.list")

    # --- domains ----------------------------------------------------------------------------
    @staticmethod
    def _dom(pk: str) -> str:
        if _int(pk) is None or _int(pk) <= 0:
            raise NotFound(f"modoboa: {str(pk)[:40]!r} is not a domain pk")
        return f"/domains/{_int(pk)}/"

    def _domain(self, pk: str) -> dict[str, Any]:
        body = self._call("GET", self._dom(pk), "domains.get")
        if not isinstance(body, dict) or not body.get("name"):
            raise MalformedResponse("modoboa: a domain without a name")
        return body

    def _find_domain(self, name: str) -> dict[str, Any] | None:
        for item in self._pages("/domains/", "domains.list", {"search": name}):
            if normalise_domain(item.get("name")) == name:
                return item
        return None

    def _account_of(self, domain: dict[str, Any], usage: Usage | None = None,
                    memo: dict[str, Any] | None = None) -> UpstreamAccount:
        pk = _pk(domain, "domain")
        default_mb = _mb(domain.get("default_mailbox_quota"))
        limits: dict[str, Any] = {"domain_quota_gb": _mb(domain.get("quota")) // 1024,
                                  "mailbox_quota_mb": default_mb}
        if default_mb % 1024 == 0:
            limits["mailbox_quota_gb"] = default_mb // 1024
        limits.update({k: v for k, v in ((memo or {}).get("limits") or {}).items() if k in COUNT_LIMITS})
        native = {k: v for k, v in domain.items() if not str(k).startswith("dkim_private")}
        return UpstreamAccount(id=pk, domain=normalise_domain(domain.get("name")),
                               status=AccountStatus.ACTIVE if domain.get("enabled") else AccountStatus.SUSPENDED,
                               limits=limits, usage=usage or Usage(), native=native)

    def get_account(self, account_id: str) -> UpstreamAccount:
        domain = self._domain(account_id)
        name = normalise_domain(domain["name"])
        users = self._users(account_id)
        aliases, memo = self._aliases(name)
        boxes = [u for u in users if not self._is_postmaster(u, name)]
        usage = Usage(mailboxes=len(boxes),
                      aliases=sum(1 for a in aliases if not self._is_list(a)),
                      distribution_lists=sum(1 for a in aliases if self._is_list(a)),
                      storage_mb=sum(self._used_mb(u) for u in users))
        return self._account_of(domain, usage, self._memo_data(memo))

    def find_account(self, spec: AccountSpec) -> UpstreamAccount | None:
        domain = self._find_domain(normalise_domain(spec.domain))
        if domain is None or self._postmaster(_pk(domain, "domain"), domain["name"]) is None:
            return None
        _, memo = self._aliases(normalise_domain(domain["name"]))
        return self._account_of(domain, memo=self._memo_data(memo))

    def find_unfinished(self, spec: AccountSpec) -> UpstreamAccount | None:
        """A domain whose create stopped before its postmaster mailbox was made."""
        domain = self._find_domain(normalise_domain(spec.domain))
        if domain is None or self._postmaster(_pk(domain, "domain"), domain["name"]) is not None:
            return None
        return self._account_of(domain)

    def create_account(self, spec: AccountSpec) -> UpstreamAccount:
        name = normalise_domain(spec.domain)
        self._check_limits(spec.limits)
        log.info("upstream %s create_account %s (service %s)", self.name, name, spec.service_id)
        domain = self._find_domain(name)            # adopt: a lost create is never doubled
        if domain is None:
            domain_mb, mailbox_mb = self._quotas(spec.limits)
            body = {"name": name, "type": "domain", "quota": str(domain_mb or 0),
                    "default_mailbox_quota": str(mailbox_mb or 0), "enabled": True,
                    "enable_dns_checks": False}
            try:
                domain = self._call("POST", "/domains/", "domains.create", json=body)
            except Conflict:
                domain = self._find_domain(name)
                if domain is None:
                    raise
        pk = _pk(domain, "domain")
        if self._postmaster(pk, name) is None:
            # The billing password when Modoboa's policy takes it; else one nobody keeps
            # (the next change of password sets the customer's). Never stored or logged.
            password = spec.password if strong_enough(spec.password) else generate_password()
            try:
                self._create_user(f"{POSTMASTER}@{name}", password, None)
            except Conflict:
                pass                                 # made by an attempt whose answer was lost
        # After the postmaster: Modoboa refuses an alias whose local recipient does not exist.
        self._write_memo(pk, name, {"limits": self._count_limits(spec.limits)})
        return self._account_of(domain, memo={"limits": self._count_limits(spec.limits)})

    def delete_account(self, account_id: str) -> None:
        """The domain's accounts first (deleting a domain leaves its users able to log in
        unless ``auto_account_removal`` is on), then the domain; a repeat finds nothing."""
        log.info("upstream %s delete_account %s", self.name, account_id)
        path = self._dom(account_id)
        try:
            self._domain(account_id)
        except NotFound:
            return                     # gone already (``?domain=`` of an unknown pk is a 400)
        users = self._users(account_id)
        for user in users:
            self._delete_user(_pk(user, "account"))
        try:
            self._call("POST", f"{path}delete/", "domains.delete", json={"keep_folder": False},
                       idempotent=True, expect_json=False)
        except NotFound:
            pass

    def suspend_account(self, account_id: str, reason: str) -> None:
        """Note the accounts already inactive (once), disable the domain, then its accounts."""
        log.info("upstream %s suspend_account %s", self.name, account_id)
        domain = self._domain(account_id)
        name = normalise_domain(domain["name"])
        users = self._users(account_id)
        _, memo = self._aliases(name)
        data = self._memo_data(memo)
        if not data.get("suspended"):
            data["suspended"] = True
            data["inactive_before"] = sorted(str(u.get("username")) for u in users if not u.get("is_active"))
            self._write_memo(account_id, name, data, memo)
        if domain.get("enabled"):
            self._call("PATCH", self._dom(account_id), "domains.update", json={"enabled": False}, idempotent=True)
        for user in users:
            if user.get("is_active"):
                self._set_active(_pk(user, "account"), False)

    def unsuspend_account(self, account_id: str) -> None:
        """Enable the accounts suspend disabled and the domain; drop the note last, so that
        an unsuspend cut short is repeated."""
        log.info("upstream %s unsuspend_account %s", self.name, account_id)
        domain = self._domain(account_id)
        name = normalise_domain(domain["name"])
        _, memo = self._aliases(name)
        data = self._memo_data(memo)
        if data.get("suspended"):
            kept = set(data.get("inactive_before") or [])
            for user in self._users(account_id):
                if not user.get("is_active") and str(user.get("username")) not in kept:
                    self._set_active(_pk(user, "account"), True)
        if not domain.get("enabled"):
            self._call("PATCH", self._dom(account_id), "domains.update", json={"enabled": True}, idempotent=True)
        if data.get("suspended"):
            data.pop("suspended", None)
            data.pop("inactive_before", None)
            self._write_memo(account_id, name, data, memo)

    def set_limits(self, account_id: str, limits: dict[str, Any]) -> None:
        log.info("upstream %s set_limits %s", self.name, account_id)
        self._check_limits(limits)
        domain_mb, mailbox_mb = self._quotas(limits)
        body: dict[str, Any] = {}
        if domain_mb is not None:
            body["quota"] = str(domain_mb)
        if mailbox_mb is not None:
            body["default_mailbox_quota"] = str(mailbox_mb)
        domain = self._domain(account_id)
        if body:
            self._call("PATCH", self._dom(account_id), "domains.update", json=body, idempotent=True)
        counts = self._count_limits(limits)
        name = normalise_domain(domain["name"])
        _, memo = self._aliases(name)
        data = self._memo_data(memo)
        if counts and data.get("limits") != {**(data.get("limits") or {}), **counts}:
            data["limits"] = {**(data.get("limits") or {}), **counts}
            self._write_memo(account_id, name, data, memo)

    def set_password(self, account_id: str, password: str) -> None:
        """The postmaster mailbox's password (the billing system's service password)."""
        if not strong_enough(password):
            raise ValidationError(f"{self.name}: the postmaster password is too weak",
                                  safe_message=WEAK_PASSWORD, action="set_password")
        domain = self._domain(account_id)
        name = normalise_domain(domain["name"])
        log.info("upstream %s set_password %s (postmaster)", self.name, account_id)
        user = self._postmaster(account_id, name)
        if user is None:
            self._create_user(f"{POSTMASTER}@{name}", password, None)
            return
        self._call("PATCH", f"/accounts/{_pk(user, 'account')}/", "accounts.update",
                   json={"password": password}, idempotent=True, secret=password, log_bodies=False)

    def list_accounts(self, page: int = 1, per_page: int = 100) -> Page:
        page, per_page = max(1, page), max(1, min(per_page, MAX_PAGE_SIZE))
        try:
            body = self._call("GET", "/domains/", "domains.list", params={"page": page, "page_size": per_page})
        except NotFound:
            # DRF answers 404 for a page past the last one: report the total only
            body = self._call("GET", "/domains/", "domains.list", params={"page_size": 1})
            return Page(items=[], page=page, per_page=per_page, total=_int(body.get("count")) or 0)
        items = [self._account_of(d) for d in _results(body, "domains.list")]
        total = _int(body.get("count")) if isinstance(body, dict) else None
        return Page(items=items, page=page, per_page=per_page,
                    total=total if total is not None else (page - 1) * per_page + len(items))

    # --- the memo alias ------------------------------------------------------------------------
    @classmethod
    def _count_limits(cls, limits: dict[str, Any]) -> dict[str, int]:
        """What the memo keeps: the count limits and the per-mailbox quota cap (MB)."""
        kept = {k: _int(limits[k]) for k in COUNT_LIMITS if _int(limits.get(k)) is not None}
        cap = cls._quotas(limits)[1]
        if cap is not None:
            kept[CAP] = cap
        return kept

    @staticmethod
    def _memo_data(memo: dict[str, Any] | None) -> dict[str, Any]:
        if not memo:
            return {}
        try:
            data = json.loads(str(memo.get("description") or "{}"))
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def _write_memo(self, pk: str, name: str, data: dict[str, Any], memo: dict[str, Any] | None = None,
                    ) -> None:
        if memo is None:
            _, memo = self._aliases(name)
        if memo is not None and self._memo_data(memo) == data:
            return
        body = {"address": f"{MEMO_LOCAL}@{name}", "recipients": [f"{POSTMASTER}@{name}"],
                "enabled": False, "description": json.dumps(data, sort_keys=True)}
        if memo is None:
            try:
                self._call("POST", "/aliases/", "aliases.create", json=body)
                return
            except Conflict:
                _, memo = self._aliases(name)
                if memo is None:
                    raise
        self._call("PATCH", f"/aliases/{_pk(memo, 'alias')}/", "aliases.update",
                   # recipients too: Modoboa's alias update resets them from the body
                   json={"description": body["description"], "enabled": False,
                         "recipients": body["recipients"]}, idempotent=True)

    # --- accounts (Modoboa users with a mailbox) ------------------------------------------------
    def _users(self, pk: str) -> list[dict[str, Any]]:
        self._dom(pk)
        return list(self._pages("/accounts/", "accounts.list", {"domain": _int(pk)}))

    @staticmethod
    def _is_postmaster(user: dict[str, Any], name: str) -> bool:
        return str(user.get("username") or "").lower() == f"{POSTMASTER}@{normalise_domain(name)}"

    def _postmaster(self, pk: str, name: str) -> dict[str, Any] | None:
        return next((u for u in self._users(pk) if self._is_postmaster(u, name)), None)

    @staticmethod
    def _used_mb(user: dict[str, Any]) -> int:
        """``mailbox.quota_usage`` is a percentage of the mailbox's quota (0 when unlimited)."""
        mailbox = user.get("mailbox") or {}
        percent = _int(mailbox.get("quota_usage")) or 0
        return _mb(mailbox.get("quota")) * percent // 100

    def _create_user(self, address: str, password: str, quota_mb: int | None, name: str = "") -> dict[str, Any]:
        first, last = _split_name(name)
        mailbox: dict[str, Any] = {"use_domain_quota": quota_mb is None}
        if quota_mb is not None:
            mailbox["quota"] = str(quota_mb)
        body = {"username": address, "role": "SimpleUsers", "password": password, "mailbox": mailbox,
                "first_name": first, "last_name": last}
        return self._call("POST", "/accounts/", "accounts.create", json=body, secret=password,
                          log_bodies=False)

    def _delete_user(self, user_pk: str) -> None:
        try:
            self._call("POST", f"/accounts/{_int(user_pk)}/delete/", "accounts.delete",
                       json={"keepdir": False}, idempotent=True, expect_json=False)
        except NotFound:
            pass

    def _set_active(self, user_pk: str, active: bool) -> None:
        self._call("PATCH", f"/accounts/{_int(user_pk)}/", "accounts.update",
                   json={"is_active": active}, idempotent=True)

    def _limits_of(self, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        aliases, memo = self._aliases(name)
        return (self._memo_data(memo).get("limits") or {}), aliases

    @staticmethod
    def _over(limits: dict[str, Any], name: str, count: int) -> None:
        limit = _int(limits.get(name))
        if limit is not None and limit >= 0 and count >= limit:
            raise LimitExceeded(f"modoboa: the {name} limit ({limit}) is reached",
                                safe_message=f"Your plan allows {limit} {name.replace('_', ' ')}.")

    def _mailbox(self, user: dict[str, Any]) -> Mailbox:
        mailbox = user.get("mailbox") or {}
        name = " ".join(p for p in (str(user.get("first_name") or ""), str(user.get("last_name") or "")) if p)
        return Mailbox(id=_pk(user, "account"), address=str(user.get("username") or "").lower(), name=name,
                       quota_gb=_gb_of_mb(_mb(mailbox.get("quota"))), enabled=bool(user.get("is_active")),
                       used_mb=self._used_mb(user))

    def _mailbox_users(self, account_id: str) -> tuple[str, list[dict[str, Any]]]:
        name = normalise_domain(self._domain(account_id)["name"])
        return name, [u for u in self._users(account_id) if not self._is_postmaster(u, name)]

    def list_mailboxes(self, account_id: str) -> list[Mailbox]:
        _, users = self._mailbox_users(account_id)
        return [self._mailbox(u) for u in users]

    def create_mailbox(self, account_id: str, spec: MailboxSpec) -> Mailbox:
        name, users = self._mailbox_users(account_id)
        local = spec.local_part.strip().lower()
        if local in (POSTMASTER, MEMO_LOCAL):
            raise Conflict(f"modoboa: {local}@{name} is reserved",
                           safe_message=f"{local}@{name} is reserved for the service itself.")
        limits, _ = self._limits_of(name)
        self._over(limits, "mailboxes", len(users))
        quota_mb = None if spec.quota_gb is None else int(spec.quota_gb) * 1024
        self._check_mailbox_quota(limits, quota_mb)
        user = self._create_user(f"{local}@{name}", spec.password, quota_mb, spec.name)
        return self._mailbox(user)

    def _check_mailbox_quota(self, limits: dict[str, Any], quota_mb: int | None) -> None:
        cap = _int(limits.get(CAP))
        if quota_mb is not None and cap and quota_mb > cap:
            raise LimitExceeded(f"modoboa: mailbox quota {quota_mb} MB above {cap} MB",
                                safe_message=f"A mailbox can have at most {cap} MB on your plan.")

    def update_mailbox(self, account_id: str, mailbox_id: str, changes: dict[str, Any]) -> Mailbox:
        name, users = self._mailbox_users(account_id)
        user = next((u for u in users if _pk(u, "account") == str(mailbox_id)), None)
        if user is None:
            raise NotFound(f"modoboa: no mailbox {mailbox_id} in domain {account_id}", action="update_mailbox")
        body: dict[str, Any] = {}
        if "name" in changes:
            body["first_name"], body["last_name"] = _split_name(str(changes["name"] or ""))
        if "enabled" in changes:
            body["is_active"] = bool(changes["enabled"])
        if changes.get("quota_gb") is not None:
            quota_mb = int(changes["quota_gb"]) * 1024
            self._check_mailbox_quota(self._limits_of(name)[0], quota_mb)
            body["mailbox"] = {"use_domain_quota": False, "quota": str(quota_mb)}
        password = changes.get("password")
        if password:
            body["password"] = password
        if body:
            self._call("PATCH", f"/accounts/{_pk(user, 'account')}/", "accounts.update", json=body,
                       idempotent=True, secret=password, log_bodies=not password)
        fresh = self._call("GET", f"/accounts/{_pk(user, 'account')}/", "accounts.get")
        return self._mailbox(fresh)

    def delete_mailbox(self, account_id: str, mailbox_id: str) -> None:
        _, users = self._mailbox_users(account_id)
        if not any(_pk(u, "account") == str(mailbox_id) for u in users):
            raise NotFound(f"modoboa: no mailbox {mailbox_id} in domain {account_id}", action="delete_mailbox")
        self._call("POST", f"/accounts/{_int(mailbox_id)}/delete/", "accounts.delete",
                   json={"keepdir": False}, expect_json=False)

    # --- aliases and distribution lists (Modoboa aliases) ----------------------------------------
    def _aliases(self, name: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """The domain's aliases (``?domain=`` takes the name here) and the memo alias."""
        memo_address = f"{MEMO_LOCAL}@{name}"
        found, memo = [], None
        for item in self._pages("/aliases/", "aliases.list", {"domain": name}):
            address = str(item.get("address") or "").lower()
            if address == memo_address:
                memo = item
            elif address.endswith(f"@{name}"):
                found.append(item)
        return found, memo

    @staticmethod
    def _is_list(alias: dict[str, Any]) -> bool:
        return alias.get("description") == LIST_TAG or len(alias.get("recipients") or []) > 1

    def _own_aliases(self, account_id: str) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
        name = normalise_domain(self._domain(account_id)["name"])
        limits, aliases = self._limits_of(name)
        return name, limits, aliases

    def _one_alias(self, account_id: str, alias_id: str, lists: bool) -> dict[str, Any]:
        _, _, aliases = self._own_aliases(account_id)
        alias = next((a for a in aliases if str(a.get("pk")) == str(alias_id) and self._is_list(a) == lists), None)
        if alias is None:
            what = "distribution list" if lists else "alias"
            raise NotFound(f"modoboa: no {what} {alias_id} in domain {account_id}")
        return alias

    def list_aliases(self, account_id: str) -> list[Alias]:
        _, _, aliases = self._own_aliases(account_id)
        return [Alias(id=_pk(a, "alias"), address=str(a["address"]).lower(),
                      target=str((a.get("recipients") or [""])[0]))
                for a in aliases if not self._is_list(a)]

    def create_alias(self, account_id: str, local_part: str, target: str) -> Alias:
        name, limits, aliases = self._own_aliases(account_id)
        self._over(limits, "aliases", sum(1 for a in aliases if not self._is_list(a)))
        alias = self._new_alias(name, local_part, [target], "")
        return Alias(id=_pk(alias, "alias"), address=str(alias.get("address")).lower(), target=target)

    def update_alias(self, account_id: str, alias_id: str, target: str) -> Alias:
        alias = self._one_alias(account_id, alias_id, False)
        fresh = self._call("PATCH", f"/aliases/{_int(alias_id)}/", "aliases.update",
                           json={"recipients": [target]}, idempotent=True)
        return Alias(id=str(alias_id), address=str(alias["address"]).lower(),
                     target=str(((fresh or {}).get("recipients") or [target])[0]))

    def delete_alias(self, account_id: str, alias_id: str) -> None:
        self._one_alias(account_id, alias_id, False)
        self._call("DELETE", f"/aliases/{_int(alias_id)}/", "aliases.delete", expect_json=False)

    def _new_alias(self, name: str, local_part: str, recipients: list[str], description: str) -> dict[str, Any]:
        local = local_part.strip().lower()
        if local == MEMO_LOCAL:
            raise Conflict(f"modoboa: {local}@{name} is reserved",
                           safe_message=f"{local}@{name} is reserved for the service itself.")
        body = {"address": f"{local}@{name}", "recipients": list(recipients), "enabled": True,
                "description": description}
        return self._call("POST", "/aliases/", "aliases.create", json=body)

    def _list(self, alias: dict[str, Any]) -> DistributionList:
        return DistributionList(id=_pk(alias, "alias"), address=str(alias.get("address")).lower(),
                                members=[str(m) for m in alias.get("recipients") or []])

    def list_lists(self, account_id: str) -> list[DistributionList]:
        _, _, aliases = self._own_aliases(account_id)
        return [self._list(a) for a in aliases if self._is_list(a)]

    def create_list(self, account_id: str, local_part: str, members: list[str]) -> DistributionList:
        name, limits, aliases = self._own_aliases(account_id)
        self._over(limits, "distribution_lists", sum(1 for a in aliases if self._is_list(a)))
        return self._list(self._new_alias(name, local_part, members, LIST_TAG))

    def update_list(self, account_id: str, list_id: str, members: list[str]) -> DistributionList:
        self._one_alias(account_id, list_id, True)
        fresh = self._call("PATCH", f"/aliases/{_int(list_id)}/", "aliases.update",
                           json={"recipients": list(members), "description": LIST_TAG}, idempotent=True)
        return self._list(fresh)

    def delete_list(self, account_id: str, list_id: str) -> None:
        self._one_alias(account_id, list_id, True)
        self._call("DELETE", f"/aliases/{_int(list_id)}/", "aliases.delete", expect_json=False)
