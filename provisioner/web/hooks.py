"""POST /hooks/v1/events: the billing system's signed lifecycle events."""
from __future__ import annotations

import json
import logging
import re
import time

from flask import Blueprint, jsonify, request

from .. import intake, jobs
from ..metrics import HOOKS
from ..models import Job, JobState
from . import current_runtime

log = logging.getLogger("provisioner.hooks")

bp = Blueprint("hooks", __name__)

MAX_WAIT_SECONDS = 30
# At most 6 digits: a longer number is no wait we could honour (RFC 7240: ignore it).
WAIT_RE = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d{1,6})(?!\d)", re.I)


def requested_wait(prefer: str | None) -> float:
    """Seconds asked for by ``Prefer: wait=N`` (RFC 7240), at most 30."""
    match = WAIT_RE.search(prefer or "")
    return float(min(int(match.group(1)), MAX_WAIT_SECONDS)) if match else 0.0


def job_view(job: Job | intake.JobSnapshot) -> dict:
    error = {"code": job.error_code, "message": job.error_message} if job.error_code else None
    return {"id": job.id, "state": job.state, "attempts": job.attempts, "error": error}


def reveal_secrets(job: Job | intake.JobSnapshot) -> dict | None:
    """One-time secrets of a finished job (a relay password), erased as they are shown."""
    if not job.reveal_once or job.state not in JobState.FINISHED:
        return None
    runtime = current_runtime()
    token = jobs.take_secrets(runtime.db, job.id)
    return json.loads(runtime.box.decrypt(token)) if token else None


def wait_for_job(job_id: str, seconds: float) -> Job:
    """The job, re-read until it finishes or ``seconds`` pass."""
    db = current_runtime().db
    deadline = time.monotonic() + seconds
    delay = 0.05
    while True:
        with db.read() as session:
            job = session.get(Job, job_id)
        if job.state in JobState.FINISHED or time.monotonic() >= deadline:
            return job
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, 0.25)


def _verified_event():
    """(source, raw body, event) of a signed hook request, or the HookError to answer."""
    runtime = current_runtime()
    raw = request.get_data(cache=False)
    source = intake.verify_signature(runtime.sources.all(), raw, request.headers)
    return source, raw, intake.parse_body(raw)


@bp.post("/hooks/v1/events")
def receive_event():
    runtime = current_runtime()
    event_type = "unknown"
    wait = requested_wait(request.headers.get("Prefer"))
    try:
        source, raw, event = _verified_event()
        event_type = event["type"]
        receipt = intake.receive(runtime, source, request.headers["webhook-id"], raw, event,
                                 report_outcome=wait == 0)
    except intake.HookError as exc:
        HOOKS.labels(type=event_type, outcome=exc.code).inc()
        # The webhook-id is not verified yet: quoted and cut short.
        log.info("hook %r refused: %s %s (%s)", request.headers.get("webhook-id", "")[:80], exc.status,
                 exc.code, event_type)
        raise
    # Without a wait the answer shows the job as stored: no second read.
    job = wait_for_job(receipt.job_id, wait) if wait else receipt.job
    # A 202 promises a job.* callback. Without a wait the new job asked for it when it
    # was stored; otherwise ask now, unless it ended meanwhile (then this answer reports it).
    if (job.state not in JobState.FINISHED and not job.report_outcome
            and not jobs.report_outcome_later(runtime.db, job.id)):
        job = wait_for_job(job.id, 0)
    HOOKS.labels(type=event_type, outcome="accepted" if receipt.created else "redelivered").inc()
    log.info("hook %s from %s: %s for service %s%s, job %s %s (event %s%s)", request.headers["webhook-id"],
             receipt.source, event_type, receipt.service_id, "" if receipt.created else ", redelivered",
             job.id, job.state, receipt.event_id, f"; {receipt.note}" if receipt.note else "")
    body = {"event_id": receipt.event_id, "service_id": receipt.service_id, "source": receipt.source,
            "job": job_view(job)}
    secrets = reveal_secrets(job)
    if secrets:
        body["job"]["secrets"] = secrets
    if job.state in JobState.FINISHED:
        return jsonify(body), 200
    return jsonify(body), 202, {"Location": f"/api/v1/jobs/{job.id}"}


@bp.post("/hooks/v1/events/validate")
def validate_event():
    """What /hooks/v1/events would answer for this body, without storing or queuing
    anything or using up the webhook-id (a checkout can refuse a downgrade that does
    not fit)."""
    runtime = current_runtime()
    source, raw, event = _verified_event()
    intake.validate(runtime, source, request.headers["webhook-id"], raw, event)
    return jsonify({"valid": True, "type": event["type"], "service_id": event["service"]["id"],
                    "source": source.name}), 200
