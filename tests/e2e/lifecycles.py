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
- every event carries the due date the billing system has; the upstream's paid-until
  date follows the last applied one (it is only ever extended).

A reordered lifecycle swaps two adjacent events after the create (never the
terminate), so the older of the two arrives second and must be skipped.
"""
from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import dataclass, field

from tests.helpers import event_body

PRODUCT_ID = "12"       # product_configs/sandbox-mail.yaml

#: billing configurable options per plan
PLANS: dict[str, dict[str, int]] = {
    "starter": {"Total Mailboxes": 2, "Mailbox Quota (GB)": 5},
    "business": {"Total Mailboxes": 10, "Mailbox Quota (GB)": 25, "Total Aliases": 20},
    "team": {"Total Mailboxes": 25, "Mailbox Quota (GB)": 50, "Total Aliases": 100,
             "Total Distribution Lists": 5},
}
#: sandbox-mail.yaml: limit <- (configurable option, default)
LIMIT_OPTIONS = {
    "mailboxes": ("Total Mailboxes", 1),
    "enhanced_mailboxes": ("Total Enhanced Mailboxes", 0),
    "mailbox_quota_gb": ("Mailbox Quota (GB)", 5),
    "aliases": ("Total Aliases", 0),
    "distribution_lists": ("Total Distribution Lists", 0),
}
OVERDUE = "Overdue on Payment"
OTHER_REASON = "Abuse report"
TERM = dt.timedelta(days=30)

CREATE, SUSPEND, UNSUSPEND = "service.create", "service.suspend", "service.unsuspend"
RENEW, CHANGE_PACKAGE, TERMINATE = "service.renew", "service.change_package", "service.terminate"


def plan_limits(plan: str) -> dict[str, int]:
    options = PLANS[plan]
    return {limit: options.get(option, default) for limit, (option, default) in LIMIT_OPTIONS.items()}


@dataclass(frozen=True)
class BillingEvent:
    """One event as the billing system sends it: the same bytes on every delivery."""
    service_id: str
    seq: int                     # its place in the billing system's own order
    kind: str
    occurred_at: dt.datetime
    plan: str                    # the plan the service has in billing at this point
    due: dt.date                 # the due date billing has at this point
    domain: str
    reason: str | None = None    # service.suspend

    @property
    def webhook_id(self) -> str:
        return f"whk_{self.service_id}_{self.seq}"

    def raw(self) -> str:
        extra = {"suspend_reason": self.reason} if self.reason else {}
        body = event_body(self.kind, self.service_id, domain=self.domain, product_id=PRODUCT_ID,
                          options=dict(PLANS[self.plan]), occurred_at=self.occurred_at,
                          next_due_date=self.due.isoformat(), **extra)
        return json.dumps(body, sort_keys=True)


@dataclass
class Lifecycle:
    service_id: str
    domain: str
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

    @property
    def limits(self) -> dict[str, int]:
        return plan_limits(self.plan)


def _middle_event(rng: random.Random, suspended: bool) -> str:
    if suspended:
        return rng.choices([UNSUSPEND, RENEW, CHANGE_PACKAGE], weights=[4, 3, 3])[0]
    return rng.choices([SUSPEND, CHANGE_PACKAGE, RENEW], weights=[4, 3, 3])[0]


def make_lifecycle(rng: random.Random, service_id: str, start: dt.datetime, *,
                   reordered: bool, terminate_share: float) -> Lifecycle:
    """create, 1-4 of suspend/unsuspend/change_package/renew, sometimes a terminate."""
    domain = f"svc-{service_id}.example.com"
    plan = rng.choice(sorted(PLANS))
    at = start
    due = start.date() + TERM
    events = [BillingEvent(service_id, 0, CREATE, at, plan, due, domain)]
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
            plan = rng.choice([p for p in sorted(PLANS) if p != plan])
        events.append(BillingEvent(service_id, seq, kind, at, plan, due, domain, reason))
    if rng.random() < terminate_share:
        at += dt.timedelta(seconds=rng.randint(30, 600))
        events.append(BillingEvent(service_id, len(events), TERMINATE, at, plan, due, domain))
    delivery = list(events)
    if reordered:
        middle = [i for i, e in enumerate(events) if e.kind not in (CREATE, TERMINATE)]
        pairs = [i for i in middle if i + 1 in middle]
        i = rng.choice(pairs)
        delivery[i], delivery[i + 1] = delivery[i + 1], delivery[i]
    return Lifecycle(service_id, domain, events, delivery, reordered)


def make_lifecycles(count: int, *, seed: int, first_id: int = 100000, reorder_share: float = 0.10,
                    terminate_share: float = 0.15, now: dt.datetime | None = None) -> list[Lifecycle]:
    """``count`` services; exactly ``round(count * reorder_share)`` of them reordered.

    Events happened within the last few hours (due dates lie ahead, so the
    scheduler's due-date policy never steps in)."""
    rng = random.Random(seed)
    now = now or dt.datetime.now(dt.timezone.utc)
    reordered = set(rng.sample(range(count), round(count * reorder_share)))
    return [make_lifecycle(rng, str(first_id + n), now - dt.timedelta(hours=3, seconds=rng.randint(0, 3600)),
                           reordered=n in reordered, terminate_share=terminate_share)
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
