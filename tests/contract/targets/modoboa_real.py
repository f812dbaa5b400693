"""The Modoboa provider against a real Modoboa instance, not its simulator.

Configured by the environment: ``MODOBOA_REAL_URL`` (the instance's root) and
``MODOBOA_REAL_TOKEN`` (a superadmin's API token). tests/real/test_modoboa_contract.py
sets both to the ``modoboa_real`` fixture's instance and runs this suite with
``PROVISIONER_CONTRACT_TARGETS=modoboa_real``. State is read through Modoboa's own API
(tests/real/modoboa_control.py); scenarios that need the simulator's faults or call
counts skip. Without the variables this target is left out.
"""
from __future__ import annotations

import os
from typing import Any

from tests.contract.targets import Target
from tests.contract.targets.modoboa import TARGET as SIMULATED

UNCONFIGURED = "set MODOBOA_REAL_URL and MODOBOA_REAL_TOKEN to a Modoboa instance made for tests"
BAD_TOKEN = "bad0modoboa0token000000000000000000000b2"


def _target() -> Target | None:
    url = os.environ.get("MODOBOA_REAL_URL", "").strip().rstrip("/")
    token = os.environ.get("MODOBOA_REAL_TOKEN", "").strip()
    if not url or not token:
        return None

    def config(base_url: str, timeout: float | None = None) -> dict[str, Any]:
        block: dict[str, Any] = {"provider": "modoboa", "base_url": base_url, "token": token}
        if timeout is not None:
            block["timeout"] = timeout
        return block

    def control(base_url: str):
        from tests.real.modoboa_control import RealModoboaControl   # only when the target runs
        return RealModoboaControl(base_url, token)

    return Target(kind="modoboa", simulator="", sim_options={}, config=config,
                  bad_credentials=lambda base_url: {**config(base_url), "token": BAD_TOKEN},
                  limits=dict(SIMULATED.limits), secrets=(token, BAD_TOKEN),
                  create_action=SIMULATED.create_action, read_action=SIMULATED.read_action,
                  real_url=url, control=control)


TARGET = _target()
