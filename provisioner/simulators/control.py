"""What every upstream simulator shares: the ``/_sim/`` control API and fault injection.

A simulator subclasses :class:`SimulatorBase`, implements the provider-specific
hooks (how an API action is named, what the provider's errors look like, the
normalised state) and calls :func:`install` on its Flask app. Everything here is
provider-neutral so ResellerClub's paths, PolarisMail's ``action=`` form fields or
mailbox.org's JSON-RPC ``method`` all plug in through ``action_name``.

Faults run around every request outside ``/_sim/``, in this order:
latency, rate limit (429), error (500), malformed body (200), then timeout, which
lets the request take effect and only delays its answer: the nastiest real case,
where the client gives up but the upstream did the work. Each fault that fires is
counted by kind (``GET /_sim/faults`` answers them as ``injected``), so a chaos
run can report what it really suffered rather than the rates it asked for.
"""
from __future__ import annotations

import abc
import dataclasses
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

from flask import Blueprint, Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

CONTROL_PREFIX = "/_sim"
ACCOUNT_STATUSES = frozenset({"active", "suspended", "deleted", "pending"})

#: Generic error codes passed to ``error_response``; each simulator maps them
#: (or just the HTTP status) onto its provider's own vocabulary.
DEFAULT_CODES: dict[int, str] = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "limit_exceeded",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


def default_code(status: int) -> str:
    return DEFAULT_CODES.get(status, "error")


class ControlError(Exception):
    """A bad ``/_sim/`` request; answered as JSON, naming the offending field."""

    status = 400
    code = "invalid_request"

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class UnknownAccount(ControlError):
    status = 404
    code = "not_found"

    def __init__(self, account_id: str):
        super().__init__(f"no account {account_id!r}", "account_id")


@dataclasses.dataclass
class Faults:
    """The faults currently injected; all off by default."""

    latency_ms: float = 0
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    rate_limit_per_s: float = 0
    malformed_rate: float = 0.0
    timeout_s: float = 30.0   # how long a "timed out" answer is held back
    #: API actions the faults apply to; empty: every action
    only_actions: tuple[str, ...] = ()

    RATES: ClassVar[frozenset[str]] = frozenset({"error_rate", "timeout_rate", "malformed_rate"})

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "only_actions": list(self.only_actions)}

    def applies_to(self, action: str) -> bool:
        return not self.only_actions or action in self.only_actions


FAULT_KEYS = frozenset(f.name for f in dataclasses.fields(Faults))
#: the kinds of fault counted in ``injected``
INJECTED_KINDS = ("latency", "rate_limited", "error", "malformed", "timeout")


def _number(value: Any, field: str) -> float:
    # bool is an int subclass; true/false as a rate is a client bug, not 1/0.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ControlError(f"{field}: must be a number", field)
    return value


def parse_faults(body: Any) -> tuple[dict[str, float], bool, tuple[bool, int | None]]:
    """Validate a ``POST /_sim/faults`` body.

    Returns ``(changes, reset_first, (reseed, seed))``; raises ControlError."""
    if not isinstance(body, dict):
        raise ControlError("body must be a JSON object", "body")
    changes: dict[str, float] = {}
    reset_first = False
    reseed: tuple[bool, int | None] = (False, None)
    for key, value in body.items():
        if key == "reset":
            if not isinstance(value, bool):
                raise ControlError("reset: must be true or false", key)
            reset_first = value
        elif key == "seed":
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ControlError("seed: must be an integer or null", key)
            reseed = (True, value)
        elif key == "only_actions":
            if not isinstance(value, list) or not all(isinstance(a, str) and a for a in value):
                raise ControlError("only_actions: must be a list of action names", key)
            changes[key] = tuple(value)
        elif key in FAULT_KEYS:
            number = _number(value, key)
            if key in Faults.RATES and not 0 <= number <= 1:
                raise ControlError(f"{key}: must be between 0 and 1", key)
            if number < 0:
                raise ControlError(f"{key}: must not be negative", key)
            changes[key] = number
        else:
            known = ", ".join(sorted(FAULT_KEYS | {"reset", "seed"}))
            raise ControlError(f"{key}: unknown fault (known: {known})", key)
    return changes, reset_first, reseed


class _TokenBucket:
    """``rate`` requests per second with a burst of one second's worth."""

    def __init__(self, rate: float, now: float):
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self.tokens = self.capacity
        self.stamp = now

    def take(self, now: float) -> int:
        """0 if the request may pass, else the seconds to wait (Retry-After)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0
        return max(1, math.ceil((1 - self.tokens) / self.rate))


class SimulatorBase(abc.ABC):
    """State, call counts and faults of one simulator instance.

    Subclasses keep their data under ``self.lock`` (the server is threaded) and
    implement the abstract hooks. ``/_sim/`` handlers call the hooks with the
    lock held.
    """

    #: shown in logs and /_sim/ answers
    name: ClassVar[str] = "simulator"
    #: keys ``POST /_sim/mutate`` accepts besides ``account_id``
    mutable_fields: ClassVar[frozenset[str]] = frozenset({"status", "limits"})

    def __init__(self, *, seed: int | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.lock = threading.RLock()
        self.calls: Counter[str] = Counter()
        self.faults = Faults()
        #: faults that fired, by kind (INJECTED_KINDS); only a full reset clears them
        self.injected: Counter[str] = Counter()
        self.random = random.Random(seed)
        self._monotonic = monotonic
        self._sleep = sleep
        self._bucket: _TokenBucket | None = None

    # --- hooks each simulator implements --------------------------------
    @abc.abstractmethod
    def action_name(self, req) -> str:
        """The API action ``req`` calls, e.g. ``accounts.create`` or ``addDomain``."""

    @abc.abstractmethod
    def error_response(self, status: int, message: str, code: str) -> Response:
        """An error in the provider's real shape; ``code`` is a DEFAULT_CODES name."""

    def malformed_response(self) -> Response:
        """A 200 answer the client cannot parse. JSON providers can keep this one."""
        return Response('{"data": [{"id": "acc_00', status=200, mimetype="application/json")

    @abc.abstractmethod
    def state(self) -> dict[str, Any]:
        """``{"accounts": [{"id", "domain", "status", "limits", "mailboxes",
        "aliases", "lists", "native"}]}`` (contract section 5)."""

    @abc.abstractmethod
    def reset_state(self) -> None:
        """Forget every upstream object (ids start again from 1)."""

    @abc.abstractmethod
    def mutate(self, account_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change an account behind the provisioner's back; return its state entry.

        ``changes`` holds only ``mutable_fields`` keys, with ``status`` already
        checked against ACCOUNT_STATUSES and ``limits`` already a dict. Raise
        UnknownAccount or ControlError."""

    # --- shared behaviour --------------------------------------------------
    def reset(self) -> None:
        """Clear state, call counts and faults."""
        with self.lock:
            self.reset_state()
            self.calls.clear()
            self.injected.clear()
            self.faults = Faults()
            self._bucket = None

    def count(self, action: str) -> None:
        with self.lock:
            self.calls[action] += 1

    def calls_snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"calls": dict(self.calls), "total": sum(self.calls.values())}

    def injected_snapshot(self) -> dict[str, int]:
        with self.lock:
            return {kind: self.injected[kind] for kind in INJECTED_KINDS}

    def set_faults(self, changes: dict[str, float], *, reset_first: bool = False) -> Faults:
        with self.lock:
            if reset_first:
                self.faults = Faults()
            self.faults = dataclasses.replace(self.faults, **changes)
            if reset_first or "rate_limit_per_s" in changes:
                rate = self.faults.rate_limit_per_s
                self._bucket = _TokenBucket(rate, self._monotonic()) if rate > 0 else None
            return self.faults

    def reseed(self, seed: int | None) -> None:
        with self.lock:
            self.random = random.Random(seed)

    def _roll(self, rate: float) -> bool:
        # random() is in [0, 1): rate 1.0 always fires, 0.0 never does.
        return rate > 0 and self.random.random() < rate

    def before_api_request(self) -> Response | None:
        """Count the call and apply faults; a Response short-cuts the request."""
        action = self.action_name(request)
        with self.lock:
            self.calls[action] += 1
            faults = self.faults
        if not faults.applies_to(action):
            return None
        if faults.latency_ms > 0:
            with self.lock:
                self.injected["latency"] += 1
            self._sleep(faults.latency_ms / 1000)
        with self.lock:
            retry_after = self._bucket.take(self._monotonic()) if self._bucket else 0
            error = not retry_after and self._roll(self.faults.error_rate)
            malformed = not (retry_after or error) and self._roll(self.faults.malformed_rate)
            hold = not (retry_after or error or malformed) and self._roll(self.faults.timeout_rate)
            timeout_s = self.faults.timeout_s
            for kind, fired in (("rate_limited", retry_after), ("error", error),
                                ("malformed", malformed), ("timeout", hold)):
                if fired:
                    self.injected[kind] += 1
        if retry_after:
            response = self.error_response(429, "rate limit exceeded", default_code(429))
            response.headers["Retry-After"] = str(retry_after)
            return response
        if error:
            return self.error_response(500, "simulated internal error", default_code(500))
        if malformed:
            return self.malformed_response()
        if hold:
            g.sim_hold_answer_s = timeout_s
        return None

    def after_api_request(self, response: Response) -> Response:
        hold = g.pop("sim_hold_answer_s", None)
        if hold:
            # The work is done; only the answer is late, so the client times out.
            self._sleep(hold)
        return response


def is_control_path(path: str) -> bool:
    return path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/")


def get_simulator(app: Flask) -> SimulatorBase:
    return app.extensions["simulator"]


def _control_error(exc: ControlError) -> tuple[Response, int]:
    error: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.field:
        error["fields"] = {exc.field: exc.message.removeprefix(f"{exc.field}: ")}
    return jsonify({"error": error}), exc.status


def _json_body() -> Any:
    body = request.get_json(silent=True)
    if body is None:
        raise ControlError("body must be JSON", "body")
    return body


def _parse_mutation(sim: SimulatorBase, body: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(body, dict):
        raise ControlError("body must be a JSON object", "body")
    account_id = body.get("account_id")
    if not isinstance(account_id, str) or not account_id:
        raise ControlError("account_id: required string", "account_id")
    changes = {k: v for k, v in body.items() if k != "account_id"}
    if not changes:
        allowed = ", ".join(sorted(sim.mutable_fields))
        raise ControlError(f"nothing to change (allowed: {allowed})", "body")
    for key in changes:
        if key not in sim.mutable_fields:
            allowed = ", ".join(sorted(sim.mutable_fields))
            raise ControlError(f"{key}: cannot be mutated (allowed: {allowed})", key)
    if "status" in changes and changes["status"] not in ACCOUNT_STATUSES:
        raise ControlError(f"status: must be one of {', '.join(sorted(ACCOUNT_STATUSES))}", "status")
    if "limits" in changes and not isinstance(changes["limits"], dict):
        raise ControlError("limits: must be an object", "limits")
    return account_id, changes


def _control_blueprint(sim: SimulatorBase) -> Blueprint:
    bp = Blueprint("_sim", __name__, url_prefix=CONTROL_PREFIX)
    bp.register_error_handler(ControlError, _control_error)

    @bp.get("/state")
    def state():
        with sim.lock:
            return jsonify(sim.state())

    @bp.post("/reset")
    def reset():
        sim.reset()
        return jsonify({"ok": True})

    @bp.get("/calls")
    def calls():
        return jsonify(sim.calls_snapshot())

    @bp.get("/faults")
    def get_faults():
        with sim.lock:
            return jsonify({"faults": sim.faults.as_dict(), "injected": sim.injected_snapshot()})

    @bp.post("/faults")
    def set_faults():
        changes, reset_first, (reseed, seed) = parse_faults(_json_body())
        with sim.lock:
            if reseed:
                sim.reseed(seed)
            faults = sim.set_faults(changes, reset_first=reset_first)
            return jsonify({"faults": faults.as_dict()})

    @bp.post("/mutate")
    def mutate():
        account_id, changes = _parse_mutation(sim, _json_body())
        with sim.lock:
            return jsonify({"ok": True, "account": sim.mutate(account_id, changes)})

    return bp


def control_route(app: Flask, rule: str, view: Callable[[Any], Any], *, status: int = 200) -> None:
    """A simulator's own ``POST /_sim/<rule>``: ``view(json body)`` answered as JSON, its
    ControlErrors in the same shape as the shared control API's."""
    def endpoint():
        try:
            return jsonify(view(_json_body())), status
        except ControlError as exc:
            return _control_error(exc)
    app.add_url_rule(f"{CONTROL_PREFIX}/{rule}", f"_sim_{rule}", endpoint, methods=["POST"])


def install(app: Flask, sim: SimulatorBase) -> None:
    """Attach ``sim`` to ``app``: the /_sim/ API plus faults around every other request.

    Call it before registering the simulator's own ``before_request`` hooks (such
    as an API-key check) so that faults and call counting come first."""
    app.extensions["simulator"] = sim
    app.register_blueprint(_control_blueprint(sim))

    @app.before_request
    def _faults_before():
        if not is_control_path(request.path):
            return sim.before_api_request()
        return None

    @app.after_request
    def _faults_after(response: Response) -> Response:
        if not is_control_path(request.path):
            return sim.after_api_request(response)
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        # Unknown paths and wrong methods answer in the provider's shape too.
        if is_control_path(request.path):
            return _control_error(_http_as_control(exc))
        status = exc.code or 500
        return sim.error_response(status, exc.description or exc.name, default_code(status))


def _http_as_control(exc: HTTPException) -> ControlError:
    err = ControlError(exc.description or exc.name)
    err.status = exc.code or 500
    err.code = default_code(err.status)
    return err
