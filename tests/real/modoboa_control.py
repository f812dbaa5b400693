"""The contract suite's control API for a real Modoboa (tests/contract, target ``modoboa_real``).

A simulator shows its state at ``/_sim/state`` and takes faults and drift at ``/_sim/``;
a real Modoboa has neither. This reads the same normalised state through Modoboa's own
REST API v2 (a domain is an account, as the ``modoboa`` adapter makes it), makes drift
the way an operator would (``PATCH`` the domain), and skips the scenarios that need fault
injection or per-action call counts, saying why; the total of calls is counted on the
adapter's own session.

``reset`` deletes every domain and every account but the superadmin: point it only at an
instance made for tests (the ``modoboa_real`` fixture's).
"""
from __future__ import annotations

import json
import math
from typing import Any

import pytest
import requests

TIMEOUT = 15                       # seconds, every call
POSTMASTER = "postmaster"
MEMO_LOCAL = "provisioner-settings"     # the adapter's memo alias (docs/providers/modoboa.md)
LIST_TAG = "provisioner:list"
COUNTS = ("mailboxes", "aliases", "distribution_lists")
SKIP = "needs the simulator's /_sim/ {what}; the modoboa_real target is a real Modoboa"


class RealModoboaControl:
    def __init__(self, url: str, token: str):
        self.base = url.rstrip("/") + "/api/v2"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Token {token}"
        self._total, self._watching = 0, False

    # --- plumbing ----------------------------------------------------------------------
    def _call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        answer = self.http.request(method, f"{self.base}{path}", json=body, params=params, timeout=TIMEOUT)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def _all(self, path: str, **params: Any) -> list[dict[str, Any]]:
        items, page = [], 1
        while True:
            body = self._call("GET", path, page=page, page_size=200, **params)
            items += body["results"]
            if not body["next"]:
                return items
            page += 1

    # --- the state, normalised as the simulators show it ----------------------------------
    def _entry(self, domain: dict[str, Any]) -> dict[str, Any]:
        name = domain["name"]
        users = self._all("/accounts/", domain=domain["pk"])
        aliases = self._all("/aliases/", domain=name)
        memo = next((a for a in aliases if a["address"] == f"{MEMO_LOCAL}@{name}"), None)
        try:
            data = json.loads(memo["description"]) if memo else {}
        except ValueError:
            data = {}
        own = [a for a in aliases if a is not memo]
        is_list = [a["description"] == LIST_TAG or len(a["recipients"]) > 1 for a in own]
        quota = int(domain["quota"] or 0)
        return {
            "id": str(domain["pk"]), "domain": name, "status": "active" if domain["enabled"] else "suspended",
            "limits": {"domain_quota_gb": quota // 1024, "mailbox_quota_mb": int(domain["default_mailbox_quota"] or 0),
                       **{k: v for k, v in (data.get("limits") or {}).items() if k in COUNTS}},
            "mailboxes": [{"id": str(u["pk"]), "address": u["username"],
                           "name": " ".join(p for p in (u["first_name"], u["last_name"]) if p),
                           "quota_gb": (None if not int(u["mailbox"]["quota"] or 0)
                                        else max(1, math.ceil(int(u["mailbox"]["quota"]) / 1024))),
                           "enabled": u["is_active"]}
                          for u in users if u["username"] != f"{POSTMASTER}@{name}"],
            "aliases": [{"id": str(a["pk"]), "address": a["address"], "target": a["recipients"][0]}
                        for a, listed in zip(own, is_list) if not listed],
            "lists": [{"id": str(a["pk"]), "address": a["address"], "members": a["recipients"]}
                      for a, listed in zip(own, is_list) if listed],
            "native": {**domain, "memo": data,
                       "postmaster": next(({"pk": u["pk"], "is_active": u["is_active"]} for u in users
                                           if u["username"] == f"{POSTMASTER}@{name}"), None)},
        }

    def state(self) -> dict[str, Any]:
        return {"accounts": [self._entry(d) for d in sorted(self._all("/domains/"), key=lambda d: d["pk"])]}

    def accounts(self, *, live: bool = False) -> list[dict[str, Any]]:
        return self.state()["accounts"]          # a deleted domain is gone: all are live

    def account(self, account_id: str) -> dict[str, Any]:
        matches = [a for a in self.accounts() if a["id"] == account_id]
        assert len(matches) == 1, f"no single domain {account_id}"
        return matches[0]

    # --- what an operator can do ---------------------------------------------------------
    def reset(self) -> None:
        for domain in self._all("/domains/"):
            self._call("POST", f"/domains/{domain['pk']}/delete/", {"keep_folder": False})
        for user in self._all("/accounts/"):
            if user["role"] != "SuperAdmins":
                self._call("POST", f"/accounts/{user['pk']}/delete/", {"keepdir": False})

    def mutate(self, account_id: str, **changes: Any) -> dict[str, Any]:
        """Drift behind the provisioner's back: only ``status`` (active/suspended)."""
        if set(changes) - {"status"} or changes.get("status") not in ("active", "suspended"):
            pytest.skip(SKIP.format(what=f"mutate with {sorted(changes)}"))
        self._call("PATCH", f"/domains/{int(account_id)}/", {"enabled": changes["status"] == "active"})
        return self.account(account_id)

    # --- what only a simulator can do ----------------------------------------------------
    def faults(self, **faults: Any) -> dict[str, Any]:
        pytest.skip(SKIP.format(what="faults (injected errors, timeouts, rate limits)"))

    def clear_faults(self) -> None:
        pass

    def calls(self) -> dict[str, int]:
        pytest.skip(SKIP.format(what="calls (per-action call counts)"))

    def watch(self, provider: Any) -> None:
        """Count the HTTP requests the adapter under test sends (retries included), which is
        what a simulator's ``total`` counts: a response hook on its session."""
        http = getattr(provider, "http", None)
        if http is not None:
            http.session.hooks["response"].append(self._count)
            self._watching = True

    def _count(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._total += 1

    def total_calls(self) -> int:
        if not self._watching:
            pytest.skip(SKIP.format(what="calls (request counts)"))
        return self._total

    def close(self) -> None:
        self.http.close()
