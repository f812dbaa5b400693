"""The provisioner's tables.

A ``Service`` holds the billing service's *desired* state (moved by events)
and what was last *observed* upstream (written by converge jobs). ``Event`` is
each accepted billing hook; ``Job`` a durable converge job with its lease;
``JobAttempt`` one try of a job, with its customer-safe error.
"""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (JSON, BigInteger, Boolean, Date, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint, select, text)
from sqlalchemy.orm import Mapped, column_property, mapped_column, relationship

from .billing.keys import DEFAULT_SOURCE, MAX_KEY, MAX_SOURCE_NAME
from .db import Base, UTCDateTime, utcnow

SERVICE_KEY = String(MAX_KEY)
SOURCE_NAME = String(MAX_SOURCE_NAME)


def new_id() -> str:
    return uuid.uuid4().hex


class DesiredStatus:
    ACTIVE = "active"
    SUSPENDED = "suspended"
    TERMINATED = "terminated"


class SuspendedBy:
    BILLING = "billing"        # a service.suspend event
    SCHEDULER = "scheduler"    # overdue past the product's grace days
    OPERATOR = "operator"      # the admin API; only an operator lifts it


class JobState:
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"

    RUNNABLE = (QUEUED, RETRYING)
    FINISHED = (SUCCEEDED, FAILED, SKIPPED)
    ALL = (QUEUED, RUNNING, RETRYING, SUCCEEDED, FAILED, SKIPPED)


# Literal SQL, not bound values: a planner uses a partial index only for a query whose
# WHERE visibly implies the index's own.
RUNNABLE_SQL = "state IN ('queued', 'retrying')"
RUNNING_SQL = "state = 'running'"

#: columns the services listing filters on, each indexed with the listing order
LISTING_FILTERS = ("source", "upstream", "product_key", "desired_status", "observed_status")


class Service(Base):
    __tablename__ = "services"
    __table_args__ = (UniqueConstraint("source", "billing_id"),
                      # the order every listing of services pages through (GET /api/v1/services)
                      Index("ix_services_created_at_id", "created_at", "id"),
                      # a filter in that order (the console's services page): without the order
                      # in the index, a filter matching 100,000 services sorts them all per page
                      *(Index(f"ix_services_{column}_listing", column, "created_at", "id")
                        for column in LISTING_FILTERS),
                      # a domain on an upstream (intake's check that another billing source
                      # does not serve it): with the domain alone a planner with stale
                      # statistics ANDed in the upstream's listing index, every service of it
                      Index("ix_services_domain_upstream", "domain", "upstream"))

    # The provisioner's key: provisioner.billing.keys.service_key(source, billing_id).
    id: Mapped[str] = mapped_column(SERVICE_KEY, primary_key=True)
    # The billing source (billing.yaml) and that billing system's own service id.
    source: Mapped[str] = mapped_column(SOURCE_NAME, default=DEFAULT_SOURCE, server_default=DEFAULT_SOURCE)
    # Defaults to the key: the default source's rule, for rows made without intake.
    billing_id: Mapped[str] = mapped_column(String(64), default=lambda ctx: ctx.get_current_parameters()["id"])
    billing_product_id: Mapped[str] = mapped_column(String(64), index=True)
    product_key: Mapped[str] = mapped_column(String(128))
    upstream: Mapped[str] = mapped_column(String(128))
    domain: Mapped[str] = mapped_column(String(255))
    username: Mapped[str | None] = mapped_column(String(255))
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    client: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    billing_cycle: Mapped[str | None] = mapped_column(String(32))
    next_due_date: Mapped[dt.date | None] = mapped_column(Date, index=True)
    # Billing's per-service override of automatic suspension (WHMCS "Override
    # Auto-Suspend" / "Suspend Until"): disabled, the scheduler does not suspend
    # for non-payment, until ``auto_suspend_until`` if set, else indefinitely.
    auto_suspend_enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")
    auto_suspend_until: Mapped[dt.date | None] = mapped_column(Date)
    config_options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    desired_status: Mapped[str] = mapped_column(String(16))
    suspend_reason: Mapped[str | None] = mapped_column(String(255))
    # Who suspended it (SuspendedBy) and when: a renewal lifts only an overdue
    # suspension, and the scheduler terminates only services overdue long enough.
    suspended_by: Mapped[str | None] = mapped_column(String(16))
    suspended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    limits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Fernet token of a password waiting to be applied upstream; erased once applied.
    pending_password: Mapped[str | None] = mapped_column(Text)
    # occurred_at of the newest event applied; older events are skipped.
    last_event_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    upstream_id: Mapped[str | None] = mapped_column(String(255), index=True)
    observed_status: Mapped[str | None] = mapped_column(String(16))
    observed: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    usage: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    usage_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    converged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    jobs: Mapped[list["Job"]] = relationship(back_populates="service", lazy="raise_on_sql")


class Event(Base):
    __tablename__ = "events"
    # A webhook-id is unique within its billing source: two billing systems may use the same.
    __table_args__ = (UniqueConstraint("source", "webhook_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    source: Mapped[str] = mapped_column(SOURCE_NAME, default=DEFAULT_SOURCE, server_default=DEFAULT_SOURCE)
    webhook_id: Mapped[str] = mapped_column(String(255))
    # Keyed digest of the raw body: tells a redelivery from a reused id
    # without keeping the body (which may carry a password).
    body_digest: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(40), index=True)
    service_id: Mapped[str] = mapped_column(SERVICE_KEY, ForeignKey("services.id"), index=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # indexed: the console counts hooks received per hour and day
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # The validated body with any password replaced by a marker.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    outcome: Mapped[str] = mapped_column(String(16))  # applied | skipped


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_claim", "state", "run_after"),
                      # The claim's walk: runnable jobs in the order they are due, so a claim
                      # reads from the front instead of sorting every queued job.
                      Index("ix_jobs_runnable", "run_after", "created_at",
                            postgresql_where=text(RUNNABLE_SQL), sqlite_where=text(RUNNABLE_SQL)),
                      # At most one running job per service, whatever races the claimers run.
                      Index("uq_jobs_one_running_per_service", "service_id", unique=True,
                            postgresql_where=text(RUNNING_SQL), sqlite_where=text(RUNNING_SQL)))

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    service_id: Mapped[str] = mapped_column(SERVICE_KEY, ForeignKey("services.id"), index=True)
    event_id: Mapped[str | None] = mapped_column(ForeignKey("events.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32), default="converge")
    reason: Mapped[str] = mapped_column(String(64))  # event type, "retry", "reconcile", ...
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    run_after: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Set while the upstream activates asynchronously; the wait is bounded separately.
    pending_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)  # safe for an end customer
    # Fernet token of secrets the upstream showed once (a relay password); erased
    # by the first answer that reveals them, or purged unread after a while.
    reveal_once: Mapped[str | None] = mapped_column(Text)
    reveal_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Its hook was answered 202 (still running): the billing source gets a
    # job.succeeded / job.failed callback when it ends.
    report_outcome: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    # The service as its billing system names it, read with the job where asked
    # for (``undefer``): answers name services by source and billing id.
    source: Mapped[str] = column_property(
        select(Service.source).where(Service.id == service_id).correlate_except(Service).scalar_subquery(),
        deferred=True)
    billing_service_id: Mapped[str] = column_property(
        select(Service.billing_id).where(Service.id == service_id).correlate_except(Service).scalar_subquery(),
        deferred=True)

    service: Mapped[Service] = relationship(back_populates="jobs", lazy="raise_on_sql")
    attempt_log: Mapped[list["JobAttempt"]] = relationship(
        order_by="JobAttempt.number", lazy="raise_on_sql", cascade="all, delete-orphan")


class JobAttempt(Base):
    __tablename__ = "job_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(128))
    # indexed: the console counts attempts and failures per hour and day
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(16))  # succeeded|retrying|failed|pending|lost
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)  # safe for an end customer
    detail: Mapped[str | None] = mapped_column(Text)  # for operators; masked, no secrets


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    scope: Mapped[str] = mapped_column(String(16))  # admin | read
    # Set: the key sees and acts on this billing source's services only. None: an operator key.
    source: Mapped[str | None] = mapped_column(SOURCE_NAME)
    prefix: Mapped[str] = mapped_column(String(16))  # shown to operators to tell keys apart
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class TickClaim(Base):
    """One run of a scheduler tick: whoever inserts (task, slot) first runs it."""
    __tablename__ = "tick_claims"
    __table_args__ = (UniqueConstraint("task", "slot"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task: Mapped[str] = mapped_column(String(64))
    slot: Mapped[int] = mapped_column(BigInteger)  # the tick's time slot: epoch seconds // interval
    worker: Mapped[str] = mapped_column(String(128))
    claimed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(255))


class ReconcileRun(Base):
    """One reconcile pass and its report."""
    __tablename__ = "reconcile_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    trigger: Mapped[str] = mapped_column(String(32))  # schedule | api | cli
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)  # the instant due dates were judged at
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set: the pass judged this billing source's services only (started by its scoped key).
    source: Mapped[str | None] = mapped_column(SOURCE_NAME)
    state: Mapped[str] = mapped_column(String(16))  # running | finished | failed
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Notification(Base):
    """A signed callback to the billing system, delivered with retries."""
    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_due", "state", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    type: Mapped[str] = mapped_column(String(64), index=True)
    # The billing source whose callback URL it goes to, and the service's key.
    source: Mapped[str] = mapped_column(SOURCE_NAME, default=DEFAULT_SOURCE, server_default=DEFAULT_SOURCE,
                                        index=True)
    service_id: Mapped[str | None] = mapped_column(SERVICE_KEY, index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_status: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class SsoToken(Base):
    """A client-area sign-in link (contract section 4): single use, 60 s life.

    Only a keyed hash of the token is stored; redeeming sets ``used_at`` once."""
    __tablename__ = "sso_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    service_id: Mapped[str] = mapped_column(SERVICE_KEY, ForeignKey("services.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ClientLogin(Base):
    """A client-area session, recorded so it can end on the server before its cookie does.

    The cookie holds a random token; only its keyed hash is the id here. A login ends
    (``ended_at``, ``ended_reason``) at sign-out, when the service is signed in to again
    (a new SSO link replaces it), when an operator suspends or terminates the service,
    or after ``expires_at``, which moves with use up to an absolute cap."""
    __tablename__ = "client_logins"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    service_id: Mapped[str] = mapped_column(SERVICE_KEY, ForeignKey("services.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ended_reason: Mapped[str | None] = mapped_column(String(32))


class SsoFailure(Base):
    """One refused client-area sign-in link, counted per client address across every
    process and machine (``client`` is a keyed hash of the address, not the address)."""
    __tablename__ = "sso_failures"
    __table_args__ = (Index("ix_sso_failures_client_at", "client", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class ConsoleSignInFailure(Base):
    """One refused console sign-in (a wrong API key, a spent sign-in link), counted per
    client address across every process (``client`` is a keyed hash of the address)."""
    __tablename__ = "console_sign_in_failures"
    __table_args__ = (Index("ix_console_sign_in_failures_client_at", "client", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class ConsoleLogin(Base):
    """An operator console session (``provisioner.console``), signed in with an API key.

    The cookie holds a random token; only its keyed hash is the id here, so the session
    ends on the server at sign-out, when the key is revoked, or after ``expires_at``
    (moved by use up to an absolute cap), whatever the browser still holds."""
    __tablename__ = "console_logins"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ended_reason: Mapped[str | None] = mapped_column(String(32))


class OperatorAction(Base):
    """What an operator did (console or admin API): who, when, what, to which service or job.

    ``actor`` is the API key's name and ``key_prefix`` its prefix, copied so the record
    still reads after the key is revoked; never the key itself."""
    __tablename__ = "operator_actions"
    __table_args__ = (Index("ix_operator_actions_service_at", "service_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    api_key_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(128))
    key_prefix: Mapped[str] = mapped_column(String(16))
    via: Mapped[str] = mapped_column(String(16))        # console | api
    action: Mapped[str] = mapped_column(String(32))     # converge, suspend, unsuspend, retry, ...
    service_id: Mapped[str | None] = mapped_column(SERVICE_KEY)
    source: Mapped[str | None] = mapped_column(SOURCE_NAME)
    job_id: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)


class ConsoleSsoToken(Base):
    """A single-use console sign-in link (``POST /api/v1/console/sso``): 60 s life, opens a
    console session as the API key that asked. Only a keyed hash of the token is stored."""
    __tablename__ = "console_sso_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    next_path: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
