"""Health, readiness and Prometheus metrics."""
from __future__ import annotations

from provisioner import create_app
from provisioner.db import Database
from tests.helpers import event_body


def test_healthz_and_readyz(client):
    assert client.get("/healthz").get_json() == {"ok": True}
    assert client.get("/readyz").get_json() == {"ok": True}


def test_readyz_is_503_when_the_database_is_unreachable(runtime, tmp_path):
    runtime.db = Database(f"sqlite:///{tmp_path}/missing/dir/db.sqlite3")
    r = create_app(runtime=runtime).test_client().get("/readyz")
    assert r.status_code == 503
    assert r.get_json()["error"]["code"] == "database_unavailable"


def _sample(text: str, name: str, **labels) -> float:
    """The value of one series in Prometheus text format (0 if absent)."""
    from prometheus_client.parser import text_string_to_metric_families
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def test_metrics_count_hooks_jobs_and_upstream_calls(client, signer, worker):
    before = client.get("/metrics").get_data(as_text=True)
    signer.post(client, event_body("service.create"))
    signer.post(client, event_body("service.create", product_id="999"))
    worker.drain()
    after = client.get("/metrics").get_data(as_text=True)

    def grew(name, **labels):
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    assert grew("provisioner_hooks_total", type="service.create", outcome="accepted") == 1
    assert grew("provisioner_hooks_total", type="service.create", outcome="unknown_product") == 1
    assert _sample(after, "provisioner_jobs", state="succeeded") == 1
    assert _sample(after, "provisioner_jobs", state="queued") == 0
    assert grew("provisioner_job_attempts_total", outcome="succeeded") == 1
    assert grew("provisioner_job_attempt_seconds_count") == 1
    assert grew("provisioner_upstream_calls_total", provider="sandbox", action="create_account", outcome="ok") == 1
