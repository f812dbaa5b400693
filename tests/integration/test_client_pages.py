"""The client area's pages through Flask's test client, as a browser without JavaScript:
plain GETs, form POSTs and redirects; labels on every input, errors next to their
fields, plain-words limit messages, a banner when suspended."""
from __future__ import annotations

import html
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from provisioner.client import sso
from provisioner.models import Service
from provisioner.providers.errors import Unavailable
from tests.integration.test_client_api import (PASSWORD, POLARIS_OPTIONS, app, build_app,  # noqa: F401
                                               load, make_service, polaris_runtime, send_event)


class Page(HTMLParser):
    """Just enough of the DOM: elements with their attributes and text."""

    def __init__(self, text: str):
        super().__init__()
        self.elements: list[dict] = []
        self._open: list[dict] = []
        self.source = text
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        element = {"tag": tag, **{k: (v if v is not None else "") for k, v in attrs}, "text": ""}
        self.elements.append(element)
        if tag not in ("input", "meta", "link", "br", "img"):
            self._open.append(element)

    def handle_endtag(self, tag):
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i]["tag"] == tag:
                del self._open[i:]
                break

    def handle_data(self, data):
        for element in self._open:
            element["text"] += data

    def find(self, tag: str | None = None, **attrs) -> list[dict]:
        return [e for e in self.elements if (tag is None or e["tag"] == tag)
                and all(e.get(k.rstrip("_")) == v for k, v in attrs.items())]

    def one(self, tag: str | None = None, **attrs) -> dict:
        found = self.find(tag, **attrs)
        assert len(found) == 1, (tag, attrs, found)
        return found[0]

    def text(self) -> str:
        return " ".join(html.unescape(self.source).split())

    def csrf(self) -> str:
        return self.find("input", name="csrf_token")[0]["value"]


class Browser:
    def __init__(self, app, runtime, service_id: str):
        self.http = app.test_client()
        url, _ = sso.issue_token(runtime, service_id)
        r = self.http.get(urlsplit(url).path)
        assert r.status_code == 303
        self.page = self.get(r.headers["Location"])

    def get(self, path: str, status: int = 200) -> Page:
        r = self.http.get(path)
        assert r.status_code == status, (path, r.status_code, r.get_data(as_text=True)[:500])
        self.page = Page(r.get_data(as_text=True))
        return self.page

    def submit(self, action: str, fields: dict, status: int = 303) -> Page:
        """POST a form as a browser does (with the page's CSRF token), following a redirect."""
        r = self.http.post(action, data={"csrf_token": self.page.csrf(), **fields})
        assert r.status_code == status, (action, r.status_code, r.get_data(as_text=True)[:800])
        if status == 303:
            return self.get(r.headers["Location"])
        self.page = Page(r.get_data(as_text=True))
        return self.page


def assert_accessible_form(page: Page) -> None:
    """Every visible input has a label, and each error is tied to its field."""
    for element in page.elements:
        if element["tag"] in ("input", "select", "textarea") and element.get("type") not in ("hidden", "submit"):
            assert element.get("id"), element
            assert page.find("label", for_=element["id"]), f"no label for {element}"
            for ref in element.get("aria-describedby", "").split():
                assert page.find(id=ref), f"{element['id']} refers to missing #{ref}"


def error_of(page: Page, field_id: str) -> str:
    """The message tied to a field: present, referenced by aria-describedby, aria-invalid set."""
    field = page.one(id=field_id)
    assert field.get("aria-invalid") == "true", field
    error_id = f"{field_id}-error"
    assert error_id in field.get("aria-describedby", "").split(), field
    return " ".join(page.one(id=error_id)["text"].split())


@pytest.fixture
def service(client, signer, worker, runtime):
    return make_service(client, signer, worker, runtime, "601", "pages.example")


@pytest.fixture
def browser(app, runtime, service) -> Browser:
    return Browser(app, runtime, service.id)


def test_overview(browser, service):
    page = browser.page
    text = page.text()
    assert "pages.example" in text and "Active" in text and service.next_due_date.isoformat() in text
    meter = page.one("meter", id="limit-mailboxes")
    assert meter["max"] == "3" and meter["value"] == "0"
    assert page.find("label", for_="limit-mailboxes")
    assert "0 of 3 used" in text and "up to 10 GB" in text
    nav = [e["text"].strip() for e in page.find("a") if e.get("href", "").startswith("/client/")
           and e["text"].strip() in ("Overview", "Mailboxes", "Aliases", "Lists")]
    assert nav[:4] == ["Overview", "Mailboxes", "Aliases", "Lists"]
    assert page.one("a", href="/client/")["aria-current"] == "page"
    assert "Open webmail" not in text                                   # the sandbox has no SSO
    assert page.find("meta", name="viewport")
    assert browser.http.get("/client/static/client.css").status_code == 200
    assert browser.http.get("/client/").headers["Content-Security-Policy"].startswith("default-src 'self'")


def limit_rows(page: Page) -> dict[str, tuple[str, list[str]]]:
    """The overview's limit rows by their first word: (text, classes)."""
    return {e["text"].split()[0]: (" ".join(e["text"].split()), e["class"].split())
            for e in page.find("li") if "limit" in e.get("class", "").split()}


def test_what_the_plan_leaves_out_says_so_and_gets_no_link(client, signer, worker, runtime, app):
    # Aliases, lists and Enhanced mailboxes limited to 0: the plan does not include them.
    make_service(client, signer, worker, runtime, "602", "small.example",
                 options={"Total Mailboxes": 2, "Mailbox Quota (GB)": 5})
    page = Browser(app, runtime, "602").page
    text = page.text()
    assert "0 of 0" not in text and "0 of 2 used" in text
    rows = limit_rows(page)
    for label in ("Aliases", "Distribution", "Enhanced"):
        text_, classes = rows[label]
        assert text_.endswith("not included in your plan") and "limit-full" not in classes, rows
    assert not page.find("meter", id="limit-aliases")
    links = {e["text"].strip() for e in page.find("a") if e.get("href", "").startswith("/client/")}
    assert "Mailboxes" in links
    assert not links & {"Aliases", "Lists", "Distribution lists"}, links


def test_a_left_out_thing_still_in_use_keeps_its_page(client, signer, worker, runtime, app):
    make_service(client, signer, worker, runtime, "603", "downgraded.example",
                 options={"Total Mailboxes": 2, "Mailbox Quota (GB)": 5})
    with runtime.db.transaction() as s:
        row = s.get(Service, "603")
        row.usage = {**(row.usage or {}), "aliases": 1}
    page = Browser(app, runtime, "603").page
    text_, classes = limit_rows(page)["Aliases"]
    assert text_ == "Aliases 1 in use, not included in your plan" and "limit-full" in classes
    assert page.find("a", href="/client/aliases")
    assert not page.find("a", href="/client/lists")


def test_add_a_mailbox_through_the_form(browser, runtime, service):
    page = browser.get("/client/mailboxes")
    assert "There are no mailboxes yet." in page.text()
    page = browser.get("/client/mailboxes/new")
    assert_accessible_form(page)
    assert [o["value"] for o in page.find("option")] == ["basic", "enhanced"]

    page = browser.submit("/client/mailboxes/new", {
        "local_part": "ada", "name": "Ada Lovelace", "password": PASSWORD, "password_confirm": PASSWORD,
        "type": "basic", "quota_gb": "5"})
    assert "Mailbox ada@pages.example was added." in page.text()
    row = page.text()
    assert "ada@pages.example" in row and "Ada Lovelace" in row and "5 GB" in row
    assert load(runtime, service.id).usage["mailboxes"] == 1

    page = browser.get("/client/mailboxes?q=lovelace")
    assert "ada@pages.example" in page.text()
    page = browser.get("/client/mailboxes?q=nobody")
    assert "No mailbox matches “nobody”." in page.text()


def test_field_errors_are_next_to_their_fields(browser):
    browser.get("/client/mailboxes/new")
    page = browser.submit("/client/mailboxes/new", {
        "local_part": "not valid", "password": "short", "password_confirm": "short", "quota_gb": ""},
        status=422)
    assert_accessible_form(page)
    assert "letters, digits" in error_of(page, "f-local_part")
    assert "at least 10 characters" in error_of(page, "f-password")
    assert page.one(id="f-local_part")["value"] == "not valid"          # kept for correcting
    assert page.one(id="f-password").get("value") is None               # never echoed

    page = browser.submit("/client/mailboxes/new", {
        "local_part": "ada", "password": PASSWORD, "password_confirm": PASSWORD + "x"}, status=422)
    assert "not the same" in error_of(page, "f-password_confirm")


def test_hitting_limits_shows_plain_words(browser, runtime, service):
    browser.get("/client/mailboxes/new")
    page = browser.submit("/client/mailboxes/new", {
        "local_part": "big", "password": PASSWORD, "password_confirm": PASSWORD, "quota_gb": "11"}, status=422)
    assert error_of(page, "f-quota_gb") == "A mailbox can have at most 10 GB on your plan."

    for name in ("a1", "a2"):
        browser.submit("/client/mailboxes/new", {"local_part": name, "password": PASSWORD,
                                                 "password_confirm": PASSWORD})
        browser.get("/client/mailboxes/new")
    page = browser.submit("/client/mailboxes/new", {"local_part": "e1", "password": PASSWORD,
                                                    "password_confirm": PASSWORD, "type": "enhanced"})
    browser.get("/client/mailboxes/new")
    page = browser.submit("/client/mailboxes/new", {"local_part": "a4", "password": PASSWORD,
                                                    "password_confirm": PASSWORD}, status=422)
    alert = page.one(id="form-error")
    assert alert["role"] == "alert" and alert["text"].strip() == "You have used all 3 mailboxes of your plan."
    assert page.one("form", action="/client/mailboxes/new")["aria-describedby"] == "form-error"
    page = browser.get("/client/mailboxes")
    assert "You have used all 3 mailboxes of your plan." in page.text()

    # The type limit shows next to the type field.
    boxes = browser.http.get("/client/api/v1/mailboxes").get_json()["items"]
    first = next(b for b in boxes if b["type"] == "basic")
    browser.get(f"/client/mailboxes/{first['id']}")
    page = browser.submit(f"/client/mailboxes/{first['id']}/settings",
                          {"name": "", "quota_gb": "5", "type": "enhanced"}, status=422)
    assert error_of(page, "settings-type") == "You have used the 1 Enhanced mailbox of your plan."


def test_manage_a_mailbox(browser, runtime, service, sandbox_sim):
    browser.get("/client/mailboxes/new")
    browser.submit("/client/mailboxes/new", {"local_part": "ada", "password": PASSWORD,
                                             "password_confirm": PASSWORD})
    [box] = browser.http.get("/client/api/v1/mailboxes").get_json()["items"]
    path = f"/client/mailboxes/{box['id']}"
    page = browser.get(path)
    assert_accessible_form(page)

    page = browser.submit(f"{path}/settings", {"name": "Ada King", "quota_gb": "7", "type": "basic"})
    assert "The settings of ada@pages.example were saved." in page.text() and "7 GB" in page.text()
    page = browser.submit(f"{path}/password", {"password": "New-Harbour-4096", "password_confirm": "New-Harbour-4096"})
    assert "The password of ada@pages.example was changed." in page.text()
    page = browser.submit(f"{path}/password", {"password": "weak", "password_confirm": "weak"}, status=422)
    assert "at least 10 characters" in error_of(page, "pw-password")
    page = browser.submit(f"{path}/enabled", {"enabled": "0"})
    assert "Mailbox ada@pages.example was disabled" in page.text() and "Enable the mailbox" in page.text()
    page = browser.submit(f"{path}/enabled", {"enabled": "1"})
    assert "Disable the mailbox" in page.text()

    page = browser.get(f"{path}/delete")
    assert "Delete the mailbox ada@pages.example?" in page.text()
    assert "cannot be undone" in page.text()
    assert browser.http.get("/client/api/v1/mailboxes").get_json()["total"] == 1   # a GET deletes nothing
    page = browser.submit(f"{path}/delete", {})
    assert "Mailbox ada@pages.example was deleted." in page.text()
    assert "There are no mailboxes yet." in page.text()
    browser.get(path, status=404)


def test_aliases_through_the_forms(browser):
    page = browser.get("/client/aliases")
    assert_accessible_form(page)
    page = browser.submit("/client/aliases", {"local_part": "info", "target": "ada@elsewhere.example"})
    assert "Alias info@pages.example was added." in page.text()
    assert "ada@elsewhere.example" in page.text()
    page = browser.submit("/client/aliases", {"local_part": "sales", "target": "nope"}, status=422)
    assert "Enter the e-mail address" in error_of(page, "f-target")
    assert page.one(id="f-local_part")["value"] == "sales"
    browser.submit("/client/aliases", {"local_part": "sales", "target": "ada@elsewhere.example"})
    page = browser.submit("/client/aliases", {"local_part": "help", "target": "ada@elsewhere.example"}, status=422)
    assert page.one(id="form-error")["text"].strip() == "You have used all 2 aliases of your plan."

    alias = browser.http.get("/client/api/v1/aliases?q=info").get_json()["items"][0]
    page = browser.get(f"/client/aliases/{alias['id']}/delete")
    assert "Delete the alias info@pages.example?" in page.text()
    page = browser.submit(f"/client/aliases/{alias['id']}/delete", {})
    assert "Alias info@pages.example was deleted." in page.text()
    assert "info@pages.example" not in page.text().replace("Alias info@pages.example was deleted.", "")


def test_lists_through_the_forms(browser):
    page = browser.get("/client/lists/new")
    assert_accessible_form(page)
    page = browser.submit("/client/lists/new", {"local_part": "team",
                                                "members": "a@one.example\nB@two.example\n\n"})
    assert "Distribution list team@pages.example was added." in page.text()
    assert "a@one.example" in page.text() and "b@two.example" in page.text() and "2 members" in page.text()

    lst = browser.http.get("/client/api/v1/lists").get_json()["items"][0]
    page = browser.get(f"/client/lists/{lst['id']}")
    assert page.one("textarea", id="f-members")["text"] == "a@one.example\nb@two.example"
    page = browser.submit(f"/client/lists/{lst['id']}", {"members": "c@three.example"})
    assert "The members of team@pages.example were saved." in page.text()
    page = browser.submit(f"/client/lists/{lst['id']}", {"members": "c@three.example\nnot an address"}, status=422)
    assert "Not an e-mail address" in error_of(page, "f-members")

    browser.get("/client/lists/new")
    page = browser.submit("/client/lists/new", {"local_part": "all", "members": ""}, status=422)
    assert page.one(id="form-error")["text"].strip() == "You have used the 1 distribution list of your plan."

    browser.get(f"/client/lists/{lst['id']}/delete")
    page = browser.submit(f"/client/lists/{lst['id']}/delete", {})
    assert "Distribution list team@pages.example was deleted." in page.text()
    assert "There are no distribution lists yet." in page.text()


def test_suspended_banner_and_read_only(browser, client, signer, worker, runtime, service):
    send_event(client, signer, worker, "service.suspend", service.id, service.domain,
               suspend_reason="Overdue on Payment")
    page = browser.get("/client/")
    banner = page.find(class_="banner banner-suspended")[0]
    assert banner["role"] == "alert"
    assert "Your service is suspended: Overdue on Payment." in " ".join(banner["text"].split())
    page = browser.get("/client/mailboxes")
    assert "Add a mailbox" not in page.text()
    page = browser.get("/client/aliases")
    assert not page.find("form", action="/client/aliases")
    page = browser.submit("/client/mailboxes/new", {"local_part": "ada", "password": PASSWORD,
                                                    "password_confirm": PASSWORD}, status=409)
    assert "Your service is suspended (Overdue on Payment)" in page.one(id="form-error")["text"]


def test_an_upstream_failure_shows_a_clear_message(browser, runtime, monkeypatch):
    def down(*_a, **_kw):
        raise Unavailable("sandbox: timeout talking to 10.1.2.3")

    monkeypatch.setattr(runtime.provider("sandbox"), "create_alias", down)
    browser.get("/client/aliases")
    page = browser.submit("/client/aliases", {"local_part": "info", "target": "a@b.example"}, status=503)
    message = page.one(id="form-error")["text"].strip()
    assert message.startswith("The e-mail platform is temporarily unavailable.")
    assert "10.1.2.3" not in page.source
    assert page.one(id="f-local_part")["value"] == "info"
    monkeypatch.setattr(runtime.provider("sandbox"), "list_mailboxes", down)
    page = browser.get("/client/mailboxes", status=503)
    assert "temporarily unavailable" in page.text()


def test_other_pages_join_the_nav(app, runtime, service):
    app.extensions["client_nav"].append(("client.lists", "Extra page"))
    app.extensions["client_nav"].append(("client.overview", "DNS records", "dns"))
    page = Browser(app, runtime, service.id).page
    labels = [a["text"].strip() for a in page.find("a") if a.get("href", "").startswith("/client")]
    assert "Extra page" in labels and "DNS records" not in labels    # the sandbox has no DNS records


def test_signed_out_pages(app, browser):
    page = Page(app.test_client().get("/client/mailboxes").get_data(as_text=True))
    assert "Please sign in again" in page.text()
    assert app.test_client().get("/client/").status_code == 401
    page = browser.submit("/client/logout", {}, status=200)
    assert "You have signed out" in page.text()
    browser.get("/client/", status=401)


def test_polarismail_overview_opens_webmail(polaris_runtime, signer):
    from provisioner.worker import Worker
    runtime = polaris_runtime
    app = build_app(runtime)
    make_service(app.test_client(), signer, Worker(runtime, concurrency=1, name="w"), runtime, "611",
                 "polaris-pages.example", product_id="30", options=POLARIS_OPTIONS)
    browser = Browser(app, runtime, "611")
    browser.get("/client/mailboxes/new")
    browser.submit("/client/mailboxes/new", {"local_part": "ada", "password": PASSWORD,
                                             "password_confirm": PASSWORD, "type": "enhanced"})
    page = browser.get("/client/")
    assert_accessible_form(page)
    assert [o["value"] for o in page.find("option")] == ["ada"]
    # one labelled button per sign-on, each naming what it opens
    buttons = [(b.get("name"), b.get("value"), b["text"].strip()) for b in page.find("button")
               if b.get("name") == "target"]
    assert buttons == [("target", "webmail", "Open webmail"),
                       ("target", "control_panel", "Open mailbox control panel")]
    assert "Sign in to a mailbox" in page.text()
    r = browser.http.post("/client/webmail", data={"csrf_token": page.csrf(), "mailbox": "ada", "target": "webmail"})
    assert r.status_code == 303 and r.headers["Location"].startswith(f"{runtime.polaris_url}/webmail/?")
    r = browser.http.post("/client/webmail", data={"csrf_token": page.csrf(), "mailbox": "ada"})
    assert r.status_code == 303 and r.headers["Location"].startswith(f"{runtime.polaris_url}/webmail/?")
    r = browser.http.post("/client/webmail", data={"csrf_token": page.csrf(), "mailbox": "ada",
                                                  "target": "control_panel"})
    assert r.status_code == 303 and r.headers["Location"].startswith(f"{runtime.polaris_url}/processlogin.php?u=")
    r = browser.http.post("/client/webmail", data={"csrf_token": page.csrf(), "mailbox": "ada", "target": "root"})
    assert r.status_code == 422 and "The sign-in could not be opened" in r.get_data(as_text=True)
