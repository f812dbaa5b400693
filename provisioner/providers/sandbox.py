"""Adapter for the sandbox upstream (docs/sandbox-api.md), the reference provider.

One sandbox account per billing service, tagged with the service id as
``external_id``; that tag is what makes a retried create adopt instead of
ordering twice.
"""
from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote

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
from .errors import ConfigurationError, Conflict, LimitExceeded, MalformedResponse, NotFound, ProviderError
from .http import HttpClient

API = "/api/v1"
#: the limits the sandbox enforces; others (validated by the product config
#: check) mean nothing to it and would be refused as unknown fields
LIMIT_KEYS = frozenset({"mailboxes", "enhanced_mailboxes", "mailbox_quota_gb", "aliases",
                        "distribution_lists"})
MAX_PER_PAGE = 500            # the sandbox's own cap
LOOKUP_PAGES = 20             # bound on pages scanned by one look-up


def sandbox_error(response: requests.Response, body: Any) -> ProviderError | None:
    """The sandbox's only status whose meaning depends on the body: 422 is either
    ``limit_exceeded`` or a plain validation error (left to the status mapping)."""
    if response.status_code == 422 and isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("code") == "limit_exceeded":
            return LimitExceeded(str(error.get("message") or "limit exceeded"))
    return None


def _limits(limits: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in limits.items() if k in LIMIT_KEYS}


def _date(value: Any) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _status(value: Any) -> AccountStatus:
    try:
        return AccountStatus(str(value))
    except ValueError:
        # unknown states are treated as not yet usable rather than guessed at
        return AccountStatus.PENDING


USAGE_KEYS = tuple(Usage().as_dict())


def _account(data: Any) -> UpstreamAccount:
    if not isinstance(data, dict) or not data.get("id"):
        raise MalformedResponse("sandbox: an account without an id")
    usage = data.get("usage") or {}
    return UpstreamAccount(
        id=str(data["id"]),
        domain=str(data.get("domain") or ""),
        status=_status(data.get("status")),
        limits=dict(data.get("limits") or {}),
        usage=Usage(**{k: int(usage.get(k) or 0) for k in USAGE_KEYS}),
        paid_until=_date(data.get("paid_until")),
        external_id=None if data.get("external_id") is None else str(data["external_id"]),
        native=data,
    )


def _mailbox(data: dict[str, Any]) -> Mailbox:
    return Mailbox(
        id=str(data["id"]), address=str(data.get("address") or ""),
        name=str(data.get("name") or ""), quota_gb=data.get("quota_gb"),
        type=str(data.get("type") or "basic"), enabled=bool(data.get("enabled", True)),
        used_mb=int(data.get("used_mb") or 0),
    )


def _alias(data: dict[str, Any]) -> Alias:
    return Alias(id=str(data["id"]), address=str(data.get("address") or ""),
                 target=str(data.get("target") or ""))


def _list(data: dict[str, Any]) -> DistributionList:
    return DistributionList(id=str(data["id"]), address=str(data.get("address") or ""),
                            members=[str(m) for m in data.get("members") or []])


def _items(data: Any) -> list[dict[str, Any]]:
    """A collection answer: a bare list or ``{"data": [...]}``."""
    if isinstance(data, dict):
        data = data.get("data")
    if not isinstance(data, list):
        raise MalformedResponse("sandbox: expected a list")
    return data


class SandboxProvider(Provider):
    kind = "sandbox"
    capabilities = frozenset({
        Capability.SUSPEND, Capability.LIMITS, Capability.PASSWORD, Capability.TERMS,
        Capability.BULK_LIST, Capability.MAILBOXES, Capability.ALIASES, Capability.LISTS,
        Capability.RENAME_DOMAIN,
    })
    required_settings = ("base_url",)

    def __init__(self, name: str, config: dict[str, Any], *, session: requests.Session | None = None):
        super().__init__(name, config)
        api_key = config.get("api_key") or None
        if not config.get("base_url"):
            raise ConfigurationError(f"upstream {name}: base_url is required")
        try:
            timeout = float(config["timeout"]) if config.get("timeout") else None
        except (TypeError, ValueError):
            raise ConfigurationError(f"upstream {name}: timeout must be a number of seconds") from None
        if timeout is not None and timeout <= 0:
            raise ConfigurationError(f"upstream {name}: timeout must be positive")
        self.http = HttpClient(
            name, config["base_url"],
            timeout=timeout or (5, 30),
            headers={"Authorization": f"Bearer {api_key}"} if api_key else None,
            secrets=[api_key] if api_key else (),
            error_mapper=sandbox_error,
            session=session,
        )

    def close(self) -> None:
        self.http.close()

    @staticmethod
    def _acc(account_id: str) -> str:
        return f"{API}/accounts/{quote(str(account_id), safe='')}"

    # --- connection -------------------------------------------------------------
    def test_connection(self) -> None:
        data = self.http.get(f"{API}/ping", action="ping")
        if not (isinstance(data, dict) and data.get("ok") is True):
            raise MalformedResponse(f"{self.name} ping: unexpected answer", action="ping")

    # --- accounts ----------------------------------------------------------------------
    def _search(self, action: str, **filters: str) -> list[UpstreamAccount]:
        found: list[UpstreamAccount] = []
        for page in range(1, LOOKUP_PAGES + 1):
            data = self.http.get(f"{API}/accounts", action=action,
                                 params={**filters, "page": page, "per_page": MAX_PER_PAGE})
            result = self._page(data, page, MAX_PER_PAGE)
            found.extend(result.items)
            if not result.has_more or not result.items:
                break
        return found

    def find_account(self, spec: AccountSpec) -> UpstreamAccount | None:
        # the sandbox requires external_id on every account, so it alone identifies ours
        live = [a for a in self._search("find_account", external_id=str(spec.service_id))
                if a.status is not AccountStatus.DELETED]
        return live[0] if live else None

    def get_account(self, account_id: str) -> UpstreamAccount:
        return _account(self.http.get(self._acc(account_id), action="get_account"))

    def create_account(self, spec: AccountSpec) -> UpstreamAccount:
        owner = {
            "email": spec.client.email,
            "name": " ".join(p for p in (spec.client.first_name, spec.client.last_name) if p),
            "company": spec.client.company,
        }
        body: dict[str, Any] = {"external_id": str(spec.service_id), "domain": spec.domain,
                                "limits": _limits(spec.limits), "owner": owner}
        if spec.password:
            body["password"] = spec.password
        if spec.paid_until:
            body["paid_until"] = spec.paid_until.isoformat()
        try:
            return _account(self.http.post(f"{API}/accounts", action="create_account", json=body))
        except Conflict:
            # an earlier attempt (or someone else) already made it: adopt that one
            existing = self.find_account(spec)
            if existing is None:
                raise
            return existing

    def delete_account(self, account_id: str) -> None:
        try:
            self.http.delete(self._acc(account_id), action="delete_account")
        except NotFound:
            # already deleted (e.g. a retry whose first attempt was applied): the goal holds
            pass

    def suspend_account(self, account_id: str, reason: str) -> None:
        # suspending twice is a no-op upstream, so a retry is safe
        self.http.post(f"{self._acc(account_id)}/suspend", action="suspend_account",
                       json={"reason": reason or ""}, idempotent=True)

    def unsuspend_account(self, account_id: str) -> None:
        self.http.post(f"{self._acc(account_id)}/unsuspend", action="unsuspend_account",
                       json={}, idempotent=True)

    def set_limits(self, account_id: str, limits: dict[str, Any]) -> None:
        self.http.patch(self._acc(account_id), action="set_limits",
                        json={"limits": _limits(limits)}, idempotent=True)

    def set_password(self, account_id: str, password: str) -> None:
        self.http.patch(self._acc(account_id), action="set_password",
                        json={"password": password}, idempotent=True)

    def rename_domain(self, account_id: str, domain: str) -> UpstreamAccount:
        # renaming to the name it already has is a no-op upstream, so a retry is safe
        return _account(self.http.patch(self._acc(account_id), action="rename_domain",
                                        json={"domain": domain}, idempotent=True))

    def renew(self, account_id: str, until: dt.date) -> dt.date | None:
        # the sandbox never moves the date backwards, so a retry is safe
        account = _account(self.http.post(f"{self._acc(account_id)}/renew", action="renew",
                                          json={"paid_until": until.isoformat()}, idempotent=True))
        return account.paid_until

    def list_accounts(self, page: int = 1, per_page: int = 100) -> Page:
        per_page = max(1, min(per_page, MAX_PER_PAGE))
        data = self.http.get(f"{API}/accounts", action="list_accounts",
                             params={"page": page, "per_page": per_page})
        return self._page(data, page, per_page)

    @staticmethod
    def _page(data: Any, page: int, per_page: int) -> Page:
        items = [_account(a) for a in _items(data)]
        meta = data if isinstance(data, dict) else {}
        total = meta.get("total")
        return Page(items=items, page=int(meta.get("page") or page),
                    per_page=int(meta.get("per_page") or per_page),
                    total=int(total) if total is not None else (page - 1) * per_page + len(items))

    # --- mailboxes -------------------------------------------------------------------
    def list_mailboxes(self, account_id: str) -> list[Mailbox]:
        data = self.http.get(f"{self._acc(account_id)}/mailboxes", action="list_mailboxes")
        return [_mailbox(m) for m in _items(data)]

    def create_mailbox(self, account_id: str, spec: MailboxSpec) -> Mailbox:
        body: dict[str, Any] = {"local_part": spec.local_part, "password": spec.password,
                                "type": spec.type}
        if spec.name:
            body["name"] = spec.name
        if spec.quota_gb is not None:
            body["quota_gb"] = spec.quota_gb
        return _mailbox(self.http.post(f"{self._acc(account_id)}/mailboxes",
                                       action="create_mailbox", json=body))

    def update_mailbox(self, account_id: str, mailbox_id: str, changes: dict[str, Any]) -> Mailbox:
        allowed = {"password", "name", "quota_gb", "type", "enabled"}
        body = {k: v for k, v in changes.items() if k in allowed}
        path = f"{self._acc(account_id)}/mailboxes/{quote(str(mailbox_id), safe='')}"
        data = self.http.patch(path, action="update_mailbox", json=body, idempotent=True)
        if isinstance(data, dict) and data.get("id"):
            return _mailbox(data)
        return self._find(self.list_mailboxes(account_id), mailbox_id, "mailbox")

    def delete_mailbox(self, account_id: str, mailbox_id: str) -> None:
        self.http.delete(f"{self._acc(account_id)}/mailboxes/{quote(str(mailbox_id), safe='')}",
                         action="delete_mailbox")

    # --- aliases -----------------------------------------------------------------------
    def list_aliases(self, account_id: str) -> list[Alias]:
        data = self.http.get(f"{self._acc(account_id)}/aliases", action="list_aliases")
        return [_alias(a) for a in _items(data)]

    def create_alias(self, account_id: str, local_part: str, target: str) -> Alias:
        return _alias(self.http.post(f"{self._acc(account_id)}/aliases", action="create_alias",
                                     json={"local_part": local_part, "target": target}))

    def delete_alias(self, account_id: str, alias_id: str) -> None:
        self.http.delete(f"{self._acc(account_id)}/aliases/{quote(str(alias_id), safe='')}",
                         action="delete_alias")

    # --- distribution lists ----------------------------------------------------------
    def list_lists(self, account_id: str) -> list[DistributionList]:
        data = self.http.get(f"{self._acc(account_id)}/lists", action="list_lists")
        return [_list(d) for d in _items(data)]

    def create_list(self, account_id: str, local_part: str, members: list[str]) -> DistributionList:
        return _list(self.http.post(f"{self._acc(account_id)}/lists", action="create_list",
                                    json={"local_part": local_part, "members": list(members)}))

    def update_list(self, account_id: str, list_id: str, members: list[str]) -> DistributionList:
        path = f"{self._acc(account_id)}/lists/{quote(str(list_id), safe='')}"
        data = self.http.patch(path, action="update_list", json={"members": list(members)},
                               idempotent=True)
        if isinstance(data, dict) and data.get("id"):
            return _list(data)
        return self._find(self.list_lists(account_id), list_id, "distribution list")

    def delete_list(self, account_id: str, list_id: str) -> None:
        self.http.delete(f"{self._acc(account_id)}/lists/{quote(str(list_id), safe='')}",
                         action="delete_list")

    @staticmethod
    def _find(items: list[Any], object_id: str, what: str) -> Any:
        for item in items:
            if item.id == str(object_id):
                return item
        raise NotFound(f"sandbox: no {what} {object_id}")
