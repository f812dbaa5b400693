"""The PolarisMail simulator driven as PolarisMail's own modules drive the real API.

Every request here is a form post shaped as the published clients build it (the
same fields, values as PHP's ``http_build_query`` sends them, nested ``brand[...]``
keys, nulls left out), and every answer is checked against the fields those clients
read. Sources, per test, are the ones listed in docs/providers/polarismail.md
("Where the API facts come from"):

- [api] blesta/module-polarismail apis/polarismail_api.php (PolarisMail's own module:
  every request's action and fields, the hosts, the webmail and control-panel logins);
- [mod] blesta/module-polarismail polarismail.php and views/default/*.pdt (what the
  module reads from each answer);
- [go] DBG-Ventures/Polarismail-Go internal/*.go and internal/types/*.go (answer
  structs with their JSON field names).

What is still unverified (see the doc) is not asserted here beyond what these show.
"""
from __future__ import annotations

import base64

import pytest

from provisioner.simulators.polarismail import create_app

USER, PASSWORD = "published-reseller", "Published-Reseller-Pass-1"
MAILBOX_PASSWORD = "Published-Mailbox-9"
DOMAIN = "published.example"
ADMIN, USER_API = "/admin/json.php", "/json.php"          # [api] API_URL, API_USER_URL


@pytest.fixture
def client():
    return create_app(username=USER, password=PASSWORD).test_client()


def post(client, form: dict, path: str = ADMIN) -> dict:
    """One form-encoded POST, as [api] sendRequest makes it; the answer must be JSON."""
    r = client.post(path, data={k: str(v) for k, v in form.items() if v is not None})
    assert r.status_code == 200 and r.is_json, r.data
    body = r.get_json()
    assert {"returncode", "returndata"} <= set(body) and body["returncode"] in (0, 1)
    return body


@pytest.fixture
def token(client) -> str:
    # [api] login: action, username, password; [api] the token is returndata, a string
    body = post(client, {"action": "login", "username": USER, "password": PASSWORD})
    assert body["returncode"] == 1 and isinstance(body["returndata"], str) and body["returndata"]
    return body["returndata"]


@pytest.fixture
def domain(client, token) -> str:
    # [api] isDomainAvailable {token, domain}; addDomain {token, newdomain}
    assert post(client, {"action": "isDomainAvailable", "token": token, "domain": DOMAIN})["returncode"] == 1
    assert post(client, {"action": "addDomain", "token": token, "newdomain": DOMAIN})["returncode"] == 1
    # [mod] a domain already taken: isDomainAvailable answers returncode 0
    assert post(client, {"action": "isDomainAvailable", "token": token, "domain": DOMAIN})["returncode"] == 0
    return DOMAIN


def add_user(client, token: str, username: str = "ada", account_type: int = 1) -> None:
    # [api] addUser: every field the module sends, twofa_allowed and user_language included
    body = post(client, {"action": "addUser", "token": token, "username": username, "domain": DOMAIN,
                         "account_type": account_type, "password": MAILBOX_PASSWORD, "quota": 5,
                         "uname": "Ada Lovelace", "twofa_allowed": 1, "user_language": "en"})
    assert body["returncode"] == 1, body


def test_a_refused_login_is_returncode_zero_with_a_text(client):
    # [go] StatusResponse {returncode int, returndata string}
    body = post(client, {"action": "login", "username": USER, "password": "wrong"})
    assert body["returncode"] == 0 and isinstance(body["returndata"], str) and body["returndata"]


def test_domain_list_info_and_status_changes(client, token, domain):
    # [go] DomainListData: id, domain, isauditdomain, domaintype, active (all strings)
    [entry] = post(client, {"action": "getAllDomains", "token": token})["returndata"]
    assert {"id", "domain", "isauditdomain", "domaintype", "active"} <= set(entry)
    assert all(isinstance(entry[k], str) for k in ("id", "domain", "isauditdomain", "domaintype", "active"))
    assert entry["domain"] == domain and entry["active"] == "1"
    # [go] DomainInfoData: vusers/aliases/lists/totalQuota/expiry_notifications are numbers
    info = post(client, {"action": "getDomainInfo", "token": token, "domain": domain})["returndata"]
    for key in ("vusers", "aliases", "lists", "totalQuota", "expiry_notifications"):
        assert isinstance(info[key], int), key
    for key in ("dtzone", "catchall", "domaintype", "webmail", "active", "exchange_enabled",
                "audit_enabled", "localdelivery", "homecountry"):
        assert isinstance(info[key], str), key
    # [api] disableDomain / enableDomain: updateDomain {token, editdomainactive, domain}
    post(client, {"action": "updateDomain", "token": token, "editdomainactive": 0, "domain": domain})
    assert post(client, {"action": "getAllDomains", "token": token})["returndata"][0]["active"] == "0"
    post(client, {"action": "updateDomain", "token": token, "editdomainactive": 1, "domain": domain})
    assert post(client, {"action": "getAllDomains", "token": token})["returndata"][0]["active"] == "1"


def test_verification_pending_then_done():
    client = create_app(username=USER, password=PASSWORD, activation_delay=3600).test_client()
    token = post(client, {"action": "login", "username": USER, "password": PASSWORD})["returndata"]
    post(client, {"action": "addDomain", "token": token, "newdomain": DOMAIN})
    # [mod] returncode 1 while pending: the value in returndata, a text in message
    body = post(client, {"action": "getDomainVerification", "token": token, "domain": DOMAIN})
    assert body["returncode"] == 1 and isinstance(body["returndata"], str) and body["returndata"]
    assert isinstance(body["message"], str)
    assert client.post("/_sim/mutate", json={"account_id": DOMAIN, "status": "active"}).status_code == 200
    # [mod] returncode 0 once verified
    assert post(client, {"action": "getDomainVerification", "token": token, "domain": DOMAIN})["returncode"] == 0


def test_users_list_as_the_module_asks_for_them(client, token, domain):
    add_user(client, token)
    add_user(client, token, "bob", 2)
    # [api] getAllUsersDomain without pagination: slicing 0, offset 0, limit 0,
    # getOTPAndToken 0, showQuota 0
    body = post(client, {"action": "getAllUsersDomain", "token": token, "slicing": 0, "offset": 0, "limit": 0,
                         "getOTPAndToken": 0, "showQuota": 0, "domain": domain})
    users = body["returndata"]
    assert [u["username"] for u in users] == ["ada", "bob"]
    # [mod] tab_client_accounts reads username, email, uname, account_type, quota, usage,
    # disabled, lastauth_timestamp
    for user in users:
        assert {"username", "email", "uname", "account_type", "quota", "usage", "disabled",
                "lastauth_timestamp"} <= set(user)
    assert users[0]["email"] == f"ada@{domain}" and str(users[1]["account_type"]) == "2"
    # [api] with pagination: slicing 1 and the offset and limit asked for
    body = post(client, {"action": "getAllUsersDomain", "token": token, "slicing": 1, "offset": 1, "limit": 10,
                         "getOTPAndToken": 0, "showQuota": 1, "domain": domain})
    assert [u["username"] for u in body["returndata"]] == ["bob"]
    # [api] getUserInfo {token, username, domain}
    info = post(client, {"action": "getUserInfo", "token": token, "username": "ada", "domain": domain})
    assert info["returndata"]["username"] == "ada"
    # [api] updateUser: the module posts the user record with the edit* fields
    body = post(client, {"action": "updateUser", "token": token, "editusername": "ada", "editdomain": domain,
                         "edituname": "Ada L.", "editquota": 6, "editaccount_type": 1})
    assert body["returncode"] == 1
    # [api] disableUser / enableUser / removeUser {token, username, domain}
    for api_action in ("disableUser", "enableUser", "removeUser"):
        assert post(client, {"action": api_action, "token": token, "username": "bob",
                             "domain": domain})["returncode"] == 1


def test_control_panel_login_from_getotpass(client, token, domain):
    add_user(client, token)
    # [api] getOtPass {token, username, domain}: returndata is the one-time password itself
    body = post(client, {"action": "getOTPass", "token": token, "username": "ada", "domain": domain})
    assert body["returncode"] == 1 and isinstance(body["returndata"], str) and body["returndata"]
    # [api] getUserLoginUrl: USER_LOGIN_URL ?u=base64(username@domain)&p=base64(returndata)
    query = {"u": base64.b64encode(f"ada@{domain}".encode()).decode(),
             "p": base64.b64encode(body["returndata"].encode()).decode()}
    r = client.get("/processlogin.php", query_string=query)
    assert r.status_code == 200 and b"Control panel" in r.data


def test_webmail_login_from_getotpassandtoken(client, token, domain):
    add_user(client, token)
    # [api] getOtPassAndToken {token, username, domain}; getUserWebmailLoginUrl reads
    # returndata->otp, ->token and ->url
    body = post(client, {"action": "getOTPassAndToken", "token": token, "username": "ada", "domain": domain})
    assert body["returncode"] == 1
    data = body["returndata"]
    assert isinstance(data, dict) and {"otp", "token", "url"} <= set(data)
    assert all(isinstance(data[k], str) and data[k] for k in ("otp", "token", "url"))
    assert data["url"].startswith(("http://", "https://"))
    # how the webmail host takes otp and token is unverified: only that this one opens once
    path = "/" + data["url"].split("/", 3)[3]
    r = client.get(path, query_string={"otp": data["otp"], "token": data["token"]})
    assert r.status_code == 200 and b"Webmail" in r.data


def test_aliases_and_lists(client, token, domain):
    add_user(client, token)
    # [api] addAlias {token, alias, domain, forward}; getAllAliasesDomain {token, domain}
    assert post(client, {"action": "addAlias", "token": token, "alias": "info", "domain": domain,
                         "forward": f"ada@{domain}"})["returncode"] == 1
    [alias] = post(client, {"action": "getAllAliasesDomain", "token": token, "domain": domain})["returndata"]
    assert {"alias", "domain", "forward"} <= set(alias)                      # [mod] tab_client_aliases
    assert (alias["alias"], alias["forward"]) == ("info", f"ada@{domain}")
    # [api] addList {token, newlname, domain, newlisttype}; addListMember {token, editlname,
    # editdomain, newmember}; getListMembers / removeListMember {lname, domain[, member]}
    assert post(client, {"action": "addList", "token": token, "newlname": "team", "domain": domain,
                         "newlisttype": 1})["returncode"] == 1
    assert post(client, {"action": "addListMember", "token": token, "editlname": "team", "editdomain": domain,
                         "newmember": f"ada@{domain}"})["returncode"] == 1
    [entry] = post(client, {"action": "getAllListsDomain", "token": token, "domain": domain})["returndata"]
    assert {"lname", "listtype"} <= set(entry)                                # [mod] tab_client_lists
    [member] = post(client, {"action": "getListMembers", "token": token, "lname": "team",
                             "domain": domain})["returndata"]
    assert member["member"] == f"ada@{domain}"
    assert post(client, {"action": "removeListMember", "token": token, "lname": "team", "domain": domain,
                         "member": f"ada@{domain}"})["returncode"] == 1
    assert post(client, {"action": "removeList", "token": token, "lname": "team", "domain": domain})["returncode"] == 1
    assert post(client, {"action": "removeAlias", "token": token, "alias": "info",
                         "domain": domain})["returncode"] == 1


def test_forwards_through_the_user_api_listed_by_getallforwardsdomain(client, token, domain):
    add_user(client, token)
    # [mod] processClientForwardActions: getOtPass, then the user API's login with the
    # one-time password as password ([api] userLogin {username, password, domain})
    otp = post(client, {"action": "getOTPass", "token": token, "username": "ada", "domain": domain})["returndata"]
    login = post(client, {"action": "login", "username": "ada", "password": otp, "domain": domain}, USER_API)
    assert login["returncode"] == 1 and isinstance(login["returndata"], str)
    user_token = login["returndata"]
    # [api] addForward {token (user), newforward}; removeForward {token, forward}
    assert post(client, {"action": "addForward", "token": user_token,
                         "newforward": "ada@elsewhere.example"}, USER_API)["returncode"] == 1
    assert post(client, {"action": "getForwards", "token": user_token}, USER_API)["returncode"] == 1
    # [api] getAllForwardsDomain {domain, token}; [mod] tab_client_forwards reads username, forward
    [forward] = post(client, {"action": "getAllForwardsDomain", "domain": domain, "token": token})["returndata"]
    assert (forward["username"], forward["forward"]) == ("ada", "ada@elsewhere.example")
    assert post(client, {"action": "removeForward", "token": user_token,
                         "forward": "ada@elsewhere.example"}, USER_API)["returncode"] == 1
    assert post(client, {"action": "getAllForwardsDomain", "domain": domain, "token": token})["returndata"] == []


def test_dkim(client, token, domain):
    # [go] getDKIM returndata {dkim_enabled, dkim_host, dkim_key} (strings)
    dkim = post(client, {"action": "getDKIM", "token": token, "domain": domain})["returndata"]
    assert {"dkim_enabled", "dkim_host", "dkim_key"} <= set(dkim) and dkim["dkim_enabled"] == "0"
    # [go] enableDKIM: returndata a string, dkimhost and dkimkey at the top level
    body = post(client, {"action": "enableDKIM", "token": token, "domain": domain})
    assert isinstance(body["returndata"], str) and body["dkimhost"] and body["dkimkey"]
    assert post(client, {"action": "getDKIM", "token": token, "domain": domain})["returndata"]["dkim_enabled"] == "1"
    assert post(client, {"action": "disableDKIM", "token": token, "domain": domain})["returncode"] == 1


def test_branding_as_the_module_sets_reads_and_resets_it(client, token, domain):
    # [mod] tab_client_branding reads brandname, supportemail, brandcolor, basic_logo_href;
    # [go] AdminBrandInfoData adds basic_logo and brandlink
    fields = {"brandname", "supportemail", "brandcolor", "basic_logo_href"}
    info = post(client, {"action": "getDomainBrandInfo", "token": token, "domain": domain})["returndata"]
    assert fields <= set(info)
    # [api] setDomainBranding posts action setDomainBrandingV2 with brand as a PHP array;
    # [mod] the colour without "#", newlogo left out (null) when no file was uploaded
    body = post(client, {"action": "setDomainBrandingV2", "token": token, "domain": domain,
                         "brand[brandname]": "Published Mail", "brand[supportemail]": f"help@{domain}",
                         "brand[brandcolor]": "0a7cff", "brand[newlogo]": None})
    assert body["returncode"] == 1
    info = post(client, {"action": "getDomainBrandInfo", "token": token, "domain": domain})["returndata"]
    assert (info["brandname"], info["supportemail"], info["brandcolor"]) == (
        "Published Mail", f"help@{domain}", "0a7cff")
    # [mod] a refusal carries its text in returndata (getApiErrorMessage shows it)
    body = post(client, {"action": "setDomainBrandingV2", "token": token, "domain": domain,
                         "brand[brandcolor]": "not-a-colour"})
    assert body["returncode"] == 0 and isinstance(body["returndata"], str)
    # [api] resetDomainBranding {token, domain}
    assert post(client, {"action": "resetDomainBranding", "token": token, "domain": domain})["returncode"] == 1
    assert post(client, {"action": "getDomainBrandInfo", "token": token,
                         "domain": domain})["returndata"]["brandname"] == ""
    # [go] getAdminBrandInfo (no parameters besides the token)
    admin = post(client, {"action": "getAdminBrandInfo", "token": token})["returndata"]
    assert {"basic_logo", "basic_logo_href", "supportemail", "brandname", "brandlink", "brandcolor"} <= set(admin)
