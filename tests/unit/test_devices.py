"""provisioner.client.devices: manual settings, Apple profiles and autoconfig per provider."""
from __future__ import annotations

import plistlib
from xml.etree import ElementTree as ET

import pytest

from provisioner.client import devices
from provisioner.client.devices import (DEFAULTS, DeviceSettingsError, autoconfig_xml, build_settings,
                                        check_address, manual_settings, mobileconfig, mobileconfig_filename,
                                        settings_for_upstream, validate_upstream)
from provisioner.providers.registry import PROVIDERS

# provider kind (+ limits) -> (imap host, imap port, smtp host, smtp port, has CalDAV/CardDAV)
EXPECTED = {
    "polarismail": ({}, "imap.emailarray.com", 993, "smtp.emailarray.com", 465, False),
    "mailboxorg": ({}, "imap.mailbox.org", 993, "smtp.mailbox.org", 465, True),
    "qboxmail": ({}, "imap.qboxmail.com", 993, "smtp.qboxmail.com", 465, False),
    "resellerclub": ({"email_product": "enterpriseemail"}, "webmail.example.com", 993,
                     "webmail.example.com", 587, True),
    "resellerclub-eelite": ({"email_product": "eelite"}, "us2.imap.mailhostbox.com", 993,
                            "us2.smtp.mailhostbox.com", 587, False),
    "sandbox": ({}, "mail.example.com", 993, "mail.example.com", 587, False),
}


def _payloads(data: bytes) -> dict[str, dict]:
    profile = plistlib.loads(data)
    assert profile["PayloadType"] == "Configuration" and profile["PayloadVersion"] == 1
    return {p["PayloadType"]: p for p in profile["PayloadContent"]}


def test_every_provider_kind_has_defaults():
    assert set(PROVIDERS) <= {k.split("/")[0] for k in DEFAULTS}
    for kind in PROVIDERS:
        settings = build_settings(kind, "example.com")
        assert settings.smtp is not None and (settings.imap or settings.pop3)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_mobileconfig_parses_and_carries_the_providers_servers(case):
    limits, imap_host, imap_port, smtp_host, smtp_port, dav = EXPECTED[case]
    kind = case.split("-")[0]
    settings = build_settings(kind, "Example.com", limits=limits)
    data = mobileconfig(settings, "Alice@Example.com", display_name="Alice Liddell", organization="Acme Hosting")
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    profile = plistlib.loads(data)
    assert profile["PayloadOrganization"] == "Acme Hosting"
    payloads = _payloads(data)
    mail = payloads["com.apple.mail.managed"]
    assert mail["EmailAddress"] == "Alice@example.com"
    assert mail["EmailAccountName"] == "Alice Liddell"
    assert mail["EmailAccountType"] == "EmailTypeIMAP"
    assert (mail["IncomingMailServerHostName"], mail["IncomingMailServerPortNumber"]) == (imap_host, imap_port)
    assert (mail["OutgoingMailServerHostName"], mail["OutgoingMailServerPortNumber"]) == (smtp_host, smtp_port)
    assert mail["IncomingMailServerUseSSL"] is True and mail["OutgoingMailServerUseSSL"] is True
    assert mail["IncomingMailServerUsername"] == "Alice@example.com"
    assert mail["OutgoingPasswordSameAsIncomingPassword"] is True
    assert ("com.apple.caldav.account" in payloads) is dav
    assert ("com.apple.carddav.account" in payloads) is dav
    # unique identifiers and UUIDs, stable across downloads (a new download replaces the profile)
    ids = [profile["PayloadIdentifier"]] + [p["PayloadIdentifier"] for p in profile["PayloadContent"]]
    uuids = [profile["PayloadUUID"]] + [p["PayloadUUID"] for p in profile["PayloadContent"]]
    assert len(set(ids)) == len(ids) and len(set(uuids)) == len(uuids)
    assert profile["PayloadIdentifier"] == "com.example.mail.alice"
    assert mobileconfig(settings, "Alice@Example.com", display_name="Alice Liddell",
                        organization="Acme Hosting") == data


def test_mobileconfig_never_carries_a_password():
    settings = build_settings("mailboxorg", "example.com")
    data = mobileconfig(settings, "bob@example.com")
    for payload in plistlib.loads(data)["PayloadContent"]:
        assert not [k for k in payload if "password" in k.lower() and k != "OutgoingPasswordSameAsIncomingPassword"]
    assert b"Password</key>\n\t\t\t<string>" not in data


def test_mobileconfig_caldav_carddav_for_open_xchange():
    payloads = _payloads(mobileconfig(build_settings("mailboxorg", "example.com"), "bob@example.com"))
    cal, card = payloads["com.apple.caldav.account"], payloads["com.apple.carddav.account"]
    assert (cal["CalDAVHostName"], cal["CalDAVPort"], cal["CalDAVUseSSL"]) == ("dav.mailbox.org", 443, True)
    assert cal["CalDAVPrincipalURL"] == "https://dav.mailbox.org/caldav/"
    assert cal["CalDAVUsername"] == "bob@example.com"
    assert (card["CardDAVHostName"], card["CardDAVPort"]) == ("dav.mailbox.org", 443)
    assert card["CardDAVPrincipalURL"] == "https://dav.mailbox.org/carddav/"


def test_dav_only_for_the_mailbox_types_that_have_it():
    settings = build_settings("polarismail", "example.com", {"caldav": "https://dav.emailarray.example/cal/",
                                                             "carddav": "https://dav.emailarray.example/card/"})
    assert settings.dav_mailbox_types == ("enhanced",)
    basic = _payloads(mobileconfig(settings, "a@example.com", mailbox_type="basic"))
    enhanced = _payloads(mobileconfig(settings, "a@example.com", mailbox_type="enhanced"))
    assert "com.apple.caldav.account" not in basic
    assert enhanced["com.apple.caldav.account"]["CalDAVHostName"] == "dav.emailarray.example"
    assert manual_settings(settings, "a@example.com", "basic")["caldav"] is None
    assert manual_settings(settings, "a@example.com", "enhanced")["carddav"]["url"] == "https://dav.emailarray.example/card/"
    # a domain-wide autoconfig cannot tell types apart: no DAV there
    root = ET.fromstring(autoconfig_xml(settings))
    assert root.find("calendar") is None


def test_mobileconfig_refuses_an_address_of_another_domain():
    settings = build_settings("qboxmail", "example.com")
    with pytest.raises(ValueError, match="must be at example.com"):
        mobileconfig(settings, "eve@other.example")
    with pytest.raises(ValueError):
        mobileconfig(settings, "not an address")


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_autoconfig_parses_and_has_the_right_hosts(case):
    limits, imap_host, imap_port, smtp_host, smtp_port, dav = EXPECTED[case]
    settings = build_settings(case.split("-")[0], "example.com", limits=limits)
    data = autoconfig_xml(settings)
    root = ET.fromstring(data)
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    provider = root.find("emailProvider")
    assert provider.get("id") == "example.com" and provider.findtext("domain") == "example.com"
    imap = provider.find("incomingServer[@type='imap']")
    assert (imap.findtext("hostname"), imap.findtext("port")) == (imap_host, str(imap_port))
    assert imap.findtext("socketType") == "SSL"
    assert imap.findtext("username") == "%EMAILADDRESS%"
    smtp = provider.find("outgoingServer[@type='smtp']")
    assert (smtp.findtext("hostname"), smtp.findtext("port")) == (smtp_host, str(smtp_port))
    assert smtp.findtext("socketType") == ("SSL" if smtp_port == 465 else "STARTTLS")
    assert smtp.findtext("authentication") == "password-cleartext"
    assert (root.find("calendar[@type='caldav']") is not None) is dav
    assert b"password</" not in data.lower().replace(b"password-cleartext", b"")


def test_autoconfig_pop3_and_webmail():
    root = ET.fromstring(autoconfig_xml(build_settings("polarismail", "example.com")))
    pop = root.find("emailProvider/incomingServer[@type='pop3']")
    assert (pop.findtext("hostname"), pop.findtext("port")) == ("pop.emailarray.com", "995")
    root = ET.fromstring(autoconfig_xml(build_settings("qboxmail", "example.com")))
    assert root.find("webMail/loginPage").get("url") == "https://webmail.qboxmail.com/"


def test_manual_settings():
    out = manual_settings(build_settings("polarismail", "example.com"), "carol@example.com")
    assert out["imap"] == {"host": "imap.emailarray.com", "port": 993, "security": "ssl",
                           "security_label": "SSL/TLS", "username": "carol@example.com",
                           "authentication": "normal password"}
    assert out["smtp"]["requires_authentication"] is True and out["smtp"]["port"] == 465
    assert out["pop3"]["host"] == "pop.emailarray.com"
    assert out["exchange"] is None and out["caldav"] is None


def test_enterprise_email_exchange_settings_follow_the_seed():
    # Seed 003: Server = the webmail FQDN, Domain = the domain, Username = the part before the @.
    settings = build_settings("resellerclub", "example.com")
    out = manual_settings(settings, "dave@example.com")
    assert out["exchange"] == {"server": "webmail.example.com", "domain": "example.com",
                               "username": "dave", "email": "dave@example.com"}
    assert settings.unverified is True          # operators should confirm these hosts
    assert "unverified" not in out              # customers are not told about it


def test_upstreams_yaml_overrides():
    config = {"provider": "qboxmail", "base_url": "x", "api_token": "t",
              "client_settings": {"imap": {"host": "imap.{domain}"}, "pop3": None,
                                  "smtp": {"host": "smtp.example.net", "port": 587, "security": "starttls"},
                                  "username": "local_part", "webmail": "https://mail.{domain}/"}}
    settings = settings_for_upstream(config, "example.org")
    assert settings.imap == devices.MailServer("imap.example.org", 993, "ssl")   # port and security kept
    assert settings.smtp == devices.MailServer("smtp.example.net", 587, "starttls")
    assert settings.webmail == "https://mail.example.org/"
    root = ET.fromstring(autoconfig_xml(settings))
    assert root.findtext("emailProvider/incomingServer/username") == "%EMAILLOCALPART%"
    assert manual_settings(settings, "x@example.org")["imap"]["username"] == "x"
    assert validate_upstream(config) == []


@pytest.mark.parametrize("overrides, message", [
    ({"imap": {"host": "imap.x", "port": "abc", "security": "ssl"}}, "client_settings.imap.port"),
    ({"imap": {"host": "imap.x", "port": 993, "security": "tls"}}, "client_settings.imap.security"),
    ({"imap": {"host": "bad host!", "port": 993, "security": "ssl"}}, "client_settings.imap.host"),
    ({"imap": "imap.x"}, "client_settings.imap"),
    ({"caldav": "ftp://dav"}, "client_settings.caldav"),
    ({"usrname": "email"}, "unknown key 'usrname'"),
    ({"username": "uid"}, "client_settings.username"),
    ({"smtp": None}, "outgoing (smtp) server"),
    ({"dav_mailbox_types": "enhanced"}, "dav_mailbox_types"),
])
def test_bad_overrides_name_the_key(overrides, message):
    with pytest.raises(DeviceSettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_settings("qboxmail", "example.com", overrides)
    assert validate_upstream({"provider": "qboxmail", "client_settings": overrides})


def test_check_address_and_filename():
    assert check_address("Bob@Example.COM", "example.com") == "Bob@example.com"
    with pytest.raises(ValueError):
        check_address("bob@", "example.com")
    assert mobileconfig_filename("bob.smith@example.com") == "bob-smith-at-example-com.mobileconfig"
