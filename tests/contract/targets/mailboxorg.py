"""The mailbox.org provider against its simulator.

A customer account's plan restrictions are the limits: the core ``mailboxes`` (the
total over all plans, here all light mailboxes, the adapter's ``default_plan``),
``mailing_lists`` and the ``account_plan``.
"""
from __future__ import annotations

from typing import Any

from tests.contract.targets import Target

SIM_USERNAME = "contract-reseller"
SIM_PASSWORD = "contract-mbo-pass-3c8d"
BAD_PASSWORD = "not-the-mbo-pass-71e2"


def _config(url: str, timeout: float | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"provider": "mailboxorg", "base_url": f"{url}/v1/",
                              "username": SIM_USERNAME, "password": SIM_PASSWORD,
                              "account_prefix": "contract"}
    if timeout is not None:
        config["timeout"] = timeout
    return config


TARGET = Target(
    kind="mailboxorg", simulator="mailboxorg",
    sim_options={"username": SIM_USERNAME, "password": SIM_PASSWORD},
    config=_config,
    bad_credentials=lambda url: {**_config(url), "password": BAD_PASSWORD},
    limits={"mailboxes": 2, "mailing_lists": 1, "account_plan": "reseller"},
    secrets=(SIM_PASSWORD, BAD_PASSWORD),
    # find_account reads one account.list; a deleted account keeps its name, so an
    # account made again for the same service gets a new one (``...-r2``)
    create_action="account.add", read_action="account.list", reuses_ids=False,
)
