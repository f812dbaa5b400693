"""The ResellerClub provider against its simulator."""
from __future__ import annotations

import datetime as dt
import time
from typing import Any

from tests.contract.targets import Target

SIM_AUTH_USERID = "100042"
SIM_API_KEY = "contract-rc-key-5d21e"
BAD_API_KEY = "not-the-rc-key-93b0"

# The suite's timeline starts on 2026-11-21 (tests/contract/test_converge.py: NOW;
# specs are paid until 2026-12-21, one month later). ResellerClub dates an
# order from the day it is placed and renews in whole months, so the
# simulator's clock starts on that day too: orders placed "today" then end on
# the suite's due dates, as they do when a billing system orders on the first
# day of the billing period.
SUITE_START = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.timezone.utc).timestamp()


class SuiteClock:
    """Unix time that starts at SUITE_START on first use and then runs normally."""

    def __init__(self, start: float):
        self.start = start
        self.offset: float | None = None

    def __call__(self) -> float:
        now = time.time()
        if self.offset is None:
            self.offset = self.start - now
        return now + self.offset


def _config(url: str, timeout: float | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "provider": "resellerclub", "base_url": f"{url}/api",
        "auth_userid": SIM_AUTH_USERID, "api_key": SIM_API_KEY,
        "product_lines": ["enterpriseemail/us"],
        # the suite's billing clients have no postal address or phone
        "customer_defaults": {"address": "1 Reseller Way", "city": "Berlin", "postcode": "10115",
                              "phone_cc": "49", "phone": "3012345678"},
    }
    if timeout is not None:
        config["timeout"] = timeout
    return config


TARGET = Target(
    kind="resellerclub", simulator="resellerclub",
    sim_options={"auth_userid": SIM_AUTH_USERID, "api_key": SIM_API_KEY, "activation_delay": 0.0,
                 "clock": SuiteClock(SUITE_START)},
    config=_config,
    bad_credentials=lambda url: {**_config(url), "api_key": BAD_API_KEY},
    limits={"mailboxes": 2, "region": "us", "email_product": "enterpriseemail"},
    secrets=(SIM_API_KEY, BAD_API_KEY),
    create_action="enterpriseemail/us/add",
    read_action="enterpriseemail/us/orderid",
)
