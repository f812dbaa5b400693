"""End-to-end fixtures: real ``provisioner`` processes on loopback.

``make_stack(**options)`` starts ``provisioner simulate sandbox``, ``provisioner
serve --workers 2`` and ``provisioner worker --concurrency 2`` (see
:class:`tests.e2e.procs.Stack` for the options) on the ``database_url``
fixture's database, so these tests run on SQLite and, with
``PROVISIONER_TEST_DATABASE_URL``, on PostgreSQL. ``stack`` is one with the
defaults. Every process is stopped at teardown (SIGTERM, then SIGKILL); when
the test failed, the tail of each process's log is printed. ``pg_cluster`` is a
PostgreSQL cluster of the test's own (tests/e2e/pgcluster.py), for tests that
restart the database.
"""
from __future__ import annotations

import os

import pytest

from tests.e2e.pgcluster import PgCluster, PgUnavailable
from tests.e2e.procs import Stack


@pytest.fixture
def pg_cluster():
    """A started PostgreSQL cluster of this test's own, removed afterwards whatever happened.
    Without the server binaries the test skips, except under CI=true (a failure)."""
    try:
        cluster = PgCluster()
    except PgUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and a PostgreSQL cluster of the test's own cannot run: {exc}", pytrace=False)
        pytest.skip(f"needs the PostgreSQL server binaries: {exc}")
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.cleanup()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"_e2e_report_{report.when}", report)


def _failed(item) -> bool:
    return any(getattr(getattr(item, f"_e2e_report_{when}", None), "failed", False)
               for when in ("setup", "call"))


@pytest.fixture
def make_stack(request, tmp_path, database_url):
    stacks: list[Stack] = []

    def start(*, worker_concurrency: int | None = 2, **options) -> Stack:
        stack = Stack(tmp_path / f"stack{len(stacks) + 1}", database_url, **options)
        stacks.append(stack)
        return stack.start(worker_concurrency=worker_concurrency)

    yield start
    failed = _failed(request.node)
    for stack in stacks:
        if failed:
            print(f"\n===== process logs of {request.node.nodeid} =====\n{stack.log_tails()}")
        stack.close()


@pytest.fixture
def stack(make_stack) -> Stack:
    return make_stack()
