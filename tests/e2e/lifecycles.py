"""The billing side of a chaos run: service lifecycles, the order they are delivered
in, and the state each one must end in.

Everything here is plain data and a small model written from the documented rules
(README, "How it works"), not from ``provisioner.lifecycle``, so the expected end
state is worked out independently of the code under test:

- events move a service's desired state in the order they *arrive*, except that an
  event older (``occurred_at``) than one already applied is recorded and skipped;
- ``service.suspend`` suspends (with a reason); ``service.unsuspend`` lifts it;
  ``service.renew`` lifts only an overdue suspension ("Overdue on Payment") and
  moves the due date on; ``service.change_package`` sets the plan;
  ``service.terminate`` ends it (no live upstream account);
- every event carries the due date the billing system has; where the upstream keeps
  a term (the sandbox), its paid-until date follows the last applied one (it is
  only ever extended);
- a plan is a set of configurable options; what limits it means upstream is the
  product's YAML read by hand (:class:`Product`).

A reordered lifecycle swaps two adjacent events after the create (never the
terminate), so the older of the two arrives second and must be skipped.
"""
from __future__ import annotations

import datetime as dt
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.helpers import event_body


@dataclass(frozen=True, eq=False)      # compared and hashed by identity: one object per product
class Product:
    """A billing product on one upstream, as the test knows it (independently of
    provisioner.products): its plans, the limits a plan means upstream, and how to
    tell whose an upstream account is."""
    upstream: str                                  # the simulator's name
    product_id: str                                # the billing product id (product_configs/)
    plans: dict[str, dict[str, Any]]               # billing configurable options per plan
    limits_of: Callable[[dict[str, Any]], dict[str, Any]]   # options -> /_sim/state limits
    owner: Callable[[dict[str, Any]], str | None]  # /_sim/state entry -> billing service id
    terms: bool                                    # the upstream keeps a paid-until date

    def limits(self, plan: str) -> dict[str, Any]:
        return self.limits_of(self.plans[plan])


def _sandbox_limits(options: dict[str, Any]) -> dict[str, Any]:
    """product_configs/sandbox-mail.yaml: each limit is one option, with its default."""
    return {"mailboxes": options.get("Total Mailboxes", 1),
            "enhanced_mailboxes": options.get("Total Enhanced Mailboxes", 0),
            "mailbox_quota_gb": options.get("Mailbox Quota (GB)", 5),
            "aliases": options.get("Total Aliases", 0),
            "distribution_lists": options.get("Total Distribution Lists", 0)}


def _mailboxorg_limits(options: dict[str, Any]) -> dict[str, Any]:
    """product_configs/mailboxorg-business.yaml, as the mailbox.org simulator shows it:
    mailboxes per tier, their total, mailing lists and the account plan."""
    tiers = {"light_mailboxes": options.get("Light Mailboxes", 0),
             "standard_mailboxes": options.get("Standard Mailboxes", 1),
             "premium_mailboxes": options.get("Premium Mailboxes", 0)}
    return {**tiers, "mailboxes": sum(tiers.values()), "mailing_lists": options.get("Mailing Lists", 0),
            "account_plan": str(options.get("Account Plan", "reseller")).lower()}


_MAILBOXORG_NAME = re.compile(r"^prov-(?P<service>.+?)(?:-r\d+)?$")   # upstreams.yaml account_prefix


def _mailboxorg_owner(account: dict[str, Any]) -> str | None:
    match = _MAILBOXORG_NAME.match(account["id"])
    return match["service"] if match else None


SANDBOX = Product("sandbox", "12", {
    "starter": {"Total Mailboxes": 2, "Mailbox Quota (GB)": 5},
    "business": {"Total Mailboxes": 10, "Mailbox Quota (GB)": 25, "Total Aliases": 20},
    "team": {"Total Mailboxes": 25, "Mailbox Quota (GB)": 50, "Total Aliases": 100,
             "Total Distribution Lists": 5},
}, _sandbox_limits, lambda account: account["native"]["external_id"], terms=True)

MAILBOXORG = Product("mailboxorg", "40", {
    "solo": {"Standard Mailboxes": 1},
    "office": {"Light Mailboxes": 3, "Standard Mailboxes": 5, "Mailing Lists": 2, "Account Plan": "Profi"},
    "firm": {"Standard Mailboxes": 10, "Premium Mailboxes": 3, "Mailing Lists": 5, "Account Plan": "ProfiXL"},
}, _mailboxorg_limits, _mailboxorg_owner, terms=False)

_SERVICE_DOMAIN = re.compile(r"^svc-(?P<service>\d+)\.example\.com$")     # make_lifecycle's domains


def _owner_by_domain(account: dict[str, Any]) -> str | None:
    match = _SERVICE_DOMAIN.match(account.get("domain") or "")
    return match["service"] if match else None


#: product_configs/enterprise-email-us.yaml: ResellerClub counts mailboxes only
RESELLERCLUB = Product("resellerclub", "20", {
    "few": {"Total Mailboxes": 2},
    "some": {"Total Mailboxes": 5},
    "many": {"Total Mailboxes": 12},
}, lambda options: {"mailboxes": options["Total Mailboxes"]}, _owner_by_domain, terms=False)

#: product_configs/qboxmail-hosting.yaml: a hosting domain's plan, mailboxes and quota
QBOXMAIL = Product("qboxmail", "50", {
    "basic": {"Plan": "basic", "Total Mailboxes": 3, "Mailbox Quota (GB)": 4},
    "professional": {"Plan": "professional", "Total Mailboxes": 10, "Mailbox Quota (GB)": 8},
    "enterprise": {"Plan": "enterprise", "Total Mailboxes": 40, "Mailbox Quota (GB)": 25},
}, lambda options: {"qboxmail_product": "hosting", "plan": options["Plan"],
                    "mailboxes": options["Total Mailboxes"], "mailbox_quota_gb": options["Mailbox Quota (GB)"]},
    _owner_by_domain, terms=False)

#: product_configs/polaris-business-mail.yaml: PolarisMail has no domain limits of its own
#: (the provisioner enforces them), so its state shows none; every option is required
POLARISMAIL = Product("polarismail", "30", {
    plan: dict(zip(("Total Mailboxes", "Total Enhanced Mailboxes", "Mailbox Quota (GB)", "Total Aliases",
                    "Total Distribution Lists"), values))
    for plan, values in {"small": (3, 0, 5, 0, 0), "medium": (10, 2, 10, 10, 1),
                         "large": (30, 5, 25, 50, 5)}.items()
}, lambda options: {}, _owner_by_domain, terms=False)

#: product_configs/modoboa-mail.yaml: the domain quota and default mailbox quota are
#: Modoboa's own, the counts the adapter keeps (all shown in the simulator's state)
MODOBOA = Product("modoboa", "60", {
    "mini": {"Total Mailboxes": 2, "Domain Quota (GB)": 5, "Mailbox Quota (MB)": 512},
    "office": {"Total Mailboxes": 10, "Domain Quota (GB)": 20, "Mailbox Quota (MB)": 1024, "Total Aliases": 20},
    "big": {"Total Mailboxes": 50, "Domain Quota (GB)": 100, "Mailbox Quota (MB)": 2048, "Total Aliases": 100,
            "Total Distribution Lists": 10},
}, lambda options: {"mailboxes": options.get("Total Mailboxes", 5),
                    "domain_quota_gb": options.get("Domain Quota (GB)", 10),
                    "mailbox_quota_mb": options.get("Mailbox Quota (MB)", 1024),
                    "aliases": options.get("Total Aliases", 10),
                    "distribution_lists": options.get("Total Distribution Lists", 2)},
    _owner_by_domain, terms=False)

#: what ResellerClub needs to open the client's customer account
CLIENT_ADDRESS = {"address": "1 Example Street", "city": "Berlin", "state": "Berlin", "postcode": "10115",
                  "phone": "+49.3012345678"}

OVERDUE = "Overdue on Payment"
OTHER_REASON = "Abuse report"
TERM = dt.timedelta(days=30)

CREATE, SUSPEND, UNSUSPEND = "service.create", "service.suspend", "service.unsuspend"
RENEW, CHANGE_PACKAGE, TERMINATE = "service.renew", "service.change_package", "service.terminate"


@dataclass(frozen=True)
class BillingEvent:
    """One event as the billing system sends it: the same bytes on every delivery."""
    service_id: str
    seq: int                     # its place in the billing system's own order
    kind: str
    occurred_at: dt.datetime
    product: Product
    plan: str                    # the plan the service has in billing at this point
    due: dt.date                 # the due date billing has at this point
    domain: str
    reason: str | None = None    # service.suspend

    @property
    def webhook_id(self) -> str:
        return f"whk_{self.service_id}_{self.seq}"

    def raw(self) -> str:
        extra = {"suspend_reason": self.reason} if self.reason else {}
        body = event_body(self.kind, self.service_id, domain=self.domain, product_id=self.product.product_id,
                          options=dict(self.product.plans[self.plan]), occurred_at=self.occurred_at,
                          next_due_date=self.due.isoformat(), **extra)
        body["client"].update(CLIENT_ADDRESS)
        return json.dumps(body, sort_keys=True)


@dataclass
class Lifecycle:
    service_id: str
    domain: str
    product: Product
    events: list[BillingEvent]                   # billing's order (occurred_at ascending)
    delivery: list[BillingEvent] = field(default_factory=list)   # the order they are sent in
    reordered: bool = False


@dataclass(frozen=True)
class Expected:
    """What a service must look like once everything has converged."""
    status: str                  # active | suspended | terminated
    plan: str
    due: dt.date
    skipped: frozenset[str]      # webhook-ids that arrive after a newer event: stale


def _middle_event(rng: random.Random, suspended: bool) -> str:
    if suspended:
        return rng.choices([UNSUSPEND, RENEW, CHANGE_PACKAGE], weights=[4, 3, 3])[0]
    return rng.choices([SUSPEND, CHANGE_PACKAGE, RENEW], weights=[4, 3, 3])[0]


def make_lifecycle(rng: random.Random, service_id: str, start: dt.datetime, product: Product, *,
                   reordered: bool, terminate_share: float) -> Lifecycle:
    """create, 1-4 of suspend/unsuspend/change_package/renew, sometimes a terminate."""
    domain = f"svc-{service_id}.example.com"
    plans = sorted(product.plans)
    plan = rng.choice(plans)
    at = start
    due = start.date() + TERM
    events = [BillingEvent(service_id, 0, CREATE, at, product, plan, due, domain)]
    suspended_for: str | None = None     # only to pick plausible next events
    for seq in range(1, 1 + rng.randint(2 if reordered else 1, 4)):
        at += dt.timedelta(seconds=rng.randint(30, 600))
        kind = _middle_event(rng, suspended_for is not None)
        reason = None
        if kind == SUSPEND:
            reason = suspended_for = rng.choice([OVERDUE, OTHER_REASON])
        elif kind == UNSUSPEND:
            suspended_for = None
        elif kind == RENEW:
            due += TERM
            if suspended_for == OVERDUE:
                suspended_for = None
        elif kind == CHANGE_PACKAGE:
            plan = rng.choice([p for p in plans if p != plan])
        events.append(BillingEvent(service_id, seq, kind, at, product, plan, due, domain, reason))
    if rng.random() < terminate_share:
        at += dt.timedelta(seconds=rng.randint(30, 600))
        events.append(BillingEvent(service_id, len(events), TERMINATE, at, product, plan, due, domain))
    delivery = list(events)
    if reordered:
        middle = [i for i, e in enumerate(events) if e.kind not in (CREATE, TERMINATE)]
        pairs = [i for i in middle if i + 1 in middle]
        i = rng.choice(pairs)
        delivery[i], delivery[i + 1] = delivery[i + 1], delivery[i]
    return Lifecycle(service_id, domain, product, events, delivery, reordered)


def make_lifecycles(count: int, *, seed: int, products: tuple[Product, ...] = (SANDBOX,),
                    first_id: int = 100000, reorder_share: float = 0.10, terminate_share: float = 0.15,
                    now: dt.datetime | None = None) -> list[Lifecycle]:
    """``count`` services, spread over ``products`` in turn; exactly
    ``round(count * reorder_share)`` of them reordered.

    Events happened within the last few hours (due dates lie ahead, so the
    scheduler's due-date policy never steps in)."""
    rng = random.Random(seed)
    now = now or dt.datetime.now(dt.timezone.utc)
    reordered = set(rng.sample(range(count), round(count * reorder_share)))
    return [make_lifecycle(rng, str(first_id + n), now - dt.timedelta(hours=3, seconds=rng.randint(0, 3600)),
                           products[n % len(products)], reordered=n in reordered,
                           terminate_share=terminate_share)
            for n in range(count)]


def expected_state(delivery: list[BillingEvent]) -> Expected:
    """Fold the events in arrival order by the documented rules (module docstring)."""
    status = plan = reason = None
    due = last = None
    skipped: set[str] = set()
    for event in delivery:
        if last is not None and event.occurred_at < last:
            skipped.add(event.webhook_id)
            continue
        last, due = event.occurred_at, event.due
        if event.kind == CREATE:
            status, plan, reason = "active", event.plan, None
        elif event.kind == SUSPEND:
            status, reason = "suspended", event.reason
        elif event.kind == UNSUSPEND:
            status, reason = "active", None
        elif event.kind == RENEW:
            if status == "suspended" and "overdue" in (reason or "").lower():
                status, reason = "active", None
        elif event.kind == CHANGE_PACKAGE:
            plan = event.plan
        elif event.kind == TERMINATE:
            status = "terminated"
    assert status is not None and plan is not None and due is not None, "a lifecycle starts with a create"
    return Expected(status, plan, due, frozenset(skipped))


@dataclass(frozen=True)
class Delivery:
    event: BillingEvent
    duplicate: bool              # the same webhook-id and bytes sent once more


def plan_waves(lifecycles: list[Lifecycle], *, seed: int, duplicate_share: float = 0.20) -> list[list[Delivery]]:
    """Deliveries in waves: wave k carries the k-th delivery of every service, so one
    service's events arrive in its delivery order (the next is sent once the previous
    was accepted) while services interleave. ``duplicate_share`` of the events are sent
    twice: half in the same wave, racing the original, half in the next wave."""
    rng = random.Random(seed)
    waves: list[list[Delivery]] = [[] for _ in range(max(len(lc.delivery) for lc in lifecycles) + 1)]
    for lifecycle in lifecycles:
        for k, event in enumerate(lifecycle.delivery):
            waves[k].append(Delivery(event, False))
            if rng.random() < duplicate_share:
                waves[k + rng.randint(0, 1)].append(Delivery(event, True))
    for wave in waves:
        rng.shuffle(wave)
    return [wave for wave in waves if wave]
