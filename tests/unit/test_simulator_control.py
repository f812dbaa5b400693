"""The shared simulator framework, exercised through a toy PolarisMail-like
simulator: form-encoded ``action=`` calls and a ``returncode: 0`` error shape,
to prove the framework does not assume the sandbox's REST conventions."""
from __future__ import annotations

import time
from typing import Any

import pytest
from flask import Flask, Response, jsonify, request

from provisioner.simulators.control import (
    ControlError, Faults, SimulatorBase, UnknownAccount, install, parse_faults,
)
from provisioner.simulators.registry import SIMULATORS, create_simulator_app, options_from_env


class FormSim(SimulatorBase):
    name = "formsim"

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.domains: dict[str, dict[str, Any]] = {}

    def action_name(self, req) -> str:
        return req.form.get("action") or "unknown"

    def error_response(self, status: int, message: str, code: str) -> Response:
        response = jsonify({"returncode": 0, "returndata": message})
        response.status_code = status
        return response

    def malformed_response(self) -> Response:
        return Response("<html><body>Fatal error", status=200, mimetype="text/html")

    def state(self) -> dict[str, Any]:
        return {"accounts": [
            {"id": d, "domain": d, "status": rec["status"], "limits": {}, "mailboxes": [],
             "aliases": [], "lists": [], "native": rec}
            for d, rec in self.domains.items()]}

    def reset_state(self) -> None:
        self.domains.clear()

    def mutate(self, account_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        if account_id not in self.domains:
            raise UnknownAccount(account_id)
        if "limits" in changes:
            raise ControlError("limits: not supported by formsim", "limits")
        self.domains[account_id]["status"] = changes["status"]
        return self.state()["accounts"][0]


def make_app(seed: int | None = 1) -> tuple[Flask, FormSim]:
    app = Flask(__name__)
    sim = FormSim(seed=seed)
    install(app, sim)

    @app.post("/admin/json.php")
    def api():
        with sim.lock:
            if request.form.get("action") == "addDomain":
                sim.domains[request.form["newdomain"]] = {"status": "active"}
            return jsonify({"returncode": 1, "returndata": "ok"})

    return app, sim


@pytest.fixture
def client():
    app, _ = make_app()
    return app.test_client()


def add_domain(client, name: str = "example.com"):
    return client.post("/admin/json.php", data={"action": "addDomain", "newdomain": name})


def test_calls_are_counted_by_the_providers_action_names(client):
    add_domain(client, "a.com")
    add_domain(client, "b.com")
    client.post("/admin/json.php", data={"action": "getAllDomains"})
    assert client.get("/_sim/calls").json == {
        "calls": {"addDomain": 2, "getAllDomains": 1}, "total": 3}


def test_error_fault_uses_the_providers_shape_and_processes_nothing(client):
    assert client.post("/_sim/faults", json={"error_rate": 1.0}).status_code == 200
    r = add_domain(client)
    assert r.status_code == 500
    assert r.json["returncode"] == 0 and r.json["returndata"]
    assert client.get("/_sim/state").json == {"accounts": []}
    assert client.get("/_sim/calls").json["calls"] == {"addDomain": 1}


def test_malformed_fault_uses_the_simulators_own_body(client):
    client.post("/_sim/faults", json={"malformed_rate": 1})
    r = add_domain(client)
    assert r.status_code == 200 and r.data.startswith(b"<html>")
    assert client.get("/_sim/state").json == {"accounts": []}


def test_rate_limit_answers_429_with_retry_after_in_the_providers_shape(client):
    client.post("/_sim/faults", json={"rate_limit_per_s": 2})
    statuses = [add_domain(client, f"d{i}.com").status_code for i in range(3)]
    assert statuses == [200, 200, 429]
    r = add_domain(client, "late.com")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert r.json["returncode"] == 0
    assert len(client.get("/_sim/state").json["accounts"]) == 2


def test_timeout_fault_applies_the_call_then_holds_the_answer(client):
    client.post("/_sim/faults", json={"timeout_rate": 1, "timeout_s": 0.05})
    started = time.monotonic()
    r = add_domain(client)
    assert time.monotonic() - started >= 0.05
    assert r.status_code == 200
    assert [a["id"] for a in client.get("/_sim/state").json["accounts"]] == ["example.com"]


def test_rates_between_0_and_1_are_drawn_from_the_seeded_generator():
    def outcomes(seed: int) -> list[int]:
        app, _ = make_app(seed=None)
        c = app.test_client()
        c.post("/_sim/faults", json={"error_rate": 0.5, "seed": seed})
        return [add_domain(c, f"d{i}.com").status_code for i in range(20)]

    first = outcomes(7)
    assert first == outcomes(7)
    assert set(first) == {200, 500}


def test_faults_post_replaces_only_the_given_keys_and_reset_clears(client):
    client.post("/_sim/faults", json={"error_rate": 0.25, "latency_ms": 5})
    faults = client.post("/_sim/faults", json={"error_rate": 0.5}).json["faults"]
    assert faults["error_rate"] == 0.5 and faults["latency_ms"] == 5
    faults = client.post("/_sim/faults", json={"reset": True, "malformed_rate": 0.1}).json["faults"]
    assert faults == {**Faults().as_dict(), "malformed_rate": 0.1}
    assert client.get("/_sim/faults").json["faults"] == faults


@pytest.mark.parametrize("body, field", [
    ({"error_rate": 1.5}, "error_rate"),
    ({"timeout_rate": -0.1}, "timeout_rate"),
    ({"latency_ms": -1}, "latency_ms"),
    ({"rate_limit_per_s": "10"}, "rate_limit_per_s"),
    ({"malformed_rate": True}, "malformed_rate"),
    ({"explode": 1}, "explode"),
    ({"seed": "x"}, "seed"),
    ([1, 2], "body"),
])
def test_bad_faults_are_400_naming_the_field(client, body, field):
    r = client.post("/_sim/faults", json=body)
    assert r.status_code == 400
    assert field in r.json["error"]["fields"]
    assert client.get("/_sim/faults").json["faults"] == Faults().as_dict()


def test_parse_faults_rejects_non_finite_numbers():
    with pytest.raises(ControlError) as exc:
        parse_faults({"latency_ms": float("inf")})
    assert exc.value.field == "latency_ms"


def test_mutate_validation_and_unknown_account(client):
    add_domain(client)
    assert client.post("/_sim/mutate", json={"account_id": "nope.com", "status": "suspended"}).status_code == 404
    r = client.post("/_sim/mutate", json={"account_id": "example.com", "status": "frozen"})
    assert r.status_code == 400 and "status" in r.json["error"]["fields"]
    r = client.post("/_sim/mutate", json={"account_id": "example.com", "colour": "red"})
    assert r.status_code == 400 and "colour" in r.json["error"]["fields"]
    r = client.post("/_sim/mutate", json={"status": "suspended"})
    assert r.status_code == 400 and "account_id" in r.json["error"]["fields"]
    r = client.post("/_sim/mutate", json={"account_id": "example.com", "limits": {"x": 1}})
    assert r.status_code == 400 and r.json["error"]["fields"] == {"limits": "not supported by formsim"}
    r = client.post("/_sim/mutate", json={"account_id": "example.com", "status": "suspended"})
    assert r.status_code == 200 and r.json["account"]["status"] == "suspended"


def test_reset_clears_state_calls_and_faults(client):
    add_domain(client)
    client.post("/_sim/faults", json={"latency_ms": 1})
    add_domain(client, "b.com")
    assert client.get("/_sim/faults").json["injected"]["latency"] == 1
    assert client.post("/_sim/reset").json == {"ok": True}
    assert client.get("/_sim/state").json == {"accounts": []}
    assert client.get("/_sim/calls").json == {"calls": {}, "total": 0}
    assert client.get("/_sim/faults").json["faults"]["latency_ms"] == 0
    assert set(client.get("/_sim/faults").json["injected"].values()) == {0}


def test_faults_that_fire_are_counted_by_kind(client):
    nothing = {"latency": 0, "rate_limited": 0, "error": 0, "malformed": 0, "timeout": 0}
    assert client.get("/_sim/faults").json["injected"] == nothing
    client.post("/_sim/faults", json={"error_rate": 1})
    add_domain(client, "a.com")
    client.post("/_sim/faults", json={"reset": True, "malformed_rate": 1, "latency_ms": 1})
    add_domain(client, "b.com")
    client.post("/_sim/faults", json={"reset": True, "rate_limit_per_s": 1})
    add_domain(client, "c.com")
    add_domain(client, "d.com")                     # the bucket is empty: 429
    client.post("/_sim/faults", json={"reset": True, "timeout_rate": 1, "timeout_s": 0.01})
    add_domain(client, "e.com")
    client.get("/_sim/state")                       # control calls are never faulted
    # Resetting the faults keeps the record of those that fired.
    assert client.get("/_sim/faults").json["injected"] == {
        "latency": 1, "rate_limited": 1, "error": 1, "malformed": 1, "timeout": 1}


def test_control_api_is_exempt_from_faults_and_counting(client):
    client.post("/_sim/faults", json={"error_rate": 1, "rate_limit_per_s": 1})
    for _ in range(3):
        assert client.get("/_sim/state").status_code == 200
    assert client.get("/_sim/calls").json["total"] == 0


def test_unknown_paths_answer_in_the_providers_shape(client):
    r = client.get("/nowhere")
    assert r.status_code == 404 and r.json["returncode"] == 0
    r = client.get("/_sim/nowhere")
    assert r.status_code == 404 and r.json["error"]["code"] == "not_found"


def test_registry_names_the_known_simulators():
    with pytest.raises(ValueError, match="sandbox"):
        create_simulator_app("nope")
    assert "sandbox" in SIMULATORS
    app = create_simulator_app("sandbox", activation_delay=1)
    assert app.extensions["simulator"].activation_delay == 1


def test_options_from_env():
    assert options_from_env("sandbox", {"SANDBOX_API_KEY": "k"}) == {"api_key": "k"}
    assert options_from_env("sandbox", {"SANDBOX_API_KEY": ""}) == {}
