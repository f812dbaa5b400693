"""Prometheus metrics shared by the web app, the worker and the providers.

Counters live in the process that increments them; job-state gauges are read
from the database at scrape time (see ``provisioner.web.health``) so they are
right across every process and machine.
"""
import time

from prometheus_client import Counter, Histogram

#: when this process began counting (the console's per-process call figures start here)
STARTED = time.monotonic()

HOOKS = Counter(
    "provisioner_hooks_total", "Billing hooks received, by event type and outcome",
    ["type", "outcome"],
)
JOBS_FINISHED = Counter(
    "provisioner_job_attempts_total", "Converge job attempts, by outcome",
    ["outcome"],
)
JOB_DURATION = Histogram(
    "provisioner_job_attempt_seconds", "Duration of one converge job attempt",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
UPSTREAM_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
UPSTREAM_CALLS = Counter(
    "provisioner_upstream_calls_total", "Calls to upstream APIs, by provider, action and outcome",
    ["provider", "action", "outcome"],
)
UPSTREAM_DURATION = Histogram(
    "provisioner_upstream_call_seconds", "Duration of upstream API calls",
    ["provider", "action"],
    buckets=UPSTREAM_BUCKETS,
)
