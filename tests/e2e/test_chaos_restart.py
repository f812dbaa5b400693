"""Chaos on PostgreSQL, with the database itself restarted in the middle (issue 12).

Two ``serve`` and two ``worker`` processes on a PostgreSQL cluster of the test's
own (``tests/e2e/pgcluster.py``; the machine's server is never touched), and every
upstream simulator (sandbox, mailbox.org, ResellerClub, Qboxmail, PolarisMail; a fifth
of the services on each), each answering with errors, malformed bodies, timeouts,
latency and bursts of 429.
A billing system (``tests/e2e/billing_sender.py``) sends whole
lifecycles for many services: 20 % of the events twice, 10 % of the services with
two events swapped. Meanwhile one worker is SIGKILLed every few seconds and
started again, and PostgreSQL is stopped (immediately, like a crash) and started
once, while hooks keep coming.

At the end every job is final and none failed, every service's upstream account is
what its lifecycle means (``tests/e2e/lifecycles.py`` works that out on its own),
no upstream account and no event exists twice, every hook answered 2xx is stored,
and every hook answered while the database was down got a 503 (or no answer),
never a 2xx. A JSON report line says what happened and how long it took; durations
are reported, never asserted beyond generous deadlines.

The CI-sized run (300 services) runs in every suite run, whatever database the
suite uses; the big one (5,000) is marked ``chaos`` and runs with
``PROVISIONER_CHAOS=1``.
"""
from __future__ import annotations

import json
import os
import time
from collections import Counter

import pytest

from provisioner.migrate import upgrade
from tests.e2e.billing_sender import BillingSender
from tests.e2e.disturbances import DatabaseRestart, FaultBursts, WorkerKiller
from tests.e2e.fleet import Fleet
from tests.e2e.lifecycles import (MAILBOXORG, MODOBOA, POLARISMAIL, QBOXMAIL, RESELLERCLUB, SANDBOX, Lifecycle,
                                  expected_state, make_lifecycles, plan_waves)
from tests.e2e.pgcluster import PgCluster
from tests.e2e.procs import FINISHED, products_dir_with_timeout, wait_until

pytestmark = pytest.mark.e2e

FAULTS = {"error_rate": 0.15, "malformed_rate": 0.05, "timeout_rate": 0.03, "timeout_s": 1.5,
          "latency_ms": 10}
BURST = {"rate_limit_per_s": 4}       # 429 with Retry-After for everything above 4 calls/s
UPSTREAM_TIMEOUT = 1                  # seconds; a "timed out" answer comes after 1.5 s
PRODUCTS = (SANDBOX, MAILBOXORG, RESELLERCLUB, QBOXMAIL, POLARISMAIL, MODOBOA)   # in turn: one service in six each
#: every upstream but the sandbox (the Stack's own), with a Qboxmail domain's ownership
#: record published at once (as the real sandbox's "skip ownership")
SIMULATORS = {"mailboxorg": [], "resellerclub": [], "qboxmail": ["--verification-delay", "0"],
              "polarismail": [], "modoboa": []}
RESTART_AT = 0.4                      # share of events accepted when PostgreSQL is restarted
DOWN_FOR = 3.0                        # seconds PostgreSQL stays down
LEASE_SECONDS = 3


# --- fixtures ---------------------------------------------------------------------------
@pytest.fixture
def chaos_fleet(request, tmp_path, pg_cluster):
    """Every simulator, two ``serve`` (2 gunicorn workers each) and two workers on a fresh,
    migrated database of the local cluster."""
    url = pg_cluster.create_database("chaos")
    upgrade(url)
    products = products_dir_with_timeout(tmp_path / "product_configs", UPSTREAM_TIMEOUT)
    fleet = Fleet(tmp_path / "fleet", url, servers=2, simulators=SIMULATORS, lease_seconds=LEASE_SECONDS,
                  products_dir=products, extra_env={"PROVISIONER_JOB_MAX_ATTEMPTS": "100"})
    try:
        yield fleet.start_fleet(workers=2, worker_concurrency=6)
    finally:
        report = getattr(request.node, "_e2e_report_call", None)
        if report is not None and report.failed:
            print(f"\n===== process logs of {request.node.nodeid} =====\n{fleet.log_tails()}"
                  f"\n----- PostgreSQL ({pg_cluster.log_path}) -----\n{pg_cluster.log_tail()}")
        fleet.close()


# --- the run ------------------------------------------------------------------------------
def _raise_disturbance_errors(*disturbances) -> None:
    for disturbance in disturbances:
        if disturbance.error is not None:
            raise AssertionError(f"{disturbance.name} failed: {disturbance.error!r}") from disturbance.error


def _wait_for_final_jobs(fleet: Fleet, *, timeout: float, alive) -> dict[str, int]:
    """Job counts by state once every job is final; on timeout, which are not and why.

    Every stored event has its job (one transaction); whether every event sent was
    stored is checked afterwards."""
    def final():
        counts = fleet.job_counts()
        return counts if set(counts) <= set(FINISHED) else None

    try:
        return wait_until(final, timeout=timeout, interval=1.0, what="every job to finish", alive=alive)
    except AssertionError as exc:
        stuck = fleet.query("SELECT id, service_id, reason, state, attempts, error_code, run_after, "
                            "lease_owner, lease_expires_at FROM jobs WHERE state NOT IN ('succeeded', "
                            "'failed', 'skipped') ORDER BY run_after LIMIT 10")
        raise AssertionError(f"{exc}\njobs: {fleet.job_counts()}\nnot final: {stuck}") from None


def run_chaos(fleet: Fleet, cluster: PgCluster, services: int, *, seed: int, deadline: float) -> dict:
    lifecycles = make_lifecycles(services, seed=seed, products=PRODUCTS)
    waves = plan_waves(lifecycles, seed=seed)
    expected = {lc.service_id: expected_state(lc.delivery) for lc in lifecycles}
    events = sum(len(lc.events) for lc in lifecycles)

    faults = {name: FaultBursts(url, {**FAULTS, "seed": seed + n}, BURST, name=f"faults-{name}")
              for n, (name, url) in enumerate(fleet.sim_urls.items())}
    sender = BillingSender(fleet)
    killer = WorkerKiller(fleet, fleet.workers[1], seed=seed)
    restart = DatabaseRestart(cluster, lambda: sender.accepted_count() >= RESTART_AT * events,
                              down_for=DOWN_FOR)
    disturbances = (*faults.values(), killer, restart)

    def alive() -> None:
        fleet.check_alive()
        _raise_disturbance_errors(*disturbances)

    started = time.monotonic()
    for disturbance in disturbances:
        disturbance.start()
    try:
        for wave in waves:
            sender.deliver_all(wave)
            alive()
        sent = time.monotonic()
        assert restart.done.wait(120), "PostgreSQL was never restarted"
        counts = _wait_for_final_jobs(fleet, timeout=deadline, alive=alive)
        converged = time.monotonic()
    finally:
        for disturbance in disturbances:
            disturbance.stop()
        sender.close()
    alive()
    fleet.check_alive()      # the servers and the worker never killed lived through it all
    return _verify(fleet, lifecycles, expected, sender, restart, killer, faults, counts,
                   duplicates=sum(d.duplicate for wave in waves for d in wave),
                   started=started, sent=sent, converged=converged)


# --- the checks ---------------------------------------------------------------------------
def _outage_answers(sender: BillingSender, restart: DatabaseRestart):
    """Answers to tries sent after the server was gone and answered before it was
    asked to start again: the database was down for the whole of each."""
    return [a for a in sender.answers if a.sent >= restart.down_at and a.answered <= restart.starting_at]


def _event_problems(fleet: Fleet, lifecycles: list[Lifecycle], expected, sender: BillingSender):
    rows = fleet.query("SELECT id, webhook_id, outcome, service_id FROM events")
    stored = Counter(row["webhook_id"] for row in rows)
    by_webhook = {row["webhook_id"]: row for row in rows}
    sent_ids = {event.webhook_id for lc in lifecycles for event in lc.events}
    lost = sorted(w for w in sender.accepted if stored[w] == 0)
    duplicated = sorted(w for w, n in stored.items() if n > 1)
    problems = [f"accepted but not stored: {lost[:10]}"] if lost else []
    if duplicated:
        problems.append(f"stored more than once: {duplicated[:10]}")
    if set(stored) != sent_ids:
        unknown, missing = sorted(set(stored) - sent_ids), sorted(sent_ids - set(stored))
        problems.append(f"events stored {len(stored)} != sent {len(sent_ids)}: "
                        f"unknown {unknown[:5]}, never stored {missing[:5]}")
    never_accepted = sorted(sent_ids - set(sender.accepted))
    if never_accepted:
        problems.append(f"never accepted: {never_accepted[:10]}")
    for webhook_id, answers in sender.accepted.items():
        ids = {a.event_id for a in answers}
        if webhook_id in by_webhook and ids != {by_webhook[webhook_id]["id"]}:
            problems.append(f"{webhook_id}: answered event ids {ids}, stored {by_webhook[webhook_id]['id']}")
    skipped = {row["webhook_id"] for row in rows if row["outcome"] == "skipped"}
    stale = set().union(*(e.skipped for e in expected.values()))
    if skipped != stale:
        problems.append(f"skipped as stale {sorted(skipped)[:10]}, expected {sorted(stale)[:10]}")
    return problems, len(lost), len(duplicated), len(skipped)


def _upstream_problems(fleet: Fleet, lifecycles: list[Lifecycle], expected):
    """Each service's upstream account against what its lifecycle means, on every upstream."""
    problems, twice = [], 0
    services = {row["id"]: row for row in fleet.query("SELECT id, desired_status, upstream_id FROM services")}
    for product in dict.fromkeys(PRODUCTS):
        accounts = fleet.upstream_accounts(product.upstream)
        owners = Counter(product.owner(a) for a in accounts)
        doubled = sorted(str(o) for o, n in owners.items() if n > 1)
        if doubled:
            twice += len(doubled)
            problems.append(f"{product.upstream}: accounts twice for {doubled[:10]}")
        live = {product.owner(a): a for a in accounts if a["status"] != "deleted"}
        for lc in (lc for lc in lifecycles if lc.product is product):
            problems += _service_problems(lc, expected[lc.service_id], services.get(lc.service_id),
                                          live.get(lc.service_id))
    return problems, twice


def _service_problems(lc: Lifecycle, want, row: dict | None, account: dict | None) -> list[str]:
    sid, where = lc.service_id, lc.product.upstream
    problems = []
    if row is None or row["desired_status"] != want.status:
        problems.append(f"{sid}: desired {row and row['desired_status']}, billing means {want.status}")
    if want.status == "terminated":
        if account is not None:
            problems.append(f"{sid}: terminated but {where} {account['id']} is {account['status']}")
        return problems
    if account is None:
        return problems + [f"{sid}: no live {where} account (expected {want.status})"]
    have = {"status": account["status"], "limits": account["limits"], "domain": account["domain"]}
    need = {"status": want.status, "limits": lc.product.limits(want.plan), "domain": lc.domain}
    if lc.product.terms:
        have["paid_until"] = account["native"].get("paid_until")
        need["paid_until"] = want.due.isoformat()
    if have != need:
        problems.append(f"{sid}: {where} has {have}, expected {need}")
    if row is not None and row["upstream_id"] != account["id"]:
        problems.append(f"{sid}: service holds {row['upstream_id']}, its {where} account is {account['id']}")
    return problems


def _seconds_to_first_job_after(fleet: Fleet, restart: DatabaseRestart) -> float | None:
    first = fleet.scalar("SELECT MIN(finished_at) FROM job_attempts WHERE outcome = 'succeeded' "
                         "AND finished_at >= :up", up=restart.up_wall)
    return round((first - restart.up_wall).total_seconds(), 2) if first is not None else None


def _verify(fleet, lifecycles, expected, sender, restart, killer, faults, counts, *, duplicates: int,
            started: float, sent: float, converged: float) -> dict:
    outage = _outage_answers(sender, restart)
    after = [a.answered for a in sender.answers if a.accepted and a.sent >= restart.up_at]
    event_problems, lost, duplicated_events, skipped = _event_problems(fleet, lifecycles, expected, sender)
    upstream_problems, twice = _upstream_problems(fleet, lifecycles, expected)
    failed = fleet.query("SELECT id, service_id, reason, attempts, error_code, error_message FROM jobs "
                         "WHERE state = 'failed'")
    report = {
        "services": len(lifecycles),
        "events": sum(len(lc.events) for lc in lifecycles),
        "deliveries": sum(len(lc.events) for lc in lifecycles) + duplicates,
        "duplicates": duplicates,
        "reorders": sum(lc.reordered for lc in lifecycles),
        "skipped_stale": skipped,
        "tries": len(sender.answers),
        "kills": killer.kills,
        "fault_bursts": sum(f.bursts for f in faults.values()),
        "faults": {name: f.injected() for name, f in faults.items()},
        "upstream_calls": {name: fleet.upstream_calls(name) for name in faults},
        "job_attempts": fleet.count("job_attempts"),
        "jobs": counts,
        "db_outage_s": round(restart.outage_s, 2),
        "answers_while_db_down": dict(Counter("no answer" if a.status is None else f"{a.status} {a.code}"
                                              for a in outage)),
        "send_s": round(sent - started, 1),
        "converge_s": round(converged - started, 1),
        "recover_s": round(min(after) - restart.up_at, 2) if after else None,
        "first_job_after_restart_s": _seconds_to_first_job_after(fleet, restart),
        "lost": lost,
        "duplicated": duplicated_events + twice,
    }
    print(f"\nchaos restart report: {json.dumps(report)}")

    assert not sender.rejected, f"hooks refused: {sender.rejected[:10]}"
    assert not sender.gave_up, f"hooks never accepted: {sender.gave_up[:10]}"
    assert outage, "no hook was answered while PostgreSQL was down"
    false_2xx = [a for a in outage if a.status is not None and a.status < 500]
    assert not false_2xx, f"answered while the database was down: {false_2xx[:10]}"
    unclear = [a for a in outage if a.status is not None
               and (a.status != 503 or a.code != "database_unavailable" or not a.retry_after)]
    assert not unclear, f"a 5xx other than 503 database_unavailable with Retry-After: {unclear[:10]}"
    assert not failed, f"{len(failed)} job(s) failed: {failed[:10]}"
    assert not event_problems, "\n".join(event_problems)
    assert not upstream_problems, f"{len(upstream_problems)} problem(s):\n" + "\n".join(upstream_problems[:30])
    assert report["lost"] == 0 and report["duplicated"] == 0
    assert killer.kills >= 1 and all(f.bursts >= 1 for f in faults.values())
    return report


# --- the tests ----------------------------------------------------------------------------
@pytest.mark.timeout(600)
def test_chaos_300_services_survive_a_postgresql_restart(chaos_fleet, pg_cluster):
    run_chaos(chaos_fleet, pg_cluster, 300, seed=20261202, deadline=360)


@pytest.mark.chaos
@pytest.mark.timeout(7200)
@pytest.mark.skipif(os.environ.get("PROVISIONER_CHAOS") != "1",
                    reason="long chaos run (5000 services, PostgreSQL restart): set PROVISIONER_CHAOS=1")
def test_chaos_5000_services_survive_a_postgresql_restart(chaos_fleet, pg_cluster):
    run_chaos(chaos_fleet, pg_cluster, 5000, seed=5000, deadline=5400)
