"""The PolarisMail provider against its simulator.

PolarisMail keeps no per-domain limits (the reseller enforces them), so the
target gives its test accounts none.
"""
from __future__ import annotations

from typing import Any

from tests.contract.targets import Target

SIM_USERNAME = "contract-reseller"
SIM_PASSWORD = "contract-polaris-pass-5d2e"
BAD_PASSWORD = "not-the-polaris-pass-91b7"


def _polaris_config(url: str, timeout: float | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"provider": "polarismail", "base_url": url,
                              "username": SIM_USERNAME, "password": SIM_PASSWORD}
    if timeout is not None:
        config["timeout"] = timeout
    return config


TARGET = Target(
    kind="polarismail", simulator="polarismail",
    sim_options={"username": SIM_USERNAME, "password": SIM_PASSWORD},
    config=_polaris_config,
    bad_credentials=lambda url: {**_polaris_config(url), "password": BAD_PASSWORD},
    limits={},
    secrets=(SIM_PASSWORD, BAD_PASSWORD),
    create_action="addDomain", read_action="getAllDomains", reuses_ids=True,
)
