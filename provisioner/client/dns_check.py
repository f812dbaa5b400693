"""Check that a DNS record the upstream asks for is published (client area, "check now").

Each expected record (``Service.observed["dns_records"]``: ``{type, host, value,
priority, ttl, purpose}``) is resolved with dnspython and compared:

- ``MX``: an MX record at ``host`` whose exchange is ``value`` (and, when the
  record names one, whose preference is ``priority``);
- ``TXT``: a TXT record at ``host`` that contains ``value`` (the strings of one
  record are joined first, as resolvers and mail servers do);
- ``CNAME``: a CNAME at ``host`` pointing at ``value``;
- ``A`` / ``AAAA``: ``value`` among the addresses published at ``host``.

The answer is a :class:`CheckResult`: ``pass``, ``fail`` (the record is missing
or different, with what was found) or ``error`` (DNS did not answer in time: the
record may be fine), each with a reason in plain words for the customer.

The resolver always has a timeout. Its name servers are the system's unless
given (``nameservers=["127.0.0.1:5353"]``): tests point it at a small local DNS
server, and operators may point it at a resolver that does not cache.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.name
import dns.nameserver
import dns.resolver

DEFAULT_TIMEOUT = 3.0          # seconds per name server
DEFAULT_LIFETIME = 5.0         # seconds for the whole look-up
CHECKABLE = ("MX", "TXT", "CNAME", "A", "AAAA")
PASS, FAIL, ERROR = "pass", "fail", "error"
_MAX_SHOWN = 4                 # values quoted back in a reason
_MAX_VALUE = 80                # characters of one quoted value


@dataclass(frozen=True)
class CheckResult:
    status: str                                  # pass | fail | error
    reason: str                                  # plain words, safe to show a customer
    found: tuple[str, ...] = field(default=())   # what DNS answered at the host, for display

    @property
    def passed(self) -> bool:
        return self.status == PASS

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "passed": self.passed, "reason": self.reason,
                "found": list(self.found)}


def parse_nameservers(raw: str | Iterable[str] | None) -> list[tuple[str, int]]:
    """``"127.0.0.1:5353 9.9.9.9"`` (or a list of such) -> ``[("127.0.0.1", 5353), ("9.9.9.9", 53)]``.

    IPv6 addresses are written in brackets when they carry a port: ``[::1]:5353``."""
    if raw is None:
        return []
    items = raw.replace(",", " ").split() if isinstance(raw, str) else [str(i).strip() for i in raw]
    servers: list[tuple[str, int]] = []
    for item in items:
        if not item:
            continue
        match = re.fullmatch(r"\[([0-9a-fA-F:.]+)\](?::(\d+))?", item)
        if match:
            host, port = match[1], match[2]
        elif item.count(":") == 1:
            host, port = item.split(":")
        else:
            host, port = item, None
        try:
            number = int(port) if port else 53
        except ValueError:
            raise ValueError(f"{item!r}: the port must be a number") from None
        if not 0 < number < 65536:
            raise ValueError(f"{item!r}: the port must be between 1 and 65535")
        servers.append((host, number))
    return servers


def fqdn(host: str, domain: str | None = None) -> str:
    """A record's host as a full name, lower case, without the final dot.

    ``@`` (or empty) is the domain itself; a relative name (``mail``,
    ``dkim._domainkey``, ``_dmarc``) is taken as relative to ``domain``. A name
    written with a final dot is absolute."""
    raw = (host or "").strip().lower()
    domain = (domain or "").strip().rstrip(".").lower()
    name = raw.rstrip(".")
    if name in ("", "@"):
        return domain
    if raw.endswith(".") or not domain or name == domain or name.endswith("." + domain):
        return name
    relative = "." not in name or name.startswith("_") or "._domainkey" in name
    return f"{name}.{domain}" if relative else name


def _name(value: Any) -> str:
    return str(value).strip().rstrip(".").lower()


def _txt_text(rdata: Any) -> str:
    return b"".join(rdata.strings).decode("utf-8", "replace")


def _squash(text: str) -> str:
    text = (text or "").strip()
    # The value as shown to customers may be quoted and split into 255-byte strings.
    if '" "' in text or (text.startswith('"') and text.endswith('"')):
        text = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', text)) or text.strip('"')
    return re.sub(r"\s+", " ", text).strip()


def _short(value: str) -> str:
    return value if len(value) <= _MAX_VALUE else value[:_MAX_VALUE - 1] + "…"


def _listing(values: Iterable[str]) -> str:
    values = list(values)
    shown = ", ".join(_short(v) for v in values[:_MAX_SHOWN])
    return shown + (f" and {len(values) - _MAX_SHOWN} more" if len(values) > _MAX_SHOWN else "")


class DnsChecker:
    """Resolves expected records; one instance may be shared by threads (no cache)."""

    def __init__(self, nameservers: str | Iterable[str] | None = None, *,
                 timeout: float = DEFAULT_TIMEOUT, lifetime: float | None = None):
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.servers = parse_nameservers(nameservers)
        self.timeout = float(timeout)
        self.lifetime = float(lifetime) if lifetime else max(self.timeout, DEFAULT_LIFETIME)

    def _resolver(self) -> dns.resolver.Resolver:
        if self.servers:
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port) for host, port in self.servers]
        else:
            resolver = dns.resolver.Resolver()      # /etc/resolv.conf
        resolver.timeout = self.timeout
        resolver.lifetime = self.lifetime
        resolver.cache = None                       # "check now" means now
        return resolver

    # --- the look-up --------------------------------------------------------------------
    def _query(self, name: str, rdtype: str) -> tuple[list[Any] | None, CheckResult | None]:
        """(answers, None), or (None, a fail/error result) when there is no answer."""
        try:
            resolver = self._resolver()
        except dns.resolver.NoResolverConfiguration:
            return None, CheckResult(ERROR, "The check could not run: this server has no DNS resolver "
                                            "configured. Please try again later.")
        try:
            answer = resolver.resolve(name, rdtype, search=False, raise_on_no_answer=True)
        except dns.resolver.NXDOMAIN:
            return None, CheckResult(FAIL, f"{name} does not exist in DNS yet. Add the {rdtype} record at "
                                           "your DNS provider, then check again.")
        except dns.resolver.NoAnswer:
            return None, CheckResult(FAIL, f"No {rdtype} record is published at {name} yet.")
        except dns.resolver.NoNameservers:
            return None, CheckResult(ERROR, f"The name servers of {name} did not give an answer "
                                            "(they may be misconfigured). Please try again later.")
        except (dns.resolver.LifetimeTimeout, dns.exception.Timeout):
            return None, CheckResult(ERROR, f"DNS did not answer within {self.lifetime:g} seconds. "
                                            "The record may be fine: please try again in a moment.")
        except dns.name.EmptyLabel:
            return None, CheckResult(ERROR, f"{name!r} is not a valid DNS name.")
        except dns.exception.DNSException as exc:
            return None, CheckResult(ERROR, f"The DNS look-up of {name} failed ({type(exc).__name__}). "
                                            "Please try again later.")
        return list(answer), None

    # --- the comparison -----------------------------------------------------------------
    def check(self, record: Mapping[str, Any], domain: str | None = None) -> CheckResult:
        kind = str(record.get("type") or "").strip().upper()
        host = fqdn(str(record.get("host") or ""), domain)
        value = str(record.get("value") or "").strip()
        if not host or not value:
            return CheckResult(ERROR, "This record is incomplete, so it cannot be checked.")
        if kind not in CHECKABLE:
            return CheckResult(ERROR, f"{kind or 'This'} records cannot be checked automatically; "
                                      "compare it with your DNS provider's page.")
        answers, problem = self._query(host, kind)
        if problem is not None:
            return problem
        assert answers is not None
        if kind == "MX":
            return self._mx(host, value, record.get("priority"), answers)
        if kind == "TXT":
            return self._txt(host, value, answers)
        if kind == "CNAME":
            return self._cname(host, value, answers)
        return self._address(host, kind, value, answers)

    def check_all(self, records: Iterable[Mapping[str, Any]], domain: str | None = None) -> list[CheckResult]:
        return [self.check(record, domain) for record in records]

    @staticmethod
    def _mx(host: str, value: str, priority: Any, answers: list[Any]) -> CheckResult:
        want = _name(value)
        found = [(int(a.preference), _name(a.exchange)) for a in answers]
        shown = tuple(f"{pref} {name}" for pref, name in sorted(found))
        try:
            want_pref = int(priority) if priority not in (None, "") else None
        except (TypeError, ValueError):
            want_pref = None
        same_host = [pref for pref, name in found if name == want]
        if not same_host:
            return CheckResult(FAIL, f"{want} is not among the MX records of {host} "
                                     f"({_listing(n for _, n in sorted(found))}). Add it"
                                     + (f" with priority {want_pref}" if want_pref is not None else "") + ".",
                               shown)
        if want_pref is not None and want_pref not in same_host:
            return CheckResult(FAIL, f"{want} is published with priority {same_host[0]}; "
                                     f"it should be {want_pref}.", shown)
        return CheckResult(PASS, f"{host} has the MX record {want}"
                                 + (f" with priority {want_pref}." if want_pref is not None else "."), shown)

    @staticmethod
    def _txt(host: str, value: str, answers: list[Any]) -> CheckResult:
        want = _squash(value)
        texts = [_txt_text(a) for a in answers]
        shown = tuple(_short(t) for t in texts)
        if any(want in _squash(t) for t in texts):
            return CheckResult(PASS, f"The TXT record at {host} is published.", shown)
        spf_want = want.lower().startswith("v=spf1")
        spf_found = [t for t in texts if _squash(t).lower().startswith("v=spf1")]
        if spf_want and spf_found:
            return CheckResult(FAIL, f"{host} has a different SPF record ({_short(spf_found[0])}). "
                                     "Replace it with the one shown: a domain may have only one SPF record.",
                               shown)
        return CheckResult(FAIL, f"None of the {len(texts)} TXT record(s) at {host} contains the expected "
                                 "value. Copy it exactly as shown.", shown)

    @staticmethod
    def _cname(host: str, value: str, answers: list[Any]) -> CheckResult:
        want = _name(value)
        targets = [_name(a.target) for a in answers]
        if want in targets:
            return CheckResult(PASS, f"{host} points to {want}.", tuple(targets))
        return CheckResult(FAIL, f"{host} points to {_listing(targets)}, not to {want}.", tuple(targets))

    @staticmethod
    def _address(host: str, kind: str, value: str, answers: list[Any]) -> CheckResult:
        want = value.strip().lower()
        found = [a.to_text().lower() for a in answers]
        if want in found:
            return CheckResult(PASS, f"{host} has the {kind} record {want}.", tuple(found))
        return CheckResult(FAIL, f"{host} points to {_listing(found)}, not to {want}.", tuple(found))


def check_record(record: Mapping[str, Any], *, domain: str | None = None,
                 nameservers: str | Iterable[str] | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> CheckResult:
    """One record, with a resolver made for the call."""
    return DnsChecker(nameservers, timeout=timeout).check(record, domain)
