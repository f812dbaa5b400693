"""Schemathesis against the OpenAPI document, in-process on the Flask app: every operation,
generated valid and invalid requests (examples, coverage and fuzzing phases), no 5xx, and
every answer as the document says (status code, content type, response schema, headers).

Every operation is a test of its own, on the app of ``tests/conftest.py`` (SQLite, or
PostgreSQL with PROVISIONER_TEST_DATABASE_URL) with an admin API key and three services
created by signed hooks, so path parameters now and then name real objects. The CI
variant runs with a fixed seed and makes at least ``CI_MIN_REQUESTS`` requests in all;
the long one is marked ``fuzz`` and runs only with ``PROVISIONER_FUZZ=1``.
"""
from __future__ import annotations

import collections
import json
import time

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
import pytest
import schemathesis
from schemathesis.core.parameters import ParameterLocation

from provisioner.devsetup import DEV_SIMULATORS
from provisioner.web.openapi import build_spec
from tests.fuzz.conftest import LONG_RUNS, long_run

SEED = 20261121
#: examples per operation (the fuzzing phase), and the least number of requests a run makes
CI_EXAMPLES, CI_MIN_REQUESTS = 50, 1000
LONG_EXAMPLES, LONG_MIN_REQUESTS = 500, 10000

CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "response_headers_conformance", "negative_data_rejection",
          "positive_data_acceptance", "missing_required_header", "unsupported_method",
          "allow_header_conformance")

#: the document as /api/openapi.json serves it (test_the_document_is_the_served_one checks it)
DOCUMENT = json.loads(json.dumps(build_spec()))


def _schema(examples: int):
    config = schemathesis.Config.from_dict({
        "seed": SEED,
        # The admin key goes with every request (below): no generated Authorization headers.
        "generation": {"mode": "all", "max-examples": examples, "deterministic": not LONG_RUNS,
                       "database": "none", "with-security-parameters": False},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS},
                   # Schema-valid is not always applicable: `confirm` must repeat the service id (422).
                   "positive_data_acceptance": {"enabled": True,
                                                "expected-statuses": ["2xx", "401", "403", "404", "409", "422"]}},
    })
    return schemathesis.openapi.from_dict(DOCUMENT, config=config)


class Tally:
    """Requests made per operation, over the whole module."""

    def __init__(self, operations: int) -> None:
        self.operations = operations
        self.by_operation: collections.Counter[str] = collections.Counter()
        self.by_status: collections.Counter[int] = collections.Counter()
        self.started = time.monotonic()

    @property
    def total(self) -> int:
        return sum(self.by_operation.values())


def _tally(minimum: int):
    tally = Tally(len(list(_schema(1).get_all_operations())))
    yield tally
    if len(tally.by_operation) == tally.operations:   # not a -k selection of some operations
        print(f"\nschemathesis: {tally.total} requests over {tally.operations} operations "
              f"in {time.monotonic() - tally.started:.1f} s; answers by status: "
              + ", ".join(f"{status}: {n}" for status, n in sorted(tally.by_status.items())))
        assert tally.total >= minimum, dict(tally.by_operation)


@pytest.fixture(scope="module")
def ci_tally():
    yield from _tally(CI_MIN_REQUESTS)


@pytest.fixture(scope="module")
def long_tally():
    yield from _tally(LONG_MIN_REQUESTS)


def _known(seeded) -> dict[str, list[str]]:
    return {"service_id": seeded.service_ids + [f"default:{seeded.service_ids[0]}"],
            "job_id": seeded.job_ids, "event_id": seeded.event_ids, "name": sorted(DEV_SIMULATORS)}


def _call(case, data, app, seeded, tally):
    # Now and then a real object, so answers other than 404 are checked as well.
    known = _known(seeded)
    if isinstance(case.path_parameters, dict) and not (case.meta and case.meta.is_negative_at(ParameterLocation.PATH)):
        for name in list(case.path_parameters):
            if name in known and data.draw(st.booleans(), label=f"real {name}"):
                case.path_parameters[name] = data.draw(st.sampled_from(known[name]), label=name)
    tally.by_operation[case.operation.label] += 1
    response = case.call(app=app, headers={"Authorization": f"Bearer {seeded.admin_key}"})
    tally.by_status[response.status_code] += 1
    case.validate_response(response, headers={"Authorization": f"Bearer {seeded.admin_key}"})


ci = _schema(CI_EXAMPLES)
long = _schema(LONG_EXAMPLES)


def test_the_document_is_the_served_one(client):
    assert client.get("/api/openapi.json").get_json() == DOCUMENT


#: one app per operation, shared by its examples (that is the point: state builds up)
SHARED_FIXTURES = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                  HealthCheck.filter_too_much])


@ci.given(data=st.data())
@ci.parametrize()
@SHARED_FIXTURES
def test_every_operation_answers_as_documented(case, data, app, seeded, ci_tally):
    _call(case, data, app, seeded, ci_tally)


@pytest.mark.fuzz
@long_run
@long.given(data=st.data())
@long.parametrize()
@SHARED_FIXTURES
def test_every_operation_answers_as_documented_long(case, data, app, seeded, long_tally):
    _call(case, data, app, seeded, long_tally)
