"""The Modoboa simulator answers as the real Modoboa does.

The same calls go to the real instance and to a fresh simulator; what comes back must
match: the status, and either the whole body (errors) or the fields it carries (objects,
whose values — pks, dates — differ between the two). A difference here is a place where
the simulator, and the adapter tested against it, would be wrong about the real thing.
"""
from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
import requests

from provisioner.simulators.modoboa import create_app
from provisioner.simulators.server import SimulatorServer
from tests.real.modoboa_api import TIMEOUT, Api

pytestmark = [pytest.mark.real, pytest.mark.e2e]

SIM_TOKEN = "0123456789abcdef0123456789abcdef01234567"
PASSWORD = "Parity-Pass-2026"


@pytest.fixture
def sim_api():
    server = SimulatorServer(create_app(token=SIM_TOKEN, auto_account_removal=True)).start()
    session = requests.Session()
    session.headers["Authorization"] = f"Token {SIM_TOKEN}"
    yield Api(server.url, session)
    session.close()
    server.stop()


def shape(value: Any) -> Any:
    """The fields of an object (recursively), the shape of a list's first item."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        return [shape(value[0])] if value and isinstance(value[0], (dict, list)) else "list"
    return type(value).__name__ if value is not None else "null"


def _body(response: requests.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return "<not JSON>"


def exact(response: requests.Response) -> tuple[int, Any]:
    return response.status_code, _body(response)


def fields(response: requests.Response) -> tuple[int, Any]:
    return response.status_code, shape(_body(response))


def journey(api: Api, base_url: str) -> dict[str, tuple[int, Any]]:
    """Every call the adapter makes, and the refusals it must understand."""
    name = f"parity-{secrets.token_hex(4)}.example.com"
    seen: dict[str, tuple[int, Any]] = {}
    created = api.post("/domains/", {"name": name, "type": "domain", "quota": "500",
                                     "default_mailbox_quota": "100", "enabled": True, "enable_dns_checks": False})
    seen["domain create"] = fields(created)
    pk = created.json()["pk"]
    seen["domain get"] = fields(api.get(f"/domains/{pk}/"))
    seen["domain list (search)"] = fields(api.get("/domains/", search=name))
    seen["domain patch"] = fields(api.patch(f"/domains/{pk}/", {"enabled": False}))
    seen["domain duplicate"] = exact(api.post("/domains/", {"name": name}))
    seen["domain bad name"] = exact(api.post("/domains/", {"name": "not a domain"}))
    seen["domain default quota above quota"] = exact(api.post("/domains/", {
        "name": f"x{name}", "quota": "10", "default_mailbox_quota": "20"}))
    seen["domain unknown"] = exact(api.get("/domains/999999/"))
    seen["domain page past the last"] = exact(api.get("/domains/", page=999, page_size=1))
    seen["domain DELETE"] = exact(api.delete(f"/domains/{pk}/"))
    seen["domain DELETE on delete/"] = exact(api.delete(f"/domains/{pk}/delete/"))
    seen["domain name only"] = (lambda r: (r.status_code, {k: r.json().get(k) for k in (
        "quota", "default_mailbox_quota", "enable_dns_checks", "enabled", "type")}))(
        api.post("/domains/", {"name": f"bare-{name}"}))
    bare_pk = api.get("/domains/", search=f"bare-{name}").json()["results"][0]["pk"]

    user = api.post("/accounts/", {"username": f"ann@{name}", "role": "SimpleUsers", "password": PASSWORD,
                                   "mailbox": {"use_domain_quota": False, "quota": "50"}})
    seen["account create"] = fields(user)
    upk = user.json()["pk"]
    seen["account patch"] = fields(api.patch(f"/accounts/{upk}/", {"is_active": False}))
    seen["account get"] = fields(api.get(f"/accounts/{upk}/"))
    seen["account list (domain pk)"] = fields(api.get("/accounts/", domain=pk))
    default = api.post("/accounts/", {"username": f"bea@{name}", "role": "SimpleUsers", "password": PASSWORD})
    seen["account without mailbox: its quota"] = (default.status_code, {
        k: default.json()["mailbox"][k] for k in ("use_domain_quota", "quota")})
    seen["account list (domain name)"] = exact(api.get("/accounts/", domain=name))
    seen["account unknown"] = exact(api.get("/accounts/999999/"))
    seen["account unknown patch"] = exact(api.patch("/accounts/999999/", {"is_active": True}))
    seen["account unknown delete"] = exact(api.post("/accounts/999999/delete/", {"keepdir": False}))
    seen["account duplicate"] = exact(api.post("/accounts/", {"username": f"ann@{name}", "role": "SimpleUsers",
                                                              "password": PASSWORD}))
    seen["account short password"] = exact(api.post("/accounts/", {"username": f"cy@{name}",
                                                                   "role": "SimpleUsers", "password": "Ab1"}))
    for label, password in (("no digit", "NoDigitsHere"), ("no upper case", "nouppercase12"),
                            ("no lower case", "NOLOWERCASE12"), ("all there", "Fine-Pass-2026x")):
        seen[f"account password with {label}"] = fields(api.post("/accounts/", {
            "username": f"pw-{label.replace(' ', '')}@{name}", "role": "SimpleUsers", "password": password}))
        if seen[f"account password with {label}"][0] == 400:
            seen[f"account password with {label}"] = exact(api.post("/accounts/", {
                "username": f"pw2-{label.replace(' ', '')}@{name}", "role": "SimpleUsers", "password": password}))
    seen["account short password (patch)"] = exact(api.patch(f"/accounts/{upk}/", {"password": "Ab1"}))
    seen["account over the domain quota"] = exact(api.post("/accounts/", {
        "username": f"big@{name}", "role": "SimpleUsers", "password": PASSWORD,
        "mailbox": {"use_domain_quota": False, "quota": "5000"}}))
    seen["account on an unknown domain"] = exact(api.post("/accounts/", {
        "username": "bob@no-such-domain.example.com", "role": "SimpleUsers", "password": PASSWORD}))
    seen["account quota patch over the domain"] = exact(api.patch(f"/accounts/{upk}/", {
        "mailbox": {"use_domain_quota": False, "quota": "5000"}}))
    seen["domain quota below what is allocated"] = (lambda r: (r.status_code, r.json().get("quota"),
                                                                r.json().get("allocated_quota_in_percent")))(
        api.patch(f"/domains/{pk}/", {"quota": "100"}))
    api.patch(f"/domains/{pk}/", {"quota": "500"})
    seen["domain patch: default quota above quota"] = fields(api.patch(f"/domains/{pk}/", {
        "default_mailbox_quota": "600"}))
    seen["domain patch: both quotas"] = (api.patch(f"/domains/{pk}/", {"quota": "500",
                                                                       "default_mailbox_quota": "600"}).status_code,)
    seen["domain after the quota patches"] = fields(api.get(f"/domains/{pk}/"))
    seen["domain quotas after the patches"] = (200, [api.get(f"/domains/{pk}/").json()[k]
                                                     for k in ("quota", "default_mailbox_quota")])
    api.patch(f"/domains/{pk}/", {"quota": "500", "default_mailbox_quota": "100"})
    seen["mailbox quotas after the patches"] = (200, sorted(
        (a["username"].split("@")[0], a["mailbox"]["quota"], a["mailbox"]["use_domain_quota"])
        for a in api.get("/accounts/", domain=pk).json()["results"]))
    seen["account with quota 0 in a domain with a quota"] = fields(api.post("/accounts/", {
        "username": f"zero@{name}", "role": "SimpleUsers", "password": PASSWORD,
        "mailbox": {"use_domain_quota": False, "quota": "0"}}))
    seen["account search"] = (200, [a["username"] for a in api.get("/accounts/", search="ann",
                                                                   domain=pk).json()["results"]])
    extra = api.post("/accounts/", {"username": f"gone@{name}", "role": "SimpleUsers", "password": PASSWORD})
    seen["account create (domain default quota)"] = (extra.status_code,)
    extra_pk = extra.json().get("pk", 999998)
    seen["account delete"] = exact(api.post(f"/accounts/{extra_pk}/delete/", {"keepdir": False}))
    seen["account deleted"] = exact(api.get(f"/accounts/{extra_pk}/"))
    admin = [a for a in api.get("/accounts/", page_size=500).json()["results"] if a["username"] == "admin"]
    seen["the superadmin in /accounts/"] = (len(admin), [(a["role"], a["mailbox"]) for a in admin])

    first = api.post("/aliases/", {"address": f"sales@{name}", "recipients": [f"ann@{name}"], "enabled": True})
    seen["alias create"] = fields(first)
    # a new mailbox's own (internal) alias takes an alias pk, and is never listed
    api.post("/accounts/", {"username": f"dan@{name}", "role": "SimpleUsers", "password": PASSWORD})
    second = api.post("/aliases/", {"address": f"team@{name}", "recipients": [f"ann@{name}", "x@elsewhere.org"],
                                    "enabled": False, "description": "two"})
    seen["alias pk after a new mailbox"] = (second.status_code, second.json()["pk"] - first.json()["pk"])
    seen["alias list (domain name)"] = fields(api.get("/aliases/", domain=name))
    seen["alias addresses listed"] = (200, sorted(a["address"] for a in
                                                   api.get("/aliases/", domain=name).json()["results"]))
    seen["alias list (domain pk)"] = exact(api.get("/aliases/", domain=pk))
    seen["alias duplicate"] = exact(api.post("/aliases/", {"address": f"sales@{name}",
                                                           "recipients": [f"ann@{name}"]}))
    seen["alias empty recipients"] = exact(api.post("/aliases/", {"address": f"empty@{name}", "recipients": []}))
    seen["alias on a mailbox's address"] = (api.post("/aliases/", {"address": f"ann@{name}",
                                                                   "recipients": ["x@elsewhere.org"]}).status_code,)
    seen["alias patch"] = fields(api.patch(f"/aliases/{second.json()['pk']}/", {"recipients": ["y@elsewhere.org"]}))
    seen["alias patch without recipients"] = (api.patch(f"/aliases/{second.json()['pk']}/",
                                                        {"enabled": True}).status_code,)
    seen["alias after that"] = (200, {k: api.get(f"/aliases/{second.json()['pk']}/").json()[k]
                                      for k in ("recipients", "enabled", "description")})
    seen["alias delete"] = exact(api.delete(f"/aliases/{first.json()['pk']}/"))
    seen["alias delete again"] = exact(api.delete(f"/aliases/{first.json()['pk']}/"))

    parameters = api.get("/parameters/global/admin/")
    seen["parameters get"] = (parameters.status_code, sorted(parameters.json()),
                              sorted(parameters.json().get("params") or ()))
    seen["parameters auto_account_removal"] = (200, (parameters.json().get("params") or {}).get("auto_account_removal"))
    refused = api.http.put(f"{api.base}/parameters/global/admin/", json=parameters.json(), timeout=TIMEOUT)
    seen["parameters put (the GET body whole)"] = (refused.status_code, sorted(_body(refused) or ()))
    params = parameters.json().get("params") or {}
    put = api.http.put(f"{api.base}/parameters/global/admin/", json=params, timeout=TIMEOUT)
    seen["parameters put (params)"] = fields(put)
    seen["parameters after put"] = (200, api.get("/parameters/global/admin/").json() == parameters.json())

    seen["domain delete"] = exact(api.post(f"/domains/{pk}/delete/", {"keep_folder": False}))
    seen["domain gone"] = exact(api.get(f"/domains/{pk}/"))
    seen["its account gone"] = exact(api.get(f"/accounts/{upk}/"))
    seen["domain delete again"] = exact(api.post(f"/domains/{pk}/delete/", {"keep_folder": False}))
    api.post(f"/domains/{bare_pk}/delete/", {"keep_folder": False})

    anonymous = requests.get(f"{base_url}/api/v2/domains/", timeout=TIMEOUT)
    wrong = requests.get(f"{base_url}/api/v2/domains/", headers={"Authorization": "Token " + "0" * 40},
                         timeout=TIMEOUT)
    seen["no token"], seen["wrong token"] = exact(anonymous), exact(wrong)
    # the domain's name differs between the two; everything else must not
    return json.loads(json.dumps(seen).replace(name, "<domain>"))


def test_the_simulator_answers_as_the_real_modoboa(modoboa_real, sim_api):
    real = journey(Api(modoboa_real.url, modoboa_real.http), modoboa_real.url)
    simulated = journey(sim_api, sim_api.base[: -len("/api/v2")])
    assert real.keys() == simulated.keys()
    differences = {step: {"real": real[step], "simulator": simulated.get(step)}
                   for step in real if simulated.get(step) != real[step]}
    assert not differences, "\n".join(f"{step}:\n  real      {d['real']}\n  simulator {d['simulator']}"
                                      for step, d in differences.items())
