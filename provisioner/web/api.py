"""Admin API (contract section 3). Being written; minimal job detail for now."""
from __future__ import annotations

from flask import Blueprint, abort, jsonify

from ..models import Job
from . import current_runtime
from .hooks import job_view

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.get("/jobs/<job_id>")
def job_detail(job_id: str):
    with current_runtime().db.read() as session:
        job = session.get(Job, job_id)
    if job is None:
        abort(404)
    return jsonify(job_view(job))
