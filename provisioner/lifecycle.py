"""Billing events move a service's desired state; ``converge`` makes the upstream match.

``apply_event`` is pure bookkeeping on the ``Service`` row (no I/O).
``converge`` reads the desired state, compares it with what the upstream has
and makes the smallest set of calls that closes the gap, so running it twice
changes nothing the second time. It never holds a database transaction while
it talks to the upstream.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from . import events as ev
from .billing.keys import DEFAULT_SOURCE, service_key
from .billing.sources import AUTHORITY_PROVISIONER
from .db import utcnow
from .models import DesiredStatus, Service, SuspendedBy
from .products import Product
from .providers.base import AccountSpec, AccountStatus, Capability, ClientInfo, Provider, UpstreamAccount
from .providers.errors import Conflict, NotFound
from .secrets import SecretBox

log = logging.getLogger("provisioner.lifecycle")

DEFAULT_SUSPEND_REASON = "Suspended by the billing system"
OVERDUE_REASON = "Overdue"
CLIENT_DETAILS = ("email", "first_name", "last_name", "company", "country", "address", "city",
                  "state", "postcode", "phone", "language")


def suspend(service: Service, by: str, reason: str, at: dt.datetime) -> None:
    service.desired_status = DesiredStatus.SUSPENDED
    service.suspend_reason = reason[:255]
    service.suspended_by = by
    service.suspended_at = at


def lift_suspension(service: Service) -> None:
    service.desired_status = DesiredStatus.ACTIVE
    service.suspend_reason = service.suspended_by = service.suspended_at = None


def is_overdue_suspension(service: Service) -> bool:
    """Suspended for non-payment: by our scheduler, or by billing saying so
    (WHMCS: "Overdue on Payment"). Only these are lifted by a renewal."""
    if service.desired_status != DesiredStatus.SUSPENDED:
        return False
    if service.suspended_by == SuspendedBy.SCHEDULER:
        return True
    return (service.suspended_by == SuspendedBy.BILLING
            and "overdue" in (service.suspend_reason or "").lower())


def apply_event(service: Service | None, event: dict, product: Product | None,
                limits: dict[str, Any] | None, box: SecretBox, *, key: str | None = None,
                source: str = DEFAULT_SOURCE, authority: str = AUTHORITY_PROVISIONER) -> Service:
    """Move the desired state of ``service`` (None for a first create) by one event.

    ``key`` and ``source`` name a new service (provisioner.billing.keys); ``authority``
    says who owns its lifecycle: under ``billing`` a renewal never lifts a suspension
    (the billing system sends service.unsuspend when it wants one)."""
    kind = event["type"]
    body = event["service"]
    if service is None:
        service = Service(id=key or service_key(source, body["id"]), source=source, billing_id=body["id"],
                          desired_status=DesiredStatus.ACTIVE, auto_suspend_enabled=True,
                          client={}, config_options={}, custom_fields={}, observed={}, usage={})
    if event.get("client"):
        service.client = dict(event["client"])
        service.client_id = event["client"]["id"]
    for attr in ("billing_cycle", "next_due_date"):
        if body.get(attr) is not None:
            setattr(service, attr, body[attr])
    if body.get("username"):
        service.username = body["username"]
    if body.get("auto_suspend") is not None:
        service.auto_suspend_enabled = bool(body["auto_suspend"]["enabled"])
        service.auto_suspend_until = None if service.auto_suspend_enabled else body["auto_suspend"].get("until")
    if kind == ev.UPDATE and body.get("domain") and body["domain"] != service.domain:
        # Renamed upstream by the converge step (intake checked the provider can); it
        # recognises the account by the domain it had.
        service.observed = {**(service.observed or {}), "domain": (service.observed or {}).get("domain")
                            or service.domain}
        service.domain = body["domain"]

    if kind in (ev.CREATE, ev.CHANGE_PACKAGE):
        assert product is not None and limits is not None
        service.billing_product_id = body["product_id"]
        service.product_key = product.id
        service.upstream = product.upstream
        service.limits = limits
        service.config_options = dict(body.get("config_options") or {})
        service.custom_fields = dict(body.get("custom_fields") or {})
    if kind == ev.CREATE and (service.domain is None or service.desired_status == DesiredStatus.TERMINATED):
        # A first create, or a new order for a terminated service: start afresh upstream.
        # A create for a live service only updates it (idempotent by state).
        service.domain = body["domain"]
        service.desired_status = DesiredStatus.ACTIVE
        service.upstream_id = None
        service.observed_status = None
        service.observed = {}
        service.usage = {}
    elif kind == ev.SUSPEND and not (service.desired_status == DesiredStatus.SUSPENDED
                                     and service.suspended_by == SuspendedBy.OPERATOR):
        # An operator's suspension stays theirs: billing's own reason must not let a later
        # billing unsuspend (or renewal) lift it.
        suspend(service, SuspendedBy.BILLING, body.get("suspend_reason") or DEFAULT_SUSPEND_REASON,
                event["occurred_at"])
    elif kind == ev.UNSUSPEND:
        # The caller refuses this for an operator's suspension (see intake).
        lift_suspension(service)
    elif kind == ev.RENEW and authority == AUTHORITY_PROVISIONER and is_overdue_suspension(service):
        lift_suspension(service)
    elif kind == ev.TERMINATE:
        service.desired_status = DesiredStatus.TERMINATED
        service.pending_password = None

    # A create for a live service only updates it: billing systems resend the service's
    # password with every create, and it must not be pushed over the account's own.
    new_account = kind == ev.CREATE and service.upstream_id is None
    if (new_account or kind == ev.CHANGE_PASSWORD) and body.get("password"):
        service.pending_password = box.encrypt(body["password"])
    return service


@dataclass
class ConvergeResult:
    actions: list[str] = field(default_factory=list)
    account: UpstreamAccount | None = None
    applied_password_token: str | None = None
    #: fetched when the service has none stored yet; None keeps what is stored
    dns_records: list[dict[str, Any]] | None = None

    @property
    def pending(self) -> bool:
        """The upstream is still activating the account: converge again later."""
        return self.account is not None and self.account.status == AccountStatus.PENDING

    def did(self, action: str) -> None:
        self.actions.append(action)


def account_spec(service: Service, password: str | None = None) -> AccountSpec:
    client = service.client or {}
    return AccountSpec(
        service_id=service.id,
        domain=service.domain,
        client=ClientInfo(id=str(client.get("id", service.client_id or "")),
                          **{name: client.get(name) or "" for name in CLIENT_DETAILS}),
        limits=dict(service.limits or {}),
        product_key=service.product_key,
        username=service.username,
        billing_cycle=service.billing_cycle,
        paid_until=service.next_due_date,
        password=password,
    )


def _belongs_to(account: UpstreamAccount, service: Service) -> bool:
    """Upstreams may reuse the id of a deleted account for someone else's."""
    if account.external_id is not None and account.external_id != service.id:
        return False
    known = {(service.domain or "").lower(), ((service.observed or {}).get("domain") or "").lower()}
    return not account.domain or account.domain.lower() in known


IsTaken = Callable[[str], bool]


def _locate(provider: Provider, service: Service, spec: AccountSpec,
            is_taken: IsTaken | None) -> UpstreamAccount | None:
    """The live upstream account of this service: by the stored id, else by look-up.

    A looked-up account that another service already holds is never this one's
    (two services, or two billing sources, with one domain): treating it as ours
    would change, suspend or delete someone else's mail."""
    if service.upstream_id:
        try:
            account = provider.get_account(service.upstream_id)
            if account.status != AccountStatus.DELETED and _belongs_to(account, service):
                return account
        except NotFound:
            pass
    account = provider.find_account(spec)
    if account is not None and is_taken is not None and is_taken(account.id):
        log.warning("service %s: upstream account %s found by look-up belongs to another service; "
                    "not adopted", service.id, account.id)
        return None
    return account


def _unfinished(provider: Provider, spec: AccountSpec, is_taken: IsTaken | None) -> UpstreamAccount | None:
    account = provider.find_unfinished(spec)
    if account is None or account.status == AccountStatus.DELETED:
        return None
    if is_taken is not None and is_taken(account.id):
        return None
    return account


def _held_elsewhere(service: Service) -> Conflict:
    return Conflict(f"service {service.id}: the upstream answered with an account another service holds",
                    safe_message="This domain is already set up on the e-mail platform for another service.",
                    action="create_account")


def _limits_differ(desired: dict[str, Any], observed: dict[str, Any]) -> bool:
    return any(observed.get(key) != value for key, value in desired.items())


def converge(provider: Provider, service: Service, box: SecretBox,
             on_account=None, is_taken: IsTaken | None = None) -> ConvergeResult:
    """Bring the upstream to ``service``'s desired state.

    ``service`` is a detached snapshot; the caller writes the result back.
    ``on_account(account)`` is called as soon as an account is created or
    adopted, so that a failure later in the same run loses neither its id nor
    a secret the upstream showed only once (``account.one_time_secrets``).
    ``is_taken(account_id)`` says whether another service holds that upstream
    account; such an account is never adopted, changed or deleted for this one.
    """
    result = ConvergeResult()
    password = box.decrypt(service.pending_password) if service.pending_password else None
    spec = account_spec(service, password)
    account = _locate(provider, service, spec, is_taken)

    if service.desired_status == DesiredStatus.TERMINATED:
        if account is None:
            # A create cut short (its later steps failed, then billing terminated) can
            # leave a half-made account nobody would ever remove.
            account = _unfinished(provider, spec, is_taken)
        if account is not None:
            provider.delete_account(account.id)
            result.did("delete")
            account.status = AccountStatus.DELETED
        result.account = account
        result.applied_password_token = service.pending_password
        return result

    if account is None:
        account = provider.create_account(spec)
        if is_taken is not None and is_taken(account.id):
            # The upstream adopted an existing order (one per domain, say) held by someone else.
            raise _held_elsewhere(service)
        result.did("create")
        if on_account:
            on_account(account)
        if password is not None:
            result.applied_password_token = service.pending_password
            password = None
    else:
        if service.upstream_id != account.id:
            result.did("adopt")
            if on_account:
                on_account(account)

    result.account = account
    observed = service.observed or {}
    if provider.supports(Capability.DNS) and (
            not observed.get("dns_records") or observed.get("status") == AccountStatus.PENDING.value
            or account.status == AccountStatus.PENDING):
        # Also while pending: activation may wait on a record the customer must publish.
        result.dns_records = [record.as_dict() for record in provider.dns_records(account.id)]
    if account.status == AccountStatus.PENDING:
        # Asynchronous activation: nothing more can be done until it is active.
        return result

    if (provider.supports(Capability.RENAME_DOMAIN) and account.domain and service.domain
            and account.domain.lower() != service.domain.lower()):
        account = provider.rename_domain(account.id, service.domain)
        result.account = account
        result.did("rename_domain")

    if provider.supports(Capability.LIMITS) and _limits_differ(service.limits or {}, account.limits):
        provider.set_limits(account.id, dict(service.limits))
        account.limits = {**account.limits, **service.limits}
        result.did("set_limits")

    if service.desired_status == DesiredStatus.SUSPENDED and account.status == AccountStatus.ACTIVE:
        provider.suspend_account(account.id, service.suspend_reason or DEFAULT_SUSPEND_REASON)
        account.status = AccountStatus.SUSPENDED
        result.did("suspend")
    elif service.desired_status == DesiredStatus.ACTIVE and account.status == AccountStatus.SUSPENDED:
        provider.unsuspend_account(account.id)
        account.status = AccountStatus.ACTIVE
        result.did("unsuspend")

    if password is not None:
        if provider.supports(Capability.PASSWORD):
            provider.set_password(account.id, password)
            result.did("set_password")
        result.applied_password_token = service.pending_password

    if (provider.supports(Capability.TERMS) and service.next_due_date
            and (account.paid_until is None or account.paid_until < service.next_due_date)):
        renewed_until = provider.renew(account.id, service.next_due_date)
        if renewed_until is not None:
            account.paid_until = renewed_until
            result.did("renew")

    return result


def record_observation(service: Service, result: ConvergeResult, now: dt.datetime | None = None) -> None:
    """Write what the converge step saw and did onto the (attached) service row."""
    now = now or utcnow()
    account = result.account
    if account is None:
        service.observed_status = "deleted" if service.desired_status == DesiredStatus.TERMINATED else None
        service.observed = {}
    else:
        previous = service.observed or {}
        same_account = service.upstream_id == account.id
        service.upstream_id = account.id
        service.observed_status = account.status.value
        service.observed = {
            "status": account.status.value,
            "domain": account.domain or None,
            "limits": account.limits,
            "paid_until": account.paid_until.isoformat() if account.paid_until else None,
            "native": account.native,
            "dns_records": result.dns_records if result.dns_records is not None
            else (previous.get("dns_records", []) if same_account else []),
        }
        service.usage = account.usage.as_dict()
        service.usage_at = now
    # Erase the password only if no newer one arrived while we were working.
    if result.applied_password_token and service.pending_password == result.applied_password_token:
        service.pending_password = None
    service.converged_at = now
