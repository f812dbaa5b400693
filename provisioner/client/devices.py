"""Device set-up for the client area: what a mail app needs to reach a mailbox.

For a service's provider this gives:

- :func:`manual_settings`: IMAP / POP3 / SMTP host, port, security and username
  (plus CalDAV / CardDAV, Exchange ActiveSync and webmail where the provider has
  them) for one mailbox;
- :func:`mobileconfig`: an Apple configuration profile (plist XML) with a
  ``com.apple.mail.managed`` payload and, where the provider has them, CalDAV
  and CardDAV payloads;
- :func:`autoconfig_xml`: Thunderbird-style autoconfig (``config-v1.1.xml``,
  ``clientConfig`` with ``incomingServer`` / ``outgoingServer``) for the domain.

None of these ever contains a password: profiles ask for it on install
(Apple) or on first use (Thunderbird).

Server settings per provider kind are :data:`DEFAULTS`. An upstream of
``upstreams.yaml`` may override any of them with a ``client_settings`` block
(hosts may use ``{domain}`` for the customer's domain)::

    qboxmail:
      provider: qboxmail
      ...
      client_settings:
        imap: {host: imap.qboxmail.com, port: 993, security: ssl}
        pop3: null                      # do not offer POP3
        smtp: {host: smtp.qboxmail.com, port: 465, security: ssl}
        caldav: https://dav.example.net/caldav/
        carddav: https://dav.example.net/carddav/
        activesync: null                # {host, username: email|local_part}
        webmail: https://webmail.qboxmail.com/
        username: email                 # email | local_part (IMAP/SMTP/DAV login)
        dav_mailbox_types: [enhanced]   # only these mailbox types get CalDAV/CardDAV
        label: Qboxmail                 # how the profile names the provider

ResellerClub's defaults depend on the product line (``email_product`` limit:
``enterpriseemail``, Open-Xchange, or ``eelite``, Business Email).
"""
from __future__ import annotations

import copy
import plistlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

SECURITIES = {"ssl": "SSL/TLS", "starttls": "STARTTLS", "none": "None"}
USERNAMES = ("email", "local_part")
MOBILECONFIG_TYPE = "application/x-apple-aspen-config"
AUTOCONFIG_TYPE = "application/xml; charset=utf-8"
_UUID_NAMESPACE = uuid.UUID("6b1e7f64-8f0e-4d7e-9a43-2f7c1c0d5a11")
_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")

#: Server settings per provider kind (and variant). ``unverified`` marks values
#: that no public material confirmed: set ``client_settings`` to correct them.
DEFAULTS: dict[str, dict[str, Any]] = {
    # The reference upstream: a generic host under the customer's domain.
    "sandbox": {
        "label": "Sandbox Mail",
        "imap": {"host": "mail.{domain}", "port": 993, "security": "ssl"},
        "pop3": None,
        "smtp": {"host": "mail.{domain}", "port": 587, "security": "starttls"},
        "unverified": True,
    },
    # PolarisMail / EmailArray: their setup guides (imap/pop/smtp.emailarray.com).
    "polarismail": {
        "label": "PolarisMail",
        "imap": {"host": "imap.emailarray.com", "port": 993, "security": "ssl"},
        "pop3": {"host": "pop.emailarray.com", "port": 995, "security": "ssl"},
        "smtp": {"host": "smtp.emailarray.com", "port": 465, "security": "ssl"},
        # CalDAV/CardDAV come with Enhanced mailboxes; their URL is not published:
        # set client_settings.caldav / carddav to offer them.
        "dav_mailbox_types": ["enhanced"],
    },
    # mailbox.org (Open-Xchange): its knowledge base (imap/pop3/smtp/dav.mailbox.org).
    "mailboxorg": {
        "label": "mailbox.org",
        "imap": {"host": "imap.mailbox.org", "port": 993, "security": "ssl"},
        "pop3": {"host": "pop3.mailbox.org", "port": 995, "security": "ssl"},
        "smtp": {"host": "smtp.mailbox.org", "port": 465, "security": "ssl"},
        "caldav": "https://dav.mailbox.org/caldav/",
        "carddav": "https://dav.mailbox.org/carddav/",
        "webmail": "https://login.mailbox.org/",
    },
    # Qboxmail hosting (imap/smtp/webmail.qboxmail.com, as customers configure them).
    "qboxmail": {
        "label": "Qboxmail",
        "imap": {"host": "imap.qboxmail.com", "port": 993, "security": "ssl"},
        "pop3": None,
        "smtp": {"host": "smtp.qboxmail.com", "port": 465, "security": "ssl"},
        "webmail": "https://webmail.qboxmail.com/",
    },
    # Modoboa is self-hosted: its IMAP/SMTP hosts are the operator's own. These are the
    # usual Dovecot/Postfix ports under a host of the customer's domain; set
    # client_settings in upstreams.yaml to the instance's real mail host.
    "modoboa": {
        "label": "Mail",
        "imap": {"host": "mail.{domain}", "port": 993, "security": "ssl"},
        "pop3": None,
        "smtp": {"host": "mail.{domain}", "port": 587, "security": "starttls"},
        "unverified": True,
    },
    # ResellerClub Enterprise Email (Open-Xchange App Suite). Seed 003: the Exchange
    # (ActiveSync) server is the webmail host under the customer's domain (the
    # webmail CNAME of its DNS records), the username the part before the @, the
    # domain the customer's. IMAP/SMTP/DAV on that host are unverified.
    "resellerclub": {
        "label": "Enterprise Email",
        "imap": {"host": "webmail.{domain}", "port": 993, "security": "ssl"},
        "pop3": None,
        "smtp": {"host": "webmail.{domain}", "port": 587, "security": "starttls"},
        "caldav": "https://webmail.{domain}/caldav/",
        "carddav": "https://webmail.{domain}/carddav/",
        "activesync": {"host": "webmail.{domain}", "username": "local_part"},
        "webmail": "https://webmail.{domain}/",
        "unverified": True,
    },
    # ResellerClub Business Email (eelite, US servers: mailhostbox).
    "resellerclub/eelite": {
        "label": "Business Email",
        "imap": {"host": "us2.imap.mailhostbox.com", "port": 993, "security": "ssl"},
        "pop3": {"host": "us2.pop.mailhostbox.com", "port": 995, "security": "ssl"},
        "smtp": {"host": "us2.smtp.mailhostbox.com", "port": 587, "security": "starttls"},
    },
}

_KEYS = frozenset({"label", "imap", "pop3", "smtp", "caldav", "carddav", "activesync", "webmail",
                   "username", "dav_mailbox_types", "unverified"})


class DeviceSettingsError(ValueError):
    """The ``client_settings`` of an upstream are wrong (a message naming the key)."""


@dataclass(frozen=True)
class MailServer:
    host: str
    port: int
    security: str                      # ssl | starttls | none

    @property
    def security_label(self) -> str:
        return SECURITIES[self.security]

    @property
    def uses_ssl(self) -> bool:
        """What Apple's *UseSSL keys mean: TLS at all (STARTTLS counts)."""
        return self.security != "none"


@dataclass(frozen=True)
class DavServer:
    url: str

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def uses_ssl(self) -> bool:
        return urlsplit(self.url).scheme == "https"

    @property
    def path(self) -> str:
        return urlsplit(self.url).path or "/"


@dataclass(frozen=True)
class ActiveSync:
    host: str
    username: str = "email"             # email | local_part


@dataclass(frozen=True)
class ClientSettings:
    """One provider's server settings, for one domain."""
    provider: str
    domain: str
    label: str
    imap: MailServer | None
    pop3: MailServer | None
    smtp: MailServer | None
    caldav: DavServer | None = None
    carddav: DavServer | None = None
    activesync: ActiveSync | None = None
    webmail: str | None = None
    username: str = "email"
    dav_mailbox_types: tuple[str, ...] | None = None     # None: every mailbox type
    unverified: bool = False
    notes: tuple[str, ...] = field(default=())

    def login(self, address: str, style: str | None = None) -> str:
        """The username a mail app signs in with for ``address``."""
        return address.split("@", 1)[0] if (style or self.username) == "local_part" else address

    def has_dav(self, mailbox_type: str | None = None) -> bool:
        if self.caldav is None and self.carddav is None:
            return False
        return (self.dav_mailbox_types is None or mailbox_type is None
                or mailbox_type in self.dav_mailbox_types)


# --- building the settings ---------------------------------------------------------------------

def _variant_key(kind: str, limits: Mapping[str, Any] | None) -> str:
    limits = limits or {}
    if kind == "resellerclub" and str(limits.get("email_product") or "").lower() == "eelite":
        return "resellerclub/eelite"
    return kind


def default_settings(kind: str, limits: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The built-in settings of a provider kind (a copy); {} for a kind without any."""
    return copy.deepcopy(DEFAULTS.get(_variant_key(kind, limits), {}))


def _fill(value: str, domain: str) -> str:
    return value.replace("{domain}", domain)


def _mail_server(raw: Any, key: str, domain: str) -> MailServer | None:
    if raw is None or raw is False:
        return None
    if not isinstance(raw, Mapping):
        raise DeviceSettingsError(f"client_settings.{key}: must be {{host, port, security}} or null")
    unknown = set(raw) - {"host", "port", "security"}
    if unknown:
        raise DeviceSettingsError(f"client_settings.{key}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    host = _fill(str(raw.get("host") or "").strip().lower(), domain)
    if not host or not re.fullmatch(r"[a-z0-9.-]+", host):
        raise DeviceSettingsError(f"client_settings.{key}.host: must be a host name")
    try:
        port = int(raw.get("port"))
    except (TypeError, ValueError):
        raise DeviceSettingsError(f"client_settings.{key}.port: must be a whole number") from None
    if not 0 < port < 65536:
        raise DeviceSettingsError(f"client_settings.{key}.port: must be between 1 and 65535")
    security = str(raw.get("security") or "").strip().lower()
    if security not in SECURITIES:
        raise DeviceSettingsError(f"client_settings.{key}.security: must be one of {', '.join(SECURITIES)}")
    return MailServer(host, port, security)


def _url(raw: Any, key: str, domain: str) -> str | None:
    if raw is None or raw is False or raw == "":
        return None
    url = _fill(str(raw).strip(), domain)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DeviceSettingsError(f"client_settings.{key}: must be an http(s) URL")
    return url


def build_settings(kind: str, domain: str, overrides: Mapping[str, Any] | None = None, *,
                   limits: Mapping[str, Any] | None = None) -> ClientSettings:
    """The settings for ``domain`` on a provider ``kind``, ``overrides`` (an upstream's
    ``client_settings``) over the defaults. DeviceSettingsError names a wrong key."""
    domain = (domain or "").strip().rstrip(".").lower()
    merged = default_settings(kind, limits)
    if overrides is not None and not isinstance(overrides, Mapping):
        raise DeviceSettingsError("client_settings: must be a mapping")
    for key, value in (overrides or {}).items():
        if key not in _KEYS:
            raise DeviceSettingsError(f"client_settings: unknown key {key!r} (known: {', '.join(sorted(_KEYS))})")
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}       # e.g. only the port changes
        else:
            merged[key] = value
    username = str(merged.get("username") or "email")
    if username not in USERNAMES:
        raise DeviceSettingsError("client_settings.username: must be email or local_part")
    active = merged.get("activesync")
    activesync = None
    if active:
        if isinstance(active, str):
            active = {"host": active}
        if not isinstance(active, Mapping) or not active.get("host"):
            raise DeviceSettingsError("client_settings.activesync: must be {host, username} or null")
        style = str(active.get("username") or "email")
        if style not in USERNAMES:
            raise DeviceSettingsError("client_settings.activesync.username: must be email or local_part")
        activesync = ActiveSync(_fill(str(active["host"]).strip().lower(), domain), style)
    types = merged.get("dav_mailbox_types")
    if types is not None and (isinstance(types, str) or not all(isinstance(t, str) for t in types)):
        raise DeviceSettingsError("client_settings.dav_mailbox_types: must be a list of mailbox types")
    caldav, carddav = _url(merged.get("caldav"), "caldav", domain), _url(merged.get("carddav"), "carddav", domain)
    settings = ClientSettings(
        provider=kind, domain=domain, label=str(merged.get("label") or kind),
        imap=_mail_server(merged.get("imap"), "imap", domain),
        pop3=_mail_server(merged.get("pop3"), "pop3", domain),
        smtp=_mail_server(merged.get("smtp"), "smtp", domain),
        caldav=DavServer(caldav) if caldav else None,
        carddav=DavServer(carddav) if carddav else None,
        activesync=activesync, webmail=_url(merged.get("webmail"), "webmail", domain),
        username=username,
        dav_mailbox_types=tuple(t.lower() for t in types) if types is not None else None,
        unverified=bool(merged.get("unverified")) and not overrides,
    )
    if settings.smtp is None or (settings.imap is None and settings.pop3 is None):
        raise DeviceSettingsError(f"client_settings for {kind}: an incoming (imap or pop3) and an "
                                  "outgoing (smtp) server are needed")
    return settings


def settings_for_upstream(upstream_config: Mapping[str, Any], domain: str,
                          limits: Mapping[str, Any] | None = None) -> ClientSettings:
    """From a resolved upstreams.yaml block (``provider`` + optional ``client_settings``)."""
    return build_settings(str(upstream_config.get("provider") or ""), domain,
                          upstream_config.get("client_settings"), limits=limits)


def validate_upstream(upstream_config: Mapping[str, Any]) -> list[str]:
    """Problems of an upstream's ``client_settings`` (for a config check); [] if none."""
    try:
        settings_for_upstream(upstream_config, "example.com")
    except DeviceSettingsError as exc:
        return [str(exc)]
    return []


# --- addresses ---------------------------------------------------------------------------------

def check_address(address: str, domain: str | None = None) -> str:
    """``address`` lower-cased if it is local@domain (of ``domain`` when given); ValueError otherwise."""
    address = (address or "").strip()
    local, at, dom = address.rpartition("@")
    dom = dom.lower().rstrip(".")
    if not at or not _LOCAL_PART.fullmatch(local) or not _DOMAIN.fullmatch(dom):
        raise ValueError("Enter a full e-mail address such as name@example.com.")
    if domain is not None and dom != domain.strip().rstrip(".").lower():
        raise ValueError(f"The address must be at {domain}.")
    return f"{local}@{dom}"


# --- manual settings ---------------------------------------------------------------------------

def _server_dict(server: MailServer, username: str) -> dict[str, Any]:
    return {"host": server.host, "port": server.port, "security": server.security,
            "security_label": server.security_label, "username": username,
            "authentication": "normal password"}


def manual_settings(settings: ClientSettings, address: str, mailbox_type: str | None = None) -> dict[str, Any]:
    """What to type into a mail app for ``address`` (JSON-ready; no password)."""
    login = settings.login(address)
    out: dict[str, Any] = {"address": address, "provider": settings.label,
                           "imap": _server_dict(settings.imap, login) if settings.imap else None,
                           "pop3": _server_dict(settings.pop3, login) if settings.pop3 else None,
                           "smtp": _server_dict(settings.smtp, login) if settings.smtp else None,
                           "caldav": None, "carddav": None, "exchange": None,
                           "webmail": settings.webmail}
    if settings.smtp:
        out["smtp"]["requires_authentication"] = True
    if settings.has_dav(mailbox_type):
        for key in ("caldav", "carddav"):
            server = getattr(settings, key)
            if server is not None:
                out[key] = {"url": server.url, "server": server.host, "username": login}
    if settings.activesync is not None:
        out["exchange"] = {"server": settings.activesync.host, "domain": settings.domain,
                           "username": settings.login(address, settings.activesync.username),
                           "email": address}
    return out


# --- Apple configuration profile ---------------------------------------------------------------

def _reverse_dns(domain: str) -> str:
    return ".".join(reversed([label for label in domain.split(".") if label]))


def _safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", text).strip("-").lower() or "mailbox"


def _payload_uuid(identifier: str) -> str:
    # Stable per payload: installing a newer download replaces the same profile.
    return str(uuid.uuid5(_UUID_NAMESPACE, identifier)).upper()


def mobileconfig(settings: ClientSettings, address: str, *, display_name: str = "",
                 organization: str = "", mailbox_type: str | None = None) -> bytes:
    """An unsigned Apple configuration profile (plist XML) for ``address``.

    It carries the mail account (IMAP, else POP) and, where the provider has them,
    CalDAV and CardDAV accounts. The device asks for the password on install."""
    address = check_address(address, settings.domain)
    login = settings.login(address)
    local = address.split("@", 1)[0]
    base = f"{_reverse_dns(settings.domain)}.mail.{_safe_id(local)}"
    incoming = settings.imap or settings.pop3
    assert incoming is not None and settings.smtp is not None
    mail_id = f"{base}.email"
    mail: dict[str, Any] = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": mail_id,
        "PayloadUUID": _payload_uuid(mail_id),
        "PayloadDisplayName": f"E-mail ({address})",
        "PayloadDescription": f"Configures the e-mail account {address}.",
        "EmailAccountDescription": address,
        "EmailAccountName": display_name or address,
        "EmailAccountType": "EmailTypeIMAP" if settings.imap else "EmailTypePOP",
        "EmailAddress": address,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "IncomingMailServerHostName": incoming.host,
        "IncomingMailServerPortNumber": incoming.port,
        "IncomingMailServerUseSSL": incoming.uses_ssl,
        "IncomingMailServerUsername": login,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerHostName": settings.smtp.host,
        "OutgoingMailServerPortNumber": settings.smtp.port,
        "OutgoingMailServerUseSSL": settings.smtp.uses_ssl,
        "OutgoingMailServerUsername": login,
        "OutgoingPasswordSameAsIncomingPassword": True,
        "PreventMove": False,
        "PreventAppSheet": False,
        "SMIMEEnabled": False,
        "allowMailDrop": True,
    }
    content: list[dict[str, Any]] = [mail]
    if settings.has_dav(mailbox_type):
        if settings.caldav is not None:
            cal_id = f"{base}.caldav"
            content.append({
                "PayloadType": "com.apple.caldav.account", "PayloadVersion": 1,
                "PayloadIdentifier": cal_id, "PayloadUUID": _payload_uuid(cal_id),
                "PayloadDisplayName": f"Calendar ({address})",
                "PayloadDescription": f"Configures the calendar of {address}.",
                "CalDAVAccountDescription": f"Calendar {address}",
                "CalDAVHostName": settings.caldav.host, "CalDAVPort": settings.caldav.port,
                "CalDAVPrincipalURL": settings.caldav.url, "CalDAVUseSSL": settings.caldav.uses_ssl,
                "CalDAVUsername": login,
            })
        if settings.carddav is not None:
            card_id = f"{base}.carddav"
            content.append({
                "PayloadType": "com.apple.carddav.account", "PayloadVersion": 1,
                "PayloadIdentifier": card_id, "PayloadUUID": _payload_uuid(card_id),
                "PayloadDisplayName": f"Contacts ({address})",
                "PayloadDescription": f"Configures the address book of {address}.",
                "CardDAVAccountDescription": f"Contacts {address}",
                "CardDAVHostName": settings.carddav.host, "CardDAVPort": settings.carddav.port,
                "CardDAVPrincipalURL": settings.carddav.url, "CardDAVUseSSL": settings.carddav.uses_ssl,
                "CardDAVUsername": login,
            })
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": base,
        "PayloadUUID": _payload_uuid(base),
        "PayloadDisplayName": f"{settings.label}: {address}",
        "PayloadDescription": (f"Sets up {address} on this device. You will be asked for the "
                               "mailbox password while installing."),
        "PayloadOrganization": organization or settings.domain,
        "PayloadRemovalDisallowed": False,
        "PayloadContent": content,
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML, sort_keys=True)


def mobileconfig_filename(address: str) -> str:
    return f"{_safe_id(address.replace('@', '-at-'))}.mobileconfig"


# --- Thunderbird autoconfig ---------------------------------------------------------------------

_SOCKET = {"ssl": "SSL", "starttls": "STARTTLS", "none": "plain"}
_PLACEHOLDER = {"email": "%EMAILADDRESS%", "local_part": "%EMAILLOCALPART%"}


def _sub(parent: ET.Element, tag: str, text: Any = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = str(text)
    return element


def _server(parent: ET.Element, tag: str, kind: str, server: MailServer, username: str) -> None:
    element = _sub(parent, tag, type=kind)
    _sub(element, "hostname", server.host)
    _sub(element, "port", server.port)
    _sub(element, "socketType", _SOCKET[server.security])
    _sub(element, "authentication", "password-cleartext")
    _sub(element, "username", username)


def autoconfig_xml(settings: ClientSettings) -> bytes:
    """Thunderbird autoconfig (``/mail/config-v1.1.xml``) for the settings' domain.

    Usernames are Thunderbird's placeholders (``%EMAILADDRESS%``), so one file
    serves every mailbox of the domain."""
    username = _PLACEHOLDER[settings.username]
    root = ET.Element("clientConfig", version="1.1")
    provider = _sub(root, "emailProvider", id=settings.domain)
    _sub(provider, "domain", settings.domain)
    _sub(provider, "displayName", f"{settings.label} ({settings.domain})")
    _sub(provider, "displayShortName", settings.label)
    if settings.imap is not None:
        _server(provider, "incomingServer", "imap", settings.imap, username)
    if settings.pop3 is not None:
        _server(provider, "incomingServer", "pop3", settings.pop3, username)
    if settings.smtp is not None:
        _server(provider, "outgoingServer", "smtp", settings.smtp, username)
    if settings.has_dav() and settings.dav_mailbox_types is None:
        # Only when every mailbox has them: a domain-wide file cannot tell types apart.
        for tag, kind, server in (("addressBook", "carddav", settings.carddav),
                                  ("calendar", "caldav", settings.caldav)):
            if server is not None:
                element = _sub(root, tag, type=kind)
                _sub(element, "username", username)
                _sub(element, "authentication", "http-basic")
                _sub(element, "serverURL", server.url)
    if settings.webmail:
        webmail = _sub(root, "webMail")
        _sub(webmail, "loginPage", url=settings.webmail)
    ET.indent(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8", xml_declaration=False) + b"\n"
