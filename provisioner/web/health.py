"""Liveness, readiness and Prometheus metrics."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select, text

from ..models import Job, JobState
from . import current_runtime

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"ok": True})


@bp.get("/readyz")
def readyz():
    try:
        with current_runtime().db.read() as session:
            session.execute(text("SELECT 1"))
    except Exception:
        return jsonify({"ok": False, "error": {"code": "database_unavailable",
                                               "message": "The database cannot be reached."}}), 503
    return jsonify({"ok": True})


class JobStateCollector:
    """Jobs by state, read from the database at scrape time (right across processes)."""

    def __init__(self, runtime):
        self.runtime = runtime

    def collect(self):
        gauge = GaugeMetricFamily("provisioner_jobs", "Converge jobs by state", labels=["state"])
        with self.runtime.db.read() as session:
            counts = dict(session.execute(select(Job.state, func.count()).group_by(Job.state)).all())
        for state in JobState.ALL:
            gauge.add_metric([state], counts.get(state, 0))
        yield gauge


@bp.get("/metrics")
def metrics():
    from prometheus_client import CollectorRegistry
    registry = CollectorRegistry()
    registry.register(JobStateCollector(current_runtime()))
    payload = generate_latest(REGISTRY) + generate_latest(registry)
    return Response(payload, mimetype=CONTENT_TYPE_LATEST)
