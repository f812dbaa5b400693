"""The interface every upstream adapter implements.

A provider manages one *account* per billing service: the top-level upstream
object (an order, a customer account, a domain, a relay account). The converge
step (``provisioner.lifecycle``) only speaks this interface, so adding an
upstream means writing one subclass and one simulator.

Rules for adapters:
- every outbound call goes through ``provisioner.providers.http.HttpClient``
  (timeouts, masked logs, metrics, status-to-error mapping);
- raise the errors of ``provisioner.providers.errors``; a call the platform
  cannot do raises ``NotSupported`` (the default of every optional method here);
- ``find_account`` must make create idempotent: a retried create looks the
  account up first and adopts it, so one billing service never gets two.
"""
from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .errors import NotFound, NotSupported, ProviderError


class Capability(str, enum.Enum):
    SUSPEND = "suspend"            # suspend_account / unsuspend_account
    LIMITS = "limits"              # set_limits changes the account's limits in place
    PASSWORD = "password"          # set_password on the account's admin login
    TERMS = "terms"                # the upstream sells terms: renew(account, until)
    BULK_LIST = "bulk_list"        # list_accounts pages through every account
    MAILBOXES = "mailboxes"
    ALIASES = "aliases"
    LISTS = "lists"                # distribution lists with members
    SSO = "sso"                    # webmail / panel single sign-on URL
    DNS = "dns"                    # dns_records: what the customer must publish
    PRICING = "pricing"            # price_table: the upstream's prices for operators
    INVOICES = "invoices"          # list_invoices / invoice_pdf: the reseller's invoices
    RELAY = "relay"                # SMTP relay accounts (the provider's own relay_* methods)
    RENAME_DOMAIN = "rename_domain"  # rename_domain moves the account to a new domain in place


class AccountStatus(str, enum.Enum):
    PENDING = "pending"            # ordered, not yet usable (asynchronous activation)
    ACTIVE = "active"
    SUSPENDED = "suspended"
    DELETED = "deleted"


# Months in each billing cycle, as billing systems name them (WHMCS spellings).
CYCLE_MONTHS = {
    "monthly": 1, "quarterly": 3, "semiannually": 6, "semi-annually": 6, "annually": 12,
    "yearly": 12, "biennially": 24, "triennially": 36,
}


def cycle_months(billing_cycle: str | None, default: int = 1) -> int:
    """Months paid per billing cycle ("Annually" -> 12); ``default`` for free/one-time/unknown."""
    return CYCLE_MONTHS.get((billing_cycle or "").strip().lower().replace(" ", ""), default)


@dataclass(frozen=True)
class ClientInfo:
    id: str
    email: str = ""
    first_name: str = ""
    last_name: str = ""
    company: str = ""
    country: str = ""
    # Postal address and phone: optional in the hook, needed by upstreams that
    # open a customer account of their own (ResellerClub's customers/add).
    address: str = ""
    city: str = ""
    state: str = ""
    postcode: str = ""
    phone: str = ""                      # as the billing system has it, e.g. "+49.3012345678"
    language: str = ""


@dataclass(frozen=True)
class AccountSpec:
    """What the billing side wants to exist upstream for one service."""
    service_id: str
    domain: str
    client: ClientInfo
    limits: dict[str, Any]
    product_key: str = ""
    username: str | None = None
    billing_cycle: str | None = None
    paid_until: dt.date | None = None
    # Only set on the converge step that must apply it; never logged.
    password: str | None = field(default=None, repr=False)


@dataclass
class Usage:
    mailboxes: int = 0
    enhanced_mailboxes: int = 0
    aliases: int = 0
    distribution_lists: int = 0
    storage_mb: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "mailboxes": self.mailboxes,
            "enhanced_mailboxes": self.enhanced_mailboxes,
            "aliases": self.aliases,
            "distribution_lists": self.distribution_lists,
            "storage_mb": self.storage_mb,
        }


@dataclass
class UpstreamAccount:
    id: str
    domain: str
    status: AccountStatus
    limits: dict[str, Any] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    paid_until: dt.date | None = None
    external_id: str | None = None       # our billing service id, where the upstream keeps one
    native: dict[str, Any] = field(default_factory=dict)
    #: secrets the upstream generated and shows only once (a relay account's
    #: password): revealed once to whoever asked, never stored in clear
    one_time_secrets: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass
class Page:
    items: list[UpstreamAccount]
    page: int
    per_page: int
    total: int

    @property
    def has_more(self) -> bool:
        return self.page * self.per_page < self.total


@dataclass
class Mailbox:
    id: str
    address: str
    name: str = ""
    quota_gb: int | None = None
    type: str = "basic"                  # basic | enhanced
    enabled: bool = True
    used_mb: int = 0


@dataclass
class MailboxSpec:
    local_part: str
    password: str = field(repr=False)
    name: str = ""
    quota_gb: int | None = None
    type: str = "basic"


@dataclass
class Alias:
    id: str
    address: str
    target: str


@dataclass
class DistributionList:
    id: str
    address: str
    members: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DnsRecord:
    """A record the customer must publish for the service to work (MX, SPF, DKIM, ownership)."""
    type: str                            # MX, TXT, CNAME, ...
    host: str                            # fully qualified name
    value: str
    priority: int | None = None
    ttl: int | None = None
    purpose: str = ""                    # "mail delivery", "DKIM", "ownership check", ...

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "host": self.host, "value": self.value, "priority": self.priority,
                "ttl": self.ttl, "purpose": self.purpose}


@dataclass(frozen=True)
class PriceRow:
    """One cell group of an upstream's price table (ResellerClub: accounts range x action)."""
    product: str                         # the upstream's product key
    accounts: str                        # account range, e.g. "1-5"
    action: str                          # add | renew
    months: int
    cost: float                          # what the reseller pays
    price: float | None                  # what the reseller charges (None if not set)

    @property
    def margin(self) -> float | None:
        return None if self.price is None else round(self.price - self.cost, 2)


@dataclass(frozen=True)
class Invoice:
    id: str
    date: dt.date | None
    amount: float | None
    currency: str = ""
    status: str = ""                     # paid | open | ...
    description: str = ""
    customer: str = ""                   # the upstream account it bills, where known


class Provider:
    """Base class of every adapter. ``config`` is the upstream's block of
    ``upstreams.yaml`` with ``${ENV}`` references already resolved."""

    #: the ``provider:`` value in upstreams.yaml
    kind: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    #: limit names this provider understands beyond the core ones
    #: (``provisioner.products.CORE_LIMITS``), e.g. plan tiers or a region
    extra_limits: ClassVar[frozenset[str]] = frozenset()
    #: upstreams.yaml keys this provider requires besides ``provider``
    required_settings: ClassVar[tuple[str, ...]] = ()
    #: mailbox types this upstream offers -> the limit that counts them
    #: (PolarisMail: basic and enhanced; mailbox.org: light, standard, premium)
    mailbox_types: ClassVar[dict[str, str]] = {"basic": "mailboxes"}
    #: list_accounts items carry the accounts' usage (a reconcile pass stores it); False:
    #: only get_account does, and a pass keeps what the last converge read
    lists_usage: ClassVar[bool] = True
    #: with Capability.SSO: what a sign-on can open -> the label customers see; the
    #: first is the default ``target`` of ``sso_url``
    sign_ons: ClassVar[dict[str, str]] = {"webmail": "Webmail"}
    #: limits an account keeps for life: changing one needs a new account. Intake refuses
    #: a change of package that would change one; ``set_limits`` still checks.
    fixed_limits: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, name: str, config: dict[str, Any]):
        self.name = name
        self.config = config

    def close(self) -> None:
        """Release connections (adapters with an HTTP client close it)."""

    def supports(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def _unsupported(self, what: str):
        raise NotSupported(f"{self.kind} does not support {what}", action=what)

    # --- what intake can judge before any upstream call ----------------------
    # Each answers from the product's limits, the event and this upstream's settings
    # alone (never an upstream call), so that a hook whose job cannot succeed is
    # refused at once instead of failing a moment later.

    def missing_client_fields(self, client: ClientInfo) -> list[str]:
        """The ``ClientInfo`` fields a new account needs that ``client`` lacks, after
        whatever this upstream's settings fill in (none by default)."""
        return []

    def limit_problems(self, limits: dict[str, Any]) -> dict[str, str]:
        """Limits this adapter would refuse for an account: limit name -> why, safe to show."""
        return {}

    def password_problem(self, password: str, limits: dict[str, Any]) -> str | None:
        """Why this adapter would refuse ``password`` as the new password of an account
        with ``limits`` (safe to show), or None."""
        return None

    # --- connection -----------------------------------------------------
    def test_connection(self) -> None:
        """Raise a ProviderError if the upstream cannot be reached or refuses us."""
        raise NotImplementedError

    # --- the account (required) ------------------------------------------
    def find_account(self, spec: AccountSpec) -> UpstreamAccount | None:
        """Look the account up by what identifies the billing service upstream
        (external id, domain); None if there is none (deleted ones count as none)."""
        raise NotImplementedError

    def find_unfinished(self, spec: AccountSpec) -> UpstreamAccount | None:
        """An account that a create for this service left half-made, which
        ``find_account`` does not count as the service's (so that ``create_account``
        finishes it); a termination removes it instead. Adapters whose create is one
        call leave none."""
        return None

    def get_account(self, account_id: str) -> UpstreamAccount:
        """Raise NotFound if it does not exist."""
        raise NotImplementedError

    def create_account(self, spec: AccountSpec) -> UpstreamAccount:
        raise NotImplementedError

    def delete_account(self, account_id: str) -> None:
        raise NotImplementedError

    # --- optional, by capability ------------------------------------------
    def suspend_account(self, account_id: str, reason: str) -> None:
        self._unsupported("suspend")

    def unsuspend_account(self, account_id: str) -> None:
        self._unsupported("unsuspend")

    def set_limits(self, account_id: str, limits: dict[str, Any]) -> None:
        self._unsupported("limits")

    def set_password(self, account_id: str, password: str) -> None:
        self._unsupported("password")

    def renew(self, account_id: str, until: dt.date) -> dt.date | None:
        """Extend the paid term towards ``until`` (never past what is paid).

        Returns the account's new paid-until date, or None if nothing was due
        (upstreams selling whole months may stop short of ``until``)."""
        self._unsupported("renew")

    def rename_domain(self, account_id: str, domain: str) -> UpstreamAccount:
        """Move the account (and its addresses) to ``domain`` in place; the account after."""
        self._unsupported("renaming a domain")

    def list_accounts(self, page: int = 1, per_page: int = 100) -> Page:
        self._unsupported("bulk list")

    def sso_url(self, account_id: str, mailbox: str | None = None, target: str | None = None) -> str:
        """A one-time sign-on link; ``target`` is a key of ``sign_ons`` (None: the first)."""
        self._unsupported("single sign-on")

    def dns_records(self, account_id: str) -> list[DnsRecord]:
        self._unsupported("DNS records")

    def price_table(self) -> list[PriceRow]:
        self._unsupported("pricing")

    def list_invoices(self) -> list[Invoice]:
        self._unsupported("invoices")

    def invoice_pdf(self, invoice_id: str) -> bytes:
        self._unsupported("invoices")

    # --- mailboxes, aliases, lists (client area) ---------------------------
    def list_mailboxes(self, account_id: str) -> list[Mailbox]:
        self._unsupported("mailboxes")

    def create_mailbox(self, account_id: str, spec: MailboxSpec) -> Mailbox:
        self._unsupported("mailboxes")

    def update_mailbox(self, account_id: str, mailbox_id: str, changes: dict[str, Any]) -> Mailbox:
        self._unsupported("mailboxes")

    def delete_mailbox(self, account_id: str, mailbox_id: str) -> None:
        self._unsupported("mailboxes")

    def list_aliases(self, account_id: str) -> list[Alias]:
        self._unsupported("aliases")

    def create_alias(self, account_id: str, local_part: str, target: str) -> Alias:
        self._unsupported("aliases")

    def delete_alias(self, account_id: str, alias_id: str) -> None:
        self._unsupported("aliases")

    def update_alias(self, account_id: str, alias_id: str, target: str) -> Alias:
        """Point an alias elsewhere. The upstreams here have no call for it, so the
        default deletes and re-adds it, putting the old one back if the re-add fails."""
        old = next((a for a in self.list_aliases(account_id) if a.id == alias_id), None)
        if old is None:
            raise NotFound(f"{self.kind}: no alias {alias_id}", action="update_alias")
        local_part = old.address.split("@")[0]
        self.delete_alias(account_id, alias_id)
        try:
            return self.create_alias(account_id, local_part, target)
        except ProviderError:
            self.create_alias(account_id, local_part, old.target)
            raise

    def list_lists(self, account_id: str) -> list[DistributionList]:
        self._unsupported("distribution lists")

    def create_list(self, account_id: str, local_part: str, members: list[str]) -> DistributionList:
        self._unsupported("distribution lists")

    def update_list(self, account_id: str, list_id: str, members: list[str]) -> DistributionList:
        self._unsupported("distribution lists")

    def delete_list(self, account_id: str, list_id: str) -> None:
        self._unsupported("distribution lists")
