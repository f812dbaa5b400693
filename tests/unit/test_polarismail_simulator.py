"""The PolarisMail simulator: the admin API's actions and answer shapes, and its /_sim/ API."""
from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from provisioner.simulators.polarismail import ADMIN_PATH, create_app
from provisioner.simulators.server import SimulatorServer

USER, PASSWORD = "reseller", "Reseller-Pass-1"
MAILBOX_PASSWORD = "Mailbox-Secret-77"


class FakeClock:
    def __init__(self, now: float = 1_790_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Api:
    """Form posts to /admin/json.php through the Flask test client."""

    def __init__(self, client):
        self.client = client
        self.token = None

    def raw(self, action: str, **form):
        return self.client.post(ADMIN_PATH, data={"action": action, **form})

    def login(self, username: str = USER, password: str = PASSWORD) -> dict:
        body = self.raw("login", username=username, password=password).get_json()
        if body["returncode"] == 1:
            self.token = body["returndata"]
        return body

    def __call__(self, action: str, **form) -> dict:
        if self.token is None:
            self.login()
        r = self.raw(action, token=self.token, **form)
        assert r.status_code == 200, r.data
        return r.get_json()

    def ok(self, action: str, **form):
        body = self(action, **form)
        assert body["returncode"] == 1, body
        return body["returndata"]

    def refused(self, action: str, **form) -> str:
        body = self(action, **form)
        assert body["returncode"] == 0, body
        assert isinstance(body["returndata"], str)
        return body["returndata"]


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def app(clock):
    return create_app(username=USER, password=PASSWORD, clock=clock, seed=1)


@pytest.fixture
def api(app):
    return Api(app.test_client())


def state(app) -> list[dict]:
    return app.test_client().get("/_sim/state").get_json()["accounts"]


def with_domain(api, domain: str = "example.com") -> str:
    api.ok("addDomain", newdomain=domain)
    return domain


# --- login and tokens ---------------------------------------------------------

def test_login_returns_a_token_and_bad_credentials_are_refused(api):
    assert api.login("reseller", "wrong") == {"returncode": 0, "returndata": "Invalid credentials"}
    body = api.login()
    assert body["returncode"] == 1 and len(body["returndata"]) >= 32


def test_calls_need_a_valid_token_that_expires(app, clock):
    api = Api(app.test_client())
    assert api.raw("getAllDomains").get_json() == {"returncode": 0, "returndata": "Invalid or expired token"}
    assert api.raw("getAllDomains", token="made-up").get_json()["returncode"] == 0
    api.login()
    assert api.ok("getAllDomains") == []
    clock.now += 599
    assert api.ok("getAllDomains") == []
    clock.now += 2                                   # past the default token_ttl of 600 s
    assert api.refused("getAllDomains") == "Invalid or expired token"
    api.login()
    assert api.ok("getAllDomains") == []


def test_unknown_actions_and_methods_answer_in_the_api_shape(api, app):
    assert api.refused("makeCoffee") == "Invalid action"
    r = app.test_client().get(ADMIN_PATH)
    assert r.status_code == 405 and r.get_json()["returncode"] == 0


# --- domains ------------------------------------------------------------------------

def test_domain_lifecycle_and_answer_shapes(api, app):
    assert api.ok("isDomainAvailable", domain="Example.com") == "Domain is available"
    api.ok("addDomain", newdomain="Example.com")
    assert api.refused("isDomainAvailable", domain="example.com") == "Domain is not available"
    assert api.refused("addDomain", newdomain="example.com") == "Domain already exists"
    assert api.refused("addDomain", newdomain="not a domain") == "Invalid domain name"
    assert api.ok("getAllDomains") == [
        {"id": "1", "domain": "example.com", "isauditdomain": "0", "domaintype": "1", "active": "1"}]
    info = api.ok("getDomainInfo", domain="example.com")
    assert info["active"] == "1" and info["vusers"] == 0 and info["aliases"] == 0 and info["lists"] == 0

    api.ok("updateDomain", domain="example.com", editdomainactive="0")
    assert api.ok("getAllDomains")[0]["active"] == "0"
    assert state(app)[0]["status"] == "suspended"
    api.ok("updateDomain", domain="example.com", editdomainactive="1")
    assert state(app)[0]["status"] == "active"
    assert api.refused("updateDomain", domain="example.com", editdomainactive="maybe").startswith("Invalid")

    api.ok("removeDomain", domain="example.com")
    assert api.refused("removeDomain", domain="example.com") == "Domain not found"
    assert api.refused("getDomainInfo", domain="example.com") == "Domain not found"
    assert api.ok("getAllDomains") == [] and state(app) == []


def test_domains_of_other_customers_are_taken_but_invisible(clock):
    app = create_app(username=USER, password=PASSWORD, clock=clock, taken_domains=["Taken.example"])
    api = Api(app.test_client())
    assert api.refused("isDomainAvailable", domain="taken.example") == "Domain is not available"
    assert api.refused("addDomain", newdomain="taken.example") == "Domain already exists"
    assert api.ok("getAllDomains") == []
    assert api.refused("getDomainInfo", domain="taken.example") == "Domain not found"
    assert api.refused("removeDomain", domain="taken.example") == "Domain not found"
    assert state(app) == []
    app.test_client().post("/_sim/reset")
    assert api.login()["returncode"] == 1
    assert api.refused("isDomainAvailable", domain="taken.example") == "Domain is not available"


def test_new_domains_stay_unverified_until_the_activation_delay(clock):
    app = create_app(username=USER, password=PASSWORD, clock=clock, activation_delay=30)
    api = Api(app.test_client())
    with_domain(api)
    body = api("getDomainVerification", domain="example.com")
    assert body["returncode"] == 1 and body["returndata"].startswith("polarismail-verify-")
    assert "mx-verification.example.com" in body["message"]
    assert state(app)[0]["status"] == "pending"
    assert api.refused("addUser", username="ada", domain="example.com", account_type="1",
                       password=MAILBOX_PASSWORD, quota="5") == "Domain ownership is not verified"
    assert api.refused("enableDKIM", domain="example.com") == "Domain ownership is not verified"
    clock.now += 30
    assert api("getDomainVerification", domain="example.com") == {
        "returncode": 0, "returndata": "Domain is already verified"}
    assert state(app)[0]["status"] == "active"


# --- users ---------------------------------------------------------------------------------

def test_user_lifecycle(api, app):
    with_domain(api)
    api.ok("addUser", username="Ada", domain="example.com", account_type="2", password=MAILBOX_PASSWORD,
           quota="5", uname="Ada L")
    assert api.refused("addUser", username="ada", domain="example.com", account_type="1",
                       password=MAILBOX_PASSWORD, quota="5") == "User already exists"
    assert api.refused("addUser", username="bob", domain="example.com", account_type="3",
                       password=MAILBOX_PASSWORD, quota="5") == "Invalid account type"
    assert api.refused("addUser", username="bob", domain="example.com", account_type="1",
                       password=MAILBOX_PASSWORD, quota="0") == "Invalid quota"
    info = api.ok("getUserInfo", username="ada", domain="example.com")
    assert info["email"] == "ada@example.com" and info["uname"] == "Ada L"
    assert info["account_type"] == 2 and info["quota"] == 5000 and info["disabled"] == 0

    api.ok("updateUser", editusername="ada", editdomain="example.com", editquota="8", edituname="Ada",
           editaccount_type="1", editpassword="Another-Secret-1")
    info = api.ok("getUserInfo", username="ada", domain="example.com")
    assert (info["quota"], info["uname"], info["account_type"]) == (8000, "Ada", 1)
    api.ok("disableUser", username="ada", domain="example.com")
    assert api.ok("getUserInfo", username="ada", domain="example.com")["disabled"] == 1
    api.ok("enableUser", username="ada", domain="example.com")
    assert state(app)[0]["mailboxes"] == [{"id": "ada", "address": "ada@example.com", "name": "Ada",
                                           "quota_gb": 8, "type": "basic", "enabled": True, "used_mb": 0}]
    assert MAILBOX_PASSWORD not in json.dumps(state(app)) and "Another-Secret-1" not in json.dumps(state(app))

    api.ok("removeUser", username="ada", domain="example.com")
    assert api.refused("removeUser", username="ada", domain="example.com") == "User does not exist"
    assert api.refused("getUserInfo", username="ada", domain="other.example") == "Domain not found"


def test_users_page_with_slicing_and_count_by_type(api):
    with_domain(api)
    for i in range(5):
        api.ok("addUser", username=f"u{i}", domain="example.com", account_type="2" if i < 2 else "1",
               password=MAILBOX_PASSWORD, quota="5")
    body = api("getAllUsersDomain", domain="example.com", slicing="1", offset="2", limit="2")
    assert [u["username"] for u in body["returndata"]] == ["u2", "u3"] and body["meta"] == {"all": 5}
    assert len(api.ok("getAllUsersDomain", domain="example.com", slicing="0")) == 5
    assert api.ok("getTotalUsersDomain", domain="example.com", atype="2") == 2
    assert api.ok("getTotalUsersDomain", domain="example.com", atype="B") == 3
    assert [u["username"] for u in api.ok("searchUsers", domain="example.com", search="u4")] == ["u4"]


def test_the_reseller_plan_caps_accounts_across_domains(clock):
    app = create_app(username=USER, password=PASSWORD, clock=clock, plan_basic=1)
    api = Api(app.test_client())
    with_domain(api, "a.example")
    with_domain(api, "b.example")
    api.ok("addUser", username="x", domain="a.example", account_type="1", password=MAILBOX_PASSWORD, quota="5")
    assert api.refused("addUser", username="y", domain="b.example", account_type="1",
                       password=MAILBOX_PASSWORD, quota="5") == \
        "Maximum number of basic accounts reached for your plan"
    stats = api.ok("getAdminStats")
    assert stats["curemails"] == 1 and stats["maxemails"] == "1" and stats["curdomains"] == "2"


# --- aliases, lists, DKIM, one-time passwords ---------------------------------------------

def test_aliases(api, app):
    with_domain(api)
    api.ok("addAlias", alias="info", domain="example.com", forward="Ada@Elsewhere.example")
    api.ok("addAlias", alias="sales", domain="example.com", forward="bob")
    assert api.refused("addAlias", alias="info", domain="example.com", forward="x@y.example") == \
        "Alias already exists"
    assert api.ok("getAllAliasesDomain", domain="example.com") == [
        {"alias": "info", "domain": "example.com", "forward": "ada@elsewhere.example"},
        {"alias": "sales", "domain": "example.com", "forward": "bob@example.com"}]
    api.ok("removeAlias", alias="info", domain="example.com")
    assert api.refused("removeAlias", alias="info", domain="example.com") == "Alias does not exist"
    assert [a["address"] for a in state(app)[0]["aliases"]] == ["sales@example.com"]


def test_lists_and_members(api, app):
    with_domain(api)
    api.ok("addList", newlname="team", domain="example.com", newlisttype="1")
    assert api.refused("addList", newlname="team", domain="example.com", newlisttype="1") == \
        "List already exists"
    api.ok("addListMember", editlname="team", editdomain="example.com", newmember="A@example.org")
    api.ok("addListMember", editlname="team", editdomain="example.com", newmember="b@example.org")
    assert api.refused("addListMember", editlname="team", editdomain="example.com",
                       newmember="a@example.org") == "Member already exists"
    assert api.ok("getListMembers", lname="team", domain="example.com") == [
        {"member": "a@example.org"}, {"member": "b@example.org"}]
    assert api.ok("getAllListsDomain", domain="example.com") == [
        {"lname": "team", "domain": "example.com", "listtype": "1", "members": 2}]
    api.ok("removeListMember", lname="team", domain="example.com", member="a@example.org")
    assert state(app)[0]["lists"] == [{"id": "team", "address": "team@example.com", "members": ["b@example.org"]}]
    api.ok("removeList", lname="team", domain="example.com")
    assert api.refused("getListMembers", lname="team", domain="example.com") == "List does not exist"


def test_dkim(api):
    with_domain(api)
    assert api.ok("getDKIM", domain="example.com") == {"dkim_enabled": "0", "dkim_host": "", "dkim_key": ""}
    body = api("enableDKIM", domain="example.com")
    assert body["returncode"] == 1 and body["dkimhost"] == "dkim._domainkey"
    assert body["dkimkey"].startswith("v=DKIM1; k=rsa; p=")
    again = api("enableDKIM", domain="example.com")
    assert again["dkimkey"] == body["dkimkey"]           # enabling twice keeps the key
    assert api.ok("getDKIM", domain="example.com") == {
        "dkim_enabled": "1", "dkim_host": "dkim._domainkey", "dkim_key": body["dkimkey"]}


def test_one_time_passwords_open_the_webmail_login_once(api, app, clock):
    with_domain(api)
    api.ok("addUser", username="ada", domain="example.com", account_type="1", password=MAILBOX_PASSWORD, quota="5")
    client = app.test_client()

    def login(address: str, otp: str):
        return client.get("/processlogin.php", query_string={
            "u": base64.b64encode(address.encode()).decode(), "p": base64.b64encode(otp.encode()).decode()})

    otp = api.ok("getOTPass", username="ada", domain="example.com")
    assert login("bob@example.com", otp).status_code == 403          # bound to its user
    otp = api.ok("getOTPass", username="ada", domain="example.com")
    r = login("ada@example.com", otp)
    assert r.status_code == 200 and b"Control panel: signed in as ada@example.com" in r.data
    assert login("ada@example.com", otp).status_code == 403          # single use
    otp = api.ok("getOTPass", username="ada", domain="example.com")
    clock.now += 61
    assert login("ada@example.com", otp).status_code == 403          # expired
    assert api.refused("getOTPass", username="nobody", domain="example.com") == "User does not exist"


def test_getotpassandtoken_answers_otp_token_and_the_webmail_url(api, app, clock):
    with_domain(api)
    api.ok("addUser", username="ada", domain="example.com", account_type="1", password=MAILBOX_PASSWORD, quota="5")
    body = api("getOTPassAndToken", username="ada", domain="example.com")
    assert body["returncode"] == 1 and set(body) == {"returncode", "returndata"}
    data = body["returndata"]
    assert set(data) == {"otp", "token", "url"} and all(isinstance(v, str) and v for v in data.values())
    assert data["url"] == "http://localhost/webmail/"          # this server stands in for the host
    client = app.test_client()
    assert client.get("/webmail/", query_string={"otp": data["otp"], "token": "wrong"}).status_code == 403
    data = api.ok("getOTPassAndToken", username="ada", domain="example.com")
    r = client.get("/webmail/", query_string={"otp": data["otp"], "token": data["token"]})
    assert r.status_code == 200 and b"Webmail: signed in as ada@example.com" in r.data
    assert client.get("/webmail/", query_string={"otp": data["otp"], "token": data["token"]}).status_code == 403
    data = api.ok("getOTPassAndToken", username="ada", domain="example.com")
    clock.now += 61
    assert client.get("/webmail/", query_string={"otp": data["otp"], "token": data["token"]}).status_code == 403
    # the webmail otp is not a control-panel one
    data = api.ok("getOTPassAndToken", username="ada", domain="example.com")
    r = client.get("/processlogin.php", query_string={
        "u": base64.b64encode(b"ada@example.com").decode(), "p": base64.b64encode(data["otp"].encode()).decode()})
    assert r.status_code == 403
    assert api.refused("getOTPassAndToken", username="nobody", domain="example.com") == "User does not exist"
    other = create_app(username=USER, password=PASSWORD, clock=clock, webmail_url="https://al.example.test/")
    oapi = Api(other.test_client())
    oapi.ok("addDomain", newdomain="example.com")
    oapi.ok("addUser", username="ada", domain="example.com", account_type="1", password=MAILBOX_PASSWORD, quota="5")
    assert oapi.ok("getOTPassAndToken", username="ada", domain="example.com")["url"] == "https://al.example.test/"


def user_api(client, action: str, **form) -> dict:
    r = client.post("/json.php", data={"action": action, **form})
    assert r.status_code == 200, r.data
    return r.get_json()


def test_forwards_through_the_user_api_and_getallforwardsdomain(api, app):
    with_domain(api)
    for name in ("ada", "bob"):
        api.ok("addUser", username=name, domain="example.com", account_type="1", password=MAILBOX_PASSWORD, quota="5")
    client = app.test_client()
    assert user_api(client, "getForwards", token="made-up") == {"returncode": 0, "returndata": "Invalid or expired token"}
    otp = api.ok("getOTPass", username="ada", domain="example.com")
    # the Blesta module's userLogin: username, the one-time password as password, domain
    assert user_api(client, "login", username="ada", password="wrong", domain="example.com")["returncode"] == 0
    otp = api.ok("getOTPass", username="ada", domain="example.com")
    login = user_api(client, "login", username="ada", password=otp, domain="example.com")
    assert login["returncode"] == 1 and isinstance(login["returndata"], str)
    token = login["returndata"]
    assert user_api(client, "login", username="ada", password=otp, domain="example.com")["returncode"] == 0
    assert user_api(client, "addForward", token=token, newforward="ada@elsewhere.example")["returncode"] == 1
    assert user_api(client, "addForward", token=token, newforward="bob@example.com")["returncode"] == 1
    assert user_api(client, "addForward", token=token, newforward="bob@example.com")["returndata"] == \
        "Forward already exists"
    assert user_api(client, "addForward", token=token, newforward="not-an-address")["returncode"] == 0
    assert user_api(client, "getForwards", token=token)["returndata"] == [
        {"forward": "ada@elsewhere.example"}, {"forward": "bob@example.com"}]
    assert api.ok("getAllForwardsDomain", domain="example.com") == [
        {"username": "ada", "forward": "ada@elsewhere.example"}, {"username": "ada", "forward": "bob@example.com"}]
    assert state(app)[0]["native"]["forwards"] == api.ok("getAllForwardsDomain", domain="example.com")
    assert user_api(client, "removeForward", token=token, forward="bob@example.com")["returncode"] == 1
    assert user_api(client, "removeForward", token=token, forward="bob@example.com")["returndata"] == \
        "Forward does not exist"
    assert user_api(client, "makeCoffee", token=token)["returndata"] == "Invalid action"
    # a getOTPassAndToken token also works on the user API (unverified upstream)
    data = api.ok("getOTPassAndToken", username="bob", domain="example.com")
    assert user_api(client, "getForwards", token=data["token"])["returndata"] == []
    api.ok("removeUser", username="ada", domain="example.com")
    assert api.ok("getAllForwardsDomain", domain="example.com") == []
    assert user_api(client, "getForwards", token=token)["returndata"] == "Invalid or expired token"
    assert api.refused("getAllForwardsDomain", domain="nowhere.example") == "Domain not found"
    assert app.test_client().get("/_sim/calls").get_json()["calls"]["user:addForward"] == 4


def test_branding_actions_as_the_blesta_module_sends_them(api, app):
    with_domain(api)
    blank = {"brandname": "", "supportemail": "", "brandcolor": "", "brandlink": "", "basic_logo": "",
             "basic_logo_href": ""}
    assert api.ok("getDomainBrandInfo", domain="example.com") == blank
    api.ok("setDomainBrandingV2", domain="example.com", **{
        "brand[brandname]": "Acme Mail", "brand[supportemail]": "help@acme.example",
        "brand[brandcolor]": "1a2b3c"})
    info = api.ok("getDomainBrandInfo", domain="example.com")
    assert (info["brandname"], info["supportemail"], info["brandcolor"], info["basic_logo_href"]) == (
        "Acme Mail", "help@acme.example", "1a2b3c", "")
    api.ok("setDomainBrandingV2", domain="example.com", **{"brand[brandname]": "Acme Mail",
                                                          "brand[newlogo]": "\x89PNG-bytes"})
    assert api.ok("getDomainBrandInfo", domain="example.com")["basic_logo_href"].endswith("/branding/example.com.png")
    assert api.refused("setDomainBrandingV2", domain="example.com", **{"brand[brandcolor]": "blue"}) == \
        "Invalid brand color"
    assert api.refused("setDomainBrandingV2", domain="example.com", **{"brand[supportemail]": "x"}).startswith("Invalid")
    assert api.refused("setDomainBrandingV2", domain="example.com", brandname="flat") == "Missing parameter: brand"
    assert state(app)[0]["native"]["brand"]["brandname"] == "Acme Mail"
    api.ok("resetDomainBranding", domain="example.com")
    assert api.ok("getDomainBrandInfo", domain="example.com") == blank
    assert api.refused("getDomainBrandInfo", domain="nowhere.example") == "Domain not found"
    assert set(api.ok("getAdminBrandInfo")) == set(blank)


# --- /_sim/ ------------------------------------------------------------------------------------

def test_calls_are_counted_per_action(api, app):
    with_domain(api)
    api.ok("getAllDomains")
    api.ok("getAllDomains")
    calls = app.test_client().get("/_sim/calls").get_json()
    assert calls["calls"] == {"login": 1, "addDomain": 1, "getAllDomains": 2} and calls["total"] == 4


def test_mutate_changes_status_behind_our_back(api, app):
    with_domain(api)
    client = app.test_client()

    def mutate(**body):
        return client.post("/_sim/mutate", json={"account_id": "example.com", **body})

    assert mutate(status="suspended").get_json()["account"]["status"] == "suspended"
    assert api.ok("getAllDomains")[0]["active"] == "0"
    assert mutate(status="pending").get_json()["account"]["status"] == "pending"
    assert api("getDomainVerification", domain="example.com")["returncode"] == 1
    assert mutate(status="active").get_json()["account"]["status"] == "active"
    r = mutate(limits={"mailboxes": 3})
    assert r.status_code == 400 and r.get_json()["error"]["fields"] == {"limits": "cannot be mutated (allowed: status)"}
    assert client.post("/_sim/mutate", json={"account_id": "nope.example", "status": "active"}).status_code == 404
    assert mutate(status="deleted").get_json()["account"]["status"] == "deleted"
    assert state(app) == [] and api.ok("getAllDomains") == []


def test_faults_answer_in_the_api_shape(api, app):
    client = app.test_client()
    api.login()
    client.post("/_sim/faults", json={"error_rate": 1.0})
    r = api.raw("getAllDomains", token=api.token)
    assert r.status_code == 500 and r.get_json() == {"returncode": 0, "returndata": "simulated internal error"}
    client.post("/_sim/faults", json={"reset": True, "malformed_rate": 1.0})
    r = api.raw("getAllDomains", token=api.token)
    assert r.status_code == 200 and r.data.startswith(b'{"returncode": 1')
    with pytest.raises(ValueError):
        json.loads(r.data)
    client.post("/_sim/faults", json={"reset": True, "rate_limit_per_s": 1})
    api.raw("getAllDomains", token=api.token)
    r = api.raw("getAllDomains", token=api.token)
    assert r.status_code == 429 and r.headers["Retry-After"] == "1" and r.get_json()["returncode"] == 0


def test_reset_forgets_domains_and_tokens(api, app):
    with_domain(api)
    app.test_client().post("/_sim/reset")
    assert state(app) == []
    assert api.refused("getAllDomains") == "Invalid or expired token"


def test_concurrent_adds_of_one_domain_make_one():
    server = SimulatorServer(create_app(username=USER, password=PASSWORD)).start()
    try:
        url = f"{server.url}{ADMIN_PATH}"
        token = requests.post(url, data={"action": "login", "username": USER, "password": PASSWORD},
                              timeout=5).json()["returndata"]

        def add(_):
            return requests.post(url, data={"action": "addDomain", "token": token, "newdomain": "race.example"},
                                 timeout=5).json()["returncode"]
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(add, range(16)))
        assert sorted(results) == [0] * 15 + [1]
        assert len(requests.get(f"{server.url}/_sim/state", timeout=5).json()["accounts"]) == 1
    finally:
        server.stop()


def test_options_are_checked():
    with pytest.raises(ValueError):
        create_app(activation_delay=-1)
    with pytest.raises(ValueError):
        create_app(password="")
    create_app(api_key="ignored-option")          # `provisioner simulate` may pass it
