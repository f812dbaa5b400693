"""Client-area extras: DNS records, device set-up and SMTP relay accounts.

Pages under ``/client/`` (server-rendered, plain forms, no JavaScript needed) and
the same actions as JSON under ``/client/api/v1/``:

| page | JSON | what |
| --- | --- | --- |
| ``GET /client/dns`` | ``GET dns-records`` | the records the upstream says the customer must publish |
| ``POST /client/dns/check``, ``POST /client/dns/<id>/check`` | ``POST dns-records/check``, ``POST dns-records/<id>/check`` | resolve now: pass / fail / error with a reason |
| ``POST /client/dns/dkim`` | ``POST dns-records/dkim`` | a custom DKIM signature, where the provider makes one (``enable_dkim``): its TXT record joins the list |
| ``GET /client/devices`` | ``GET devices`` | the mailboxes to set up, the domain's autoconfig |
| ``GET /client/devices/<mailbox>`` | ``GET devices/<mailbox>`` | manual settings per mail app |
| ``GET /client/devices/<mailbox>/profile.mobileconfig`` | ``GET devices/<mailbox>/mobileconfig`` | Apple configuration profile |
| ``GET /client/devices/autoconfig.xml`` | ``GET devices/autoconfig.xml`` | Thunderbird autoconfig for the domain |
| ``GET /client/relay`` | ``GET relay`` | SMTP relay account: username, host, messages used of the quota, expiry |
| ``POST /client/relay/password`` | ``POST relay/password`` | a new password, shown once in the answer, stored nowhere |
| ``POST /client/relay/ips`` | ``PUT relay/allowed-ips`` | authorised sender IPs |
| ``POST /client/relay/bounce`` | ``PUT relay/bounce-address`` | where bounces go |
| ``POST /client/relay/domains`` | ``POST relay/domains`` | associate a sender domain (up to ``relay_max_domains``) |
| ``POST /client/relay/domains/<d>/delete`` | ``DELETE relay/domains/<d>`` | dissociate one |

``<mailbox>`` is the provider's mailbox id where the provider lists mailboxes;
for providers that do not (ResellerClub), it is an address at the service's domain.

Public (no session), for mail apps that look settings up by themselves:
``GET /.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=...`` and
``GET /mail/config-v1.1.xml`` (the domain from ``emailaddress``, else from the
``autoconfig.<domain>`` host name). They answer for domains of services that are
not terminated and never say anything about mailboxes.

Every session route uses ``client_service()``; writes call ``require_csrf()``
and are refused while the service is suspended (``409 service_suspended``); DNS
checks change nothing and stay available. Object ids (mailboxes, records,
sender domains) are looked up in the session's own service only: anything else
is a 404.

Settings: ``app.config["CLIENT_DNS_NAMESERVERS"]`` (``"127.0.0.1:5353 ..."``;
default ``PROVISIONER_DNS_NAMESERVERS`` from the environment, else the system's
resolver) and ``app.config["CLIENT_DNS_TIMEOUT"]`` (seconds, default
``PROVISIONER_DNS_TIMEOUT`` or 3).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping

from flask import (Blueprint, Flask, Response, current_app, jsonify, redirect, render_template, request,
                   url_for)
from sqlalchemy import select

from .. import inputs
from ..models import DesiredStatus, Service
from ..providers import errors as perr
from ..runtime import Runtime
from ..web import current_runtime
from . import devices
from . import service as svc
from .dns_check import DEFAULT_TIMEOUT, DnsChecker, parse_nameservers
from .service import ClientError, InvalidInput, LimitExceeded, NotFound, NotSupported
from .session import client_service, require_csrf

log = logging.getLogger("provisioner.client.extras")

bp = Blueprint("client_extras", __name__, url_prefix="/client", template_folder="templates")
api_bp = Blueprint("client_extras_api", __name__, url_prefix="/client/api/v1")
public_bp = Blueprint("client_autoconfig", __name__)

#: the client area's navigation entries this module adds: (endpoint, label, capability needed or None)
NAV = [("client_extras.dns", "DNS records", "dns"), ("client_extras.devices", "Device set-up", None),
       ("client_extras.relay", "SMTP relay", "relay")]

MAX_ALLOWED_IPS = 50
MAX_PARALLEL_CHECKS = 8
#: the ports of an SMTP relay (Qboxmail publishes only the host; these are the usual submission ports)
RELAY_PORTS = ({"port": 587, "security": "STARTTLS"}, {"port": 465, "security": "SSL/TLS"})
_DOMAIN_RE = re.compile(r"(?=.{1,253}\Z)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}[a-z0-9]\Z")

NOTICES = {
    "ips_saved": "The authorised sender IP addresses were saved.",
    "bounce_saved": "The bounce address was saved.",
    "bounce_cleared": "Bounce notifications now go back to each message's sender.",
    "domain_added": "The sender domain was added. Publish its SPF and DKIM records so that mail from it is delivered.",
    "domain_removed": "The sender domain was removed.",
    "dkim_enabled": "A custom DKIM signature was created. Publish its TXT record below.",
}


# --- set-up --------------------------------------------------------------------------------------

def init_app(app: Flask) -> None:
    """Register the blueprints and add the pages to the client area's navigation."""
    app.register_blueprint(bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(public_bp)
    nav = app.extensions.setdefault("client_nav", [])
    for entry in NAV:
        if entry not in nav:
            nav.append(entry)
    runtime = app.extensions.get("provisioner")
    environ = getattr(getattr(runtime, "settings", None), "environ", None) or os.environ   # with instance/.env
    app.config.setdefault("CLIENT_DNS_NAMESERVERS", environ.get("PROVISIONER_DNS_NAMESERVERS") or None)
    try:
        timeout = float(environ.get("PROVISIONER_DNS_TIMEOUT") or DEFAULT_TIMEOUT)
        if timeout <= 0:
            raise ValueError
    except ValueError:
        log.warning("PROVISIONER_DNS_TIMEOUT must be a positive number of seconds; using %s", DEFAULT_TIMEOUT)
        timeout = DEFAULT_TIMEOUT
    app.config.setdefault("CLIENT_DNS_TIMEOUT", timeout)
    try:
        parse_nameservers(app.config["CLIENT_DNS_NAMESERVERS"])
    except ValueError as exc:
        raise ValueError(f"PROVISIONER_DNS_NAMESERVERS: {exc}") from None


def _ctx() -> tuple[Runtime, Service]:
    return current_runtime(), client_service()


def _caps(runtime: Runtime, service: Service) -> list[str]:
    return svc.capabilities(runtime, service)


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.after_request
def _pages_no_store(response: Response) -> Response:
    return _no_store(response)


@api_bp.after_request
def _api_no_store(response: Response) -> Response:
    return _no_store(response)


@api_bp.errorhandler(ClientError)
def _api_error(exc: ClientError):
    return jsonify(exc.body()), exc.status


def _status_view(service: Service) -> dict[str, Any]:
    status = svc._status(service)
    return {"status": status,
            "suspended": status == "suspended",
            "suspend_reason": svc.suspension_reason(service) if status == "suspended" else None}


def _notice() -> str | None:
    return NOTICES.get(request.args.get("done", ""))


# =================================================================================================
# DNS records
# =================================================================================================

def record_id(record: Mapping[str, Any]) -> str:
    """A stable id of an expected record (its type, host, value and priority)."""
    key = "|".join(str(record.get(k) or "") for k in ("type", "host", "value", "priority")).lower()
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _relative(host: str, domain: str) -> str:
    """The record's name as most DNS providers' forms want it: relative to the domain."""
    host, domain = host.strip().rstrip(".").lower(), domain.strip().rstrip(".").lower()
    if host == domain:
        return "@"
    return host[:-len(domain) - 1] if host.endswith("." + domain) else host + "."


def _client_record(item: Mapping[str, Any], domain: str) -> dict[str, Any]:
    record = {k: item.get(k) for k in ("type", "host", "value", "priority", "ttl", "purpose")}
    record["type"] = str(record["type"]).upper()
    record["id"] = record_id(record)
    record["name"] = _relative(str(record["host"]), domain)
    return record


def dns_records(runtime: Runtime, service: Service) -> list[dict[str, Any]]:
    """The records the upstream said (at the last converge) the customer must publish."""
    raw = (service.observed or {}).get("dns_records") or []
    return [_client_record(item, service.domain) for item in raw
            if isinstance(item, Mapping) and item.get("type") and item.get("host")]


def _dns_available(runtime: Runtime, service: Service) -> None:
    if "dns" not in _caps(runtime, service):
        raise NotSupported("Your e-mail platform does not ask for DNS records here.")


def _checker() -> DnsChecker:
    return DnsChecker(current_app.config.get("CLIENT_DNS_NAMESERVERS"),
                      timeout=float(current_app.config.get("CLIENT_DNS_TIMEOUT") or DEFAULT_TIMEOUT))


def check_records(service: Service, records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """record id -> check result (as a dict) for ``records``, looked up side by side so that
    "check all" takes one resolver timeout at worst, not one per record."""
    checker = _checker()
    if len(records) <= 1:
        return {r["id"]: checker.check(r, service.domain).as_dict() for r in records}
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_CHECKS, len(records)),
                            thread_name_prefix="dns-check") as pool:
        results = list(pool.map(lambda r: checker.check(r, service.domain).as_dict(), records))
    return {r["id"]: result for r, result in zip(records, results)}


def _find_record(records: list[dict[str, Any]], rid: str) -> dict[str, Any]:
    for record in records:
        if record["id"] == rid:
            return record
    raise NotFound("There is no such DNS record for your service.")


# --- custom DKIM (providers with an ``enable_dkim(account_id) -> DnsRecord``: Qboxmail) ---------

def _dkim_provider(runtime: Runtime, service: Service):
    """The service's provider if it makes custom DKIM signatures for this service."""
    if "dns" not in _caps(runtime, service):
        return None
    try:
        provider = runtime.provider(service.upstream)
    except perr.ProviderError:
        return None
    return provider if callable(getattr(provider, "enable_dkim", None)) else None


def dkim_offered(runtime: Runtime, service: Service) -> bool:
    """Offer a custom DKIM signature: the platform makes them and the service has none yet."""
    return (_dkim_provider(runtime, service) is not None
            and not any(r.get("purpose") == "DKIM" for r in dns_records(runtime, service)))


def enable_dkim(runtime: Runtime, service: Service) -> dict[str, Any]:
    """Have the platform make a custom DKIM signature; its record is stored with the
    service's other records (the next converge that reads them reads it too)."""
    svc._writable(service)
    provider = _dkim_provider(runtime, service)
    if provider is None:
        raise NotSupported("Your e-mail platform does not offer a custom DKIM signature here.")
    account_id = svc._account(service)
    with svc.service_lock(runtime, service.id), svc._calling("set up a DKIM signature"):
        record = provider.enable_dkim(account_id).as_dict()
    with runtime.db.transaction() as session:
        row = session.get(Service, service.id)
        if row is not None:
            observed = dict(row.observed or {})
            kept = [r for r in observed.get("dns_records") or [] if r.get("purpose") != "DKIM"]
            row.observed = {**observed, "dns_records": [*kept, record]}
    log.info("client area: service %s enabled a custom DKIM signature", service.id)
    return _client_record(record, service.domain)


def _dns_page(runtime: Runtime, service: Service, results: dict[str, dict[str, Any]] | None = None,
              *, problem: str | None = None, status: int = 200):
    supported = "dns" in _caps(runtime, service)
    records = dns_records(runtime, service) if supported else []
    return render_template("client/extras/dns.html", records=records, results=results or {},
                           supported=supported, domain=service.domain, checked_at=dt.datetime.now(dt.timezone.utc)
                           if results else None, dkim_offered=supported and dkim_offered(runtime, service),
                           notice=_notice(), problem=problem, **_status_view(service)), status


@bp.get("/dns")
def dns():
    runtime, service = _ctx()
    return _dns_page(runtime, service)


@bp.post("/dns/check")
def dns_check_all():
    runtime, service = _ctx()
    require_csrf()
    _dns_available(runtime, service)
    records = dns_records(runtime, service)
    return _dns_page(runtime, service, check_records(service, records))


@bp.post("/dns/<rid>/check")
def dns_check_one(rid: str):
    runtime, service = _ctx()
    require_csrf()
    _dns_available(runtime, service)
    record = _find_record(dns_records(runtime, service), rid)
    return _dns_page(runtime, service, check_records(service, [record]))


@bp.post("/dns/dkim")
def dns_dkim():
    runtime, service = _ctx()
    require_csrf()
    try:
        enable_dkim(runtime, service)
    except ClientError as exc:
        return _dns_page(runtime, service, problem=exc.message, status=exc.status)
    return redirect(url_for("client_extras.dns", done="dkim_enabled"), 303)


@api_bp.post("/dns-records/dkim")
def api_dns_dkim():
    runtime, service = _ctx()
    require_csrf()
    return jsonify(enable_dkim(runtime, service)), 201


@api_bp.get("/dns-records")
def api_dns_records():
    runtime, service = _ctx()
    _dns_available(runtime, service)
    return jsonify({"domain": service.domain, "items": dns_records(runtime, service)})


@api_bp.post("/dns-records/check")
def api_dns_check_all():
    runtime, service = _ctx()
    require_csrf()
    _dns_available(runtime, service)
    records = dns_records(runtime, service)
    results = check_records(service, records)
    return jsonify({"items": [{**r, "check": results[r["id"]]} for r in records]})


@api_bp.post("/dns-records/<rid>/check")
def api_dns_check_one(rid: str):
    runtime, service = _ctx()
    require_csrf()
    _dns_available(runtime, service)
    record = _find_record(dns_records(runtime, service), rid)
    return jsonify({**record, "check": check_records(service, [record])[record["id"]]})


# =================================================================================================
# Device set-up
# =================================================================================================

def device_settings(runtime: Runtime, service: Service) -> devices.ClientSettings:
    """The server settings of the service's provider for its domain (upstreams.yaml overrides)."""
    if "relay" in _caps(runtime, service):
        raise NotSupported("Device set-up is for mailboxes. Your SMTP relay settings are on the "
                           "SMTP relay page.")
    try:
        config = runtime.catalog.upstream_config(service.upstream)
    except KeyError:
        raise ClientError("Device settings are not available right now; please contact support.",
                          status=503, code="device_settings_unavailable") from None
    try:
        return devices.settings_for_upstream(config, service.domain, service.limits or {})
    except devices.DeviceSettingsError as exc:
        log.error("client area: upstream %s has wrong client_settings: %s", service.upstream, exc)
        raise ClientError("Device settings are not available right now; please contact support.",
                          status=503, code="device_settings_unavailable") from None


def _lists_mailboxes(runtime: Runtime, service: Service) -> bool:
    return "mailboxes" in _caps(runtime, service)


def device_mailboxes(runtime: Runtime, service: Service) -> list[dict[str, Any]]:
    """The mailboxes to set up (empty where the provider does not list them)."""
    if not _lists_mailboxes(runtime, service):
        return []
    page = svc.list_mailboxes(runtime, service, per_page=svc.MAX_PER_PAGE)
    return [{"id": box.id, "address": box.address, "name": box.name, "type": box.type} for box in page.items]


def device_mailbox(runtime: Runtime, service: Service, key: str) -> dict[str, Any]:
    """One mailbox of this service: by the provider's id, or (providers that do not list
    mailboxes) by an address at the service's domain. NotFound otherwise."""
    if _lists_mailboxes(runtime, service):
        box = svc.get_mailbox(runtime, service, key)
        return {"id": box.id, "address": box.address, "name": box.name, "type": box.type}
    try:
        address = devices.check_address(key, service.domain)
    except ValueError:
        raise NotFound("There is no such mailbox for your service.") from None
    return {"id": address, "address": address, "name": "", "type": None}


def _device_urls(mailbox: dict[str, Any]) -> dict[str, str]:
    return {"settings_url": url_for("client_extras.device", key=mailbox["id"]),
            "mobileconfig_url": url_for("client_extras.device_profile", key=mailbox["id"])}


@bp.get("/devices", endpoint="devices")
def devices_index():
    runtime, service = _ctx()
    problem, status = None, 200
    mailboxes: list[dict[str, Any]] = []
    settings = None
    address_error, informational = None, False
    try:
        settings = device_settings(runtime, service)
        mailboxes = device_mailboxes(runtime, service)
    except NotSupported as exc:                 # a relay service: said on the page, not an error
        problem, informational = exc.message, True
    except ClientError as exc:                  # not set up yet, the platform failed, ...
        problem, status = exc.message, exc.status
    lists = _lists_mailboxes(runtime, service)
    address = request.args.get("address", "").strip()
    if address and settings is not None and not lists:
        try:
            address = devices.check_address(address, service.domain)
            return redirect(url_for("client_extras.device", key=address), 303)
        except ValueError as exc:
            address_error, status = str(exc), 422
    return render_template("client/extras/devices.html", settings=settings, mailboxes=mailboxes,
                           lists_mailboxes=lists, problem=problem, informational=informational,
                           domain=service.domain,
                           address=address, address_error=address_error, **_status_view(service)), status


@bp.get("/devices/autoconfig.xml")
def device_autoconfig():
    runtime, service = _ctx()
    settings = device_settings(runtime, service)
    return _xml(devices.autoconfig_xml(settings), download="config-v1.1.xml")


@bp.get("/devices/<path:key>/profile.mobileconfig")
def device_profile(key: str):
    runtime, service = _ctx()
    return _profile_response(runtime, service, key)


@bp.get("/devices/<path:key>")
def device(key: str):
    runtime, service = _ctx()
    settings = device_settings(runtime, service)
    mailbox = device_mailbox(runtime, service, key)
    manual = devices.manual_settings(settings, mailbox["address"], mailbox["type"])
    return render_template("client/extras/device.html", settings=settings, mailbox=mailbox, manual=manual,
                           domain=service.domain, **_device_urls(mailbox), **_status_view(service))


def _profile_response(runtime: Runtime, service: Service, key: str) -> Response:
    settings = device_settings(runtime, service)
    mailbox = device_mailbox(runtime, service, key)
    data = devices.mobileconfig(settings, mailbox["address"], display_name=mailbox["name"] or "",
                                mailbox_type=mailbox["type"])
    response = Response(data, mimetype=devices.MOBILECONFIG_TYPE)
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{devices.mobileconfig_filename(mailbox["address"])}"')
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _xml(data: bytes, download: str | None = None) -> Response:
    response = Response(data, content_type=devices.AUTOCONFIG_TYPE)
    response.headers["X-Content-Type-Options"] = "nosniff"
    if download:
        response.headers["Content-Disposition"] = f'inline; filename="{download}"'
    return response


@api_bp.get("/devices")
def api_devices():
    runtime, service = _ctx()
    settings = device_settings(runtime, service)
    boxes = [{**box, **_device_urls(box)} for box in device_mailboxes(runtime, service)]
    return jsonify({"domain": service.domain, "provider": settings.label,
                    "lists_mailboxes": _lists_mailboxes(runtime, service),
                    "autoconfig_url": url_for("client_extras.device_autoconfig"),
                    "mailboxes": boxes})


@api_bp.get("/devices/autoconfig.xml")
def api_device_autoconfig():
    runtime, service = _ctx()
    return _xml(devices.autoconfig_xml(device_settings(runtime, service)))


@api_bp.get("/devices/<path:key>/mobileconfig")
def api_device_profile(key: str):
    runtime, service = _ctx()
    return _profile_response(runtime, service, key)


@api_bp.get("/devices/<path:key>")
def api_device(key: str):
    runtime, service = _ctx()
    settings = device_settings(runtime, service)
    mailbox = device_mailbox(runtime, service, key)
    return jsonify({**devices.manual_settings(settings, mailbox["address"], mailbox["type"]),
                    "mailbox": mailbox, **_device_urls(mailbox)})


# --- public autoconfig ----------------------------------------------------------------------------

def _autoconfig_domain() -> str | None:
    address = request.args.get("emailaddress", "").strip()
    if address:
        domain = address.rpartition("@")[2]
    else:
        host = (request.host or "").rsplit(":", 1)[0] if not (request.host or "").startswith("[") else ""
        domain = host[len("autoconfig."):] if host.lower().startswith("autoconfig.") else ""
    domain = domain.strip().rstrip(".").lower()
    return domain if _DOMAIN_RE.match(domain) else None


def _service_for_domain(runtime: Runtime, domain: str) -> Service | None:
    with runtime.db.read() as db:
        rows = db.execute(select(Service).where(Service.domain == domain,
                                                Service.desired_status != DesiredStatus.TERMINATED)
                          .order_by(Service.updated_at.desc())).scalars().all()
    hosting = [s for s in rows if str((s.limits or {}).get("qboxmail_product") or "").lower() != "relay"]
    return hosting[0] if hosting else None


def public_autoconfig():
    domain = _autoconfig_domain()
    runtime = current_runtime()
    service = _service_for_domain(runtime, domain) if domain else None
    if service is None:
        return Response("No mail settings for this domain.\n", status=404, mimetype="text/plain")
    try:
        config = runtime.catalog.upstream_config(service.upstream)
        settings = devices.settings_for_upstream(config, service.domain, service.limits or {})
    except (KeyError, devices.DeviceSettingsError) as exc:
        log.error("autoconfig for %s: %s", domain, exc)
        return Response("Mail settings are not available.\n", status=503, mimetype="text/plain")
    response = _xml(devices.autoconfig_xml(settings))
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


public_bp.add_url_rule("/.well-known/autoconfig/mail/config-v1.1.xml", "wellknown", public_autoconfig)
public_bp.add_url_rule("/mail/config-v1.1.xml", "mail", public_autoconfig)


# =================================================================================================
# SMTP relay accounts (Qboxmail Email Delivery)
# =================================================================================================

def _relay_provider(runtime: Runtime, service: Service):
    provider = svc.provider_for(runtime, service)
    if "relay" not in svc.capabilities(runtime, service, provider):
        raise NotSupported("This service has no SMTP relay account.")
    return provider


def _max_domains(service: Service, upstream_max: Any = None) -> int | None:
    """The product's ``relay_max_domains`` (the upstream's maximum where the product has none)."""
    for value in ((service.limits or {}).get("relay_max_domains"), upstream_max):
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def relay_view(runtime: Runtime, service: Service) -> dict[str, Any]:
    """The relay account as the customer sees it (never a password)."""
    provider = _relay_provider(runtime, service)
    account_id = svc._account(service)
    with svc._calling("read the SMTP relay account"):
        usage = provider.relay_usage(account_id)
        native = provider.get_account(account_id).native or {}
    quota, sent = usage.get("quota"), usage.get("messages_sent") or 0
    remaining = usage.get("messages_remaining")
    total = (quota or 0) + (usage.get("extra_messages") or 0) if quota is not None else None
    bounce = str(native.get("bounce_notification") or "") or None
    if native.get("bounce_notification_to_sender"):
        bounce = None
    domains = list(usage.get("domains") or [])
    maximum = _max_domains(service, usage.get("max_domains"))
    return {
        "username": usage.get("username"),
        "smtp_host": usage.get("smtp_host"),
        "smtp_ports": list(RELAY_PORTS),
        "plan": usage.get("plan"),
        "status": usage.get("status"),
        "messages_sent": sent,
        "messages_remaining": remaining,
        "quota": quota,
        "extra_messages": usage.get("extra_messages") or 0,
        "messages_total": total,
        "percent_used": min(100, round(100 * sent / total)) if total else None,
        "expires": usage.get("expires"),
        "domains": domains,
        "max_domains": maximum,
        "domains_full": maximum is not None and len(domains) >= maximum,
        "allowed_ips": [str(n) for n in native.get("allow_nets") or []],
        "bounce_address": bounce,
    }


def relay_regenerate_password(runtime: Runtime, service: Service) -> dict[str, str]:
    """A new SMTP password: returned to show once, never stored or logged."""
    svc._writable(service)
    provider = _relay_provider(runtime, service)
    account_id = svc._account(service)
    with svc.service_lock(runtime, service.id), svc._calling("create a new SMTP relay password"):
        password = provider.relay_regenerate_password(account_id)
        username = provider.relay_usage(account_id).get("username")
    log.info("client area: service %s regenerated its SMTP relay password", service.id)
    return {"username": username, "password": password}


def _parse_ips(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [v for v in re.split(r"[\s,;]+", value) if v]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput({"ips": "Give a list of IP addresses or networks."})
    nets, bad = [], []
    for item in value:
        try:
            net = ipaddress.ip_network(item.strip(), strict=False)
        except ValueError:
            bad.append(item.strip()[:60])
            continue
        if net.prefixlen == 0:
            bad.append(item.strip()[:60])
            continue
        nets.append(str(net))
    if bad:
        raise InvalidInput({"ips": "Not an IP address or network: " + ", ".join(bad[:5])
                                   + ("…" if len(bad) > 5 else "")})
    nets = list(dict.fromkeys(nets))
    if len(nets) > MAX_ALLOWED_IPS:
        raise InvalidInput({"ips": f"At most {MAX_ALLOWED_IPS} addresses or networks."})
    return nets


def relay_set_allowed_ips(runtime: Runtime, service: Service, value: Any) -> list[str]:
    svc._writable(service)
    nets = _parse_ips(value)
    provider = _relay_provider(runtime, service)
    with svc.service_lock(runtime, service.id), svc._calling("save the authorised IP addresses"):
        saved = provider.relay_set_allowed_ips(svc._account(service), nets)
    log.info("client area: service %s set %d authorised relay IPs", service.id, len(saved))
    return saved


def relay_set_bounce_address(runtime: Runtime, service: Service, value: Any) -> str | None:
    svc._writable(service)
    if value is not None and not isinstance(value, str):
        raise InvalidInput({"email": "Enter an e-mail address, or leave it empty."})
    email = (value or "").strip().lower()
    if email and svc._email(email) is None:
        raise InvalidInput({"email": "Enter a valid e-mail address, or leave it empty."})
    provider = _relay_provider(runtime, service)
    with svc.service_lock(runtime, service.id), svc._calling("save the bounce address"):
        provider.relay_set_bounce_address(svc._account(service), email or None)
    return email or None


def _domain(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput({"domain": "Enter a domain name such as example.com."})
    name = value.strip().rstrip(".").lower()
    try:
        name = name.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidInput({"domain": "This is not a valid domain name."}) from None
    if not _DOMAIN_RE.match(name):
        raise InvalidInput({"domain": "This is not a valid domain name."})
    return name


def relay_add_domain(runtime: Runtime, service: Service, value: Any) -> list[str]:
    """Associate a sender domain; LimitExceeded (``relay_max_domains``) at the product's maximum."""
    svc._writable(service)
    name = _domain(value)
    provider = _relay_provider(runtime, service)
    account_id = svc._account(service)
    with svc.service_lock(runtime, service.id):
        with svc._calling("read the SMTP relay account"):
            usage = provider.relay_usage(account_id)
        domains = list(usage.get("domains") or [])
        if name in domains:
            return domains
        maximum = _max_domains(service, usage.get("max_domains"))
        if maximum is not None and len(domains) >= maximum:
            raise LimitExceeded("relay_max_domains", _domains_message(maximum))
        try:
            provider.relay_associate_domain(account_id, name)
        except perr.LimitExceeded:
            raise LimitExceeded("relay_max_domains", _domains_message(maximum or len(domains))) from None
        except perr.ProviderError as exc:
            raise svc._upstream_error(exc, "add a sender domain") from None
    log.info("client area: service %s associated relay sender domain %s", service.id, name)
    return domains + [name]


def _domains_message(maximum: int) -> str:
    if maximum == 0:
        return "Your plan does not include sender domains."
    noun = "sender domain" if maximum == 1 else "sender domains"
    return (f"Your SMTP relay plan allows {maximum} {noun} and all are in use. "
            "Remove one first, or upgrade your plan.")


def relay_remove_domain(runtime: Runtime, service: Service, value: str) -> list[str]:
    svc._writable(service)
    provider = _relay_provider(runtime, service)
    account_id = svc._account(service)
    name = (value or "").strip().rstrip(".").lower()
    with svc.service_lock(runtime, service.id):
        with svc._calling("read the SMTP relay account"):
            domains = list(provider.relay_usage(account_id).get("domains") or [])
        if name not in domains:
            raise NotFound("This sender domain is not associated with your SMTP relay account.")
        with svc._calling("remove a sender domain"):
            provider.relay_dissociate_domain(account_id, name)
    log.info("client area: service %s dissociated relay sender domain %s", service.id, name)
    return [d for d in domains if d != name]


# --- relay pages ----------------------------------------------------------------------------------

def _relay_page(runtime: Runtime, service: Service, *, errors: dict[str, str] | None = None,
                values: dict[str, str] | None = None, new_password: dict[str, str] | None = None,
                status: int = 200):
    relay, problem = None, None
    supported = "relay" in _caps(runtime, service)
    if supported:
        try:
            relay = relay_view(runtime, service)
        except ClientError as exc:
            problem, status = exc.message, (exc.status if status == 200 else status)
    return render_template("client/extras/relay.html", relay=relay, problem=problem, supported=supported,
                           errors=errors or {}, values=values or {}, new_password=new_password,
                           notice=_notice(), domain=service.domain, **_status_view(service)), status


def _relay_form(field: str, call, done: str, values: dict[str, str]):
    runtime, service = _ctx()
    require_csrf()
    try:
        result = call(runtime, service)
    except LimitExceeded as exc:
        return _relay_page(runtime, service, errors={field: exc.message}, values=values, status=exc.status)
    except InvalidInput as exc:
        fields = exc.fields or {}
        return _relay_page(runtime, service, errors={field: next(iter(fields.values()), exc.message)},
                           values=values, status=exc.status)
    except ClientError as exc:
        return _relay_page(runtime, service, errors={field: exc.message}, values=values, status=exc.status)
    if done == "bounce_saved" and result is None:
        done = "bounce_cleared"
    return redirect(url_for("client_extras.relay", done=done), 303)


@bp.get("/relay")
def relay():
    runtime, service = _ctx()
    return _relay_page(runtime, service)


@bp.post("/relay/password")
def relay_password():
    runtime, service = _ctx()
    require_csrf()
    if request.form.get("confirm") != "yes":
        return _relay_page(runtime, service, status=422, errors={
            "confirm": "Tick the box to confirm that the current password may stop working."})
    try:
        new = relay_regenerate_password(runtime, service)
    except ClientError as exc:
        return _relay_page(runtime, service, errors={"password": exc.message}, status=exc.status)
    # Rendered into this answer only (no redirect, no flash, nothing in the session).
    return _relay_page(runtime, service, new_password=new)


@bp.post("/relay/ips")
def relay_ips():
    raw = request.form.get("ips", "")
    return _relay_form("ips", lambda r, s: relay_set_allowed_ips(r, s, raw), "ips_saved", {"ips": raw})


@bp.post("/relay/bounce")
def relay_bounce():
    raw = request.form.get("email", "")
    return _relay_form("email", lambda r, s: relay_set_bounce_address(r, s, raw), "bounce_saved",
                       {"email": raw})


@bp.post("/relay/domains")
def relay_domains_add():
    raw = request.form.get("domain", "")
    return _relay_form("domain", lambda r, s: relay_add_domain(r, s, raw), "domain_added", {"domain": raw})


@bp.post("/relay/domains/<name>/delete")
def relay_domains_remove(name: str):
    return _relay_form("domains", lambda r, s: relay_remove_domain(r, s, name), "domain_removed", {})


# --- relay JSON -----------------------------------------------------------------------------------

def _json_body() -> dict[str, Any]:
    raw = request.get_data(cache=True)
    data = inputs.loads(raw) if raw.strip() else {}
    if not isinstance(data, dict):
        raise ClientError("The body must be a JSON object.", status=400, code="malformed_json")
    return data


def _only(data: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = {k: "Unknown field." for k in data if k not in allowed}
    if unknown:
        raise InvalidInput(unknown)


@api_bp.get("/relay")
def api_relay():
    runtime, service = _ctx()
    return jsonify(relay_view(runtime, service))


@api_bp.post("/relay/password")
def api_relay_password():
    runtime, service = _ctx()
    require_csrf()
    return jsonify(relay_regenerate_password(runtime, service))


@api_bp.put("/relay/allowed-ips")
def api_relay_ips():
    runtime, service = _ctx()
    require_csrf()
    data = _json_body()
    _only(data, ("ips",))
    if "ips" not in data:
        raise InvalidInput({"ips": "Give a list of IP addresses or networks (empty to allow none)."})
    return jsonify({"allowed_ips": relay_set_allowed_ips(runtime, service, data["ips"])})


@api_bp.put("/relay/bounce-address")
def api_relay_bounce():
    runtime, service = _ctx()
    require_csrf()
    data = _json_body()
    _only(data, ("email",))
    return jsonify({"bounce_address": relay_set_bounce_address(runtime, service, data.get("email"))})


@api_bp.post("/relay/domains")
def api_relay_domain_add():
    runtime, service = _ctx()
    require_csrf()
    data = _json_body()
    _only(data, ("domain",))
    return jsonify({"domains": relay_add_domain(runtime, service, data.get("domain"))}), 201


@api_bp.delete("/relay/domains/<name>")
def api_relay_domain_remove(name: str):
    runtime, service = _ctx()
    require_csrf()
    relay_remove_domain(runtime, service, name)
    return "", 204
