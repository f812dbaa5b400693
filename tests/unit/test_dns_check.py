"""provisioner.client.dns_check against a tiny DNS server on 127.0.0.1 (no internet).

``LocalDns`` answers UDP queries from a dict with dnspython's own message
handling; names under ``timeout.`` are never answered and names under
``servfail.`` answer SERVFAIL. The integration tests of the client area use it too.
"""
from __future__ import annotations

import socket
import threading
import time

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from provisioner.client.dns_check import (ERROR, FAIL, PASS, DnsChecker, check_record, fqdn,
                                          parse_nameservers)


class LocalDns:
    """An authoritative-looking DNS server for tests: ``add(name, type, *rdata_texts)``."""

    def __init__(self):
        self.records: dict[tuple[str, str], list[str]] = {}
        self.queries: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def add(self, name: str, rdtype: str, *values: str) -> "LocalDns":
        with self._lock:
            self.records.setdefault((name.rstrip(".").lower(), rdtype.upper()), []).extend(values)
        return self

    def clear(self) -> None:
        with self._lock:
            self.records.clear()

    @property
    def address(self) -> str:
        assert self._sock is not None
        host, port = self._sock.getsockname()
        return f"{host}:{port}"

    def start(self) -> "LocalDns":
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self._thread = threading.Thread(target=self._serve, name="local-dns", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> "LocalDns":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                wire, peer = self._sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                query = dns.message.from_wire(wire)
            except Exception:
                continue
            answer = self._answer(query)
            if answer is not None:
                try:
                    self._sock.sendto(answer.to_wire(), peer)
                except OSError:
                    return

    def _answer(self, query: dns.message.Message) -> dns.message.Message | None:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        name = question.name.to_text().rstrip(".").lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        with self._lock:
            self.queries.append((name, rdtype))
            values = list(self.records.get((name, rdtype), []))
            known = any(n == name for n, _ in self.records)
        if name.startswith("timeout.") or name == "timeout":
            return None
        if name.startswith("servfail.") or name == "servfail":
            response.set_rcode(dns.rcode.SERVFAIL)
            return response
        if values:
            response.answer.append(dns.rrset.from_text_list(question.name, 300, dns.rdataclass.IN,
                                                            question.rdtype, values))
        elif not known:
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response


@pytest.fixture
def local_dns():
    server = LocalDns().start()
    yield server
    server.stop()


@pytest.fixture
def checker(local_dns):
    return DnsChecker([local_dns.address], timeout=1.0, lifetime=2.0)


# --- names and settings -----------------------------------------------------------------------

def test_parse_nameservers():
    assert parse_nameservers("127.0.0.1:5353 9.9.9.9") == [("127.0.0.1", 5353), ("9.9.9.9", 53)]
    assert parse_nameservers(["[::1]:5300", "::1"]) == [("::1", 5300), ("::1", 53)]
    assert parse_nameservers(None) == [] and parse_nameservers("") == []
    with pytest.raises(ValueError):
        parse_nameservers("127.0.0.1:notaport")
    with pytest.raises(ValueError):
        parse_nameservers("127.0.0.1:70000")


def test_fqdn_makes_relative_names_full():
    assert fqdn("@", "Example.com") == "example.com"
    assert fqdn("", "example.com") == "example.com"
    assert fqdn("Example.COM.", "example.com") == "example.com"
    assert fqdn("dkim._domainkey", "example.com") == "dkim._domainkey.example.com"
    assert fqdn("_dmarc", "example.com") == "_dmarc.example.com"
    assert fqdn("webmail", "example.com") == "webmail.example.com"
    assert fqdn("webmail.example.com", "example.com") == "webmail.example.com"
    assert fqdn("mx01.qboxmail.com.", "example.com") == "mx01.qboxmail.com"


def test_timeout_must_be_positive():
    with pytest.raises(ValueError):
        DnsChecker(["127.0.0.1"], timeout=0)


# --- MX -----------------------------------------------------------------------------------------

def test_mx_pass_with_host_and_priority(local_dns, checker):
    local_dns.add("example.com", "MX", "10 mx01.qboxmail.com.", "20 mx02.qboxmail.com.")
    result = checker.check({"type": "MX", "host": "example.com", "value": "mx01.qboxmail.com", "priority": 10})
    assert result.status == PASS and result.passed
    assert "mx01.qboxmail.com" in result.reason
    assert result.found == ("10 mx01.qboxmail.com", "20 mx02.qboxmail.com")


def test_mx_wrong_priority_fails_and_says_so(local_dns, checker):
    local_dns.add("example.com", "MX", "30 mx01.qboxmail.com.")
    result = checker.check({"type": "MX", "host": "example.com", "value": "MX01.qboxmail.com.", "priority": 10})
    assert result.status == FAIL
    assert result.reason == "mx01.qboxmail.com is published with priority 30; it should be 10."


def test_mx_other_host_fails_naming_what_is_there(local_dns, checker):
    local_dns.add("example.com", "MX", "10 mail.oldhost.net.")
    result = checker.check({"type": "MX", "host": "example.com", "value": "mx01.qboxmail.com", "priority": 10})
    assert result.status == FAIL
    assert result.reason == ("mx01.qboxmail.com is not among the MX records of example.com (mail.oldhost.net). "
                             "Add it with priority 10.")


def test_mx_without_priority_matches_any_preference(local_dns, checker):
    local_dns.add("example.com", "MX", "50 mx.emailarray.com.")
    assert checker.check({"type": "MX", "host": "example.com", "value": "mx.emailarray.com"}).passed


def test_missing_record_type_fails(local_dns, checker):
    local_dns.add("example.com", "A", "192.0.2.1")
    result = checker.check({"type": "MX", "host": "example.com", "value": "mx01.qboxmail.com", "priority": 10})
    assert result.status == FAIL
    assert result.reason == "No MX record is published at example.com yet."


def test_unknown_name_fails_with_nxdomain_in_plain_words(checker):
    result = checker.check({"type": "TXT", "host": "nothing-here.example.com", "value": "x"})
    assert result.status == FAIL
    assert "does not exist in DNS yet" in result.reason


# --- TXT ----------------------------------------------------------------------------------------

def test_txt_contains(local_dns, checker):
    local_dns.add("example.com", "TXT", '"google-site-verification=abc"',
                  '"v=spf1 include:spf.qboxmail.com mx a -all"')
    result = checker.check({"type": "TXT", "host": "example.com", "value": "include:spf.qboxmail.com"})
    assert result.passed
    assert checker.check({"type": "TXT", "host": "example.com",
                          "value": "v=spf1 include:spf.qboxmail.com mx a -all"}).passed


def test_txt_split_strings_are_joined(local_dns, checker):
    key = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" + "x" * 300
    value = f"v=DKIM1; k=rsa; p={key}"
    chunks = " ".join(f'"{value[i:i + 200]}"' for i in range(0, len(value), 200))
    local_dns.add("dkim._domainkey.example.com", "TXT", chunks)
    result = checker.check({"type": "TXT", "host": "dkim._domainkey", "value": value}, domain="example.com")
    assert result.passed, result.reason


def test_txt_quoted_expected_value(local_dns, checker):
    local_dns.add("mx-verification.example.com", "TXT", '"token-123"')
    assert checker.check({"type": "TXT", "host": "mx-verification.example.com", "value": '"token-123"'}).passed


def test_txt_other_spf_record_says_replace_it(local_dns, checker):
    local_dns.add("example.com", "TXT", '"v=spf1 include:_spf.google.com ~all"')
    result = checker.check({"type": "TXT", "host": "example.com",
                            "value": "v=spf1 include:spf.qboxmail.com mx a -all"})
    assert result.status == FAIL
    assert "different SPF record" in result.reason and "only one SPF record" in result.reason


def test_txt_without_the_value_fails(local_dns, checker):
    local_dns.add("example.com", "TXT", '"something else"')
    result = checker.check({"type": "TXT", "host": "example.com", "value": "token-123"})
    assert result.status == FAIL and "contains the expected value" in result.reason
    assert result.found == ("something else",)


# --- CNAME, A -----------------------------------------------------------------------------------

def test_cname(local_dns, checker):
    local_dns.add("webmail.example.com", "CNAME", "webmail.us.sim.invalid.")
    assert checker.check({"type": "CNAME", "host": "webmail.example.com",
                          "value": "webmail.us.sim.invalid"}).passed
    result = checker.check({"type": "CNAME", "host": "webmail.example.com", "value": "webmail.in.sim.invalid"})
    assert result.status == FAIL
    assert result.reason == "webmail.example.com points to webmail.us.sim.invalid, not to webmail.in.sim.invalid."


def test_a_record(local_dns, checker):
    local_dns.add("verify.example.com", "A", "192.0.2.53")
    assert checker.check({"type": "A", "host": "verify.example.com", "value": "192.0.2.53"}).passed
    assert checker.check({"type": "A", "host": "verify.example.com", "value": "192.0.2.54"}).status == FAIL


# --- what cannot be checked ---------------------------------------------------------------------

def test_unsupported_type_and_incomplete_record(checker):
    assert checker.check({"type": "SRV", "host": "_imaps._tcp.example.com", "value": "0 1 993 imap"}).status == ERROR
    assert checker.check({"type": "TXT", "host": "", "value": "x"}).status == ERROR
    assert checker.check({"type": "TXT", "host": "example.com", "value": ""}).status == ERROR


def test_timeout_is_an_error_not_a_failure(local_dns):
    checker = DnsChecker([local_dns.address], timeout=0.2, lifetime=0.5)
    started = time.monotonic()
    result = checker.check({"type": "TXT", "host": "timeout.example.com", "value": "x"})
    assert time.monotonic() - started < 3
    assert result.status == ERROR and not result.passed
    assert "did not answer within 0.5 seconds" in result.reason


def test_servfail_is_an_error(local_dns, checker):
    result = checker.check({"type": "MX", "host": "servfail.example.com", "value": "mx", "priority": 1})
    assert result.status == ERROR and "did not give an answer" in result.reason


def test_check_record_and_check_all(local_dns):
    local_dns.add("example.com", "MX", "10 mx.example.net.")
    records = [{"type": "MX", "host": "@", "value": "mx.example.net", "priority": 10},
               {"type": "TXT", "host": "@", "value": "v=spf1"}]
    results = DnsChecker([local_dns.address], timeout=1).check_all(records, domain="example.com")
    assert [r.status for r in results] == [PASS, FAIL]
    assert check_record(records[0], domain="example.com", nameservers=local_dns.address, timeout=1).passed
    assert results[0].as_dict() == {"status": "pass", "passed": True, "reason": results[0].reason,
                                    "found": ["10 mx.example.net"]}


def test_queries_go_to_the_configured_server_only(local_dns, checker):
    local_dns.add("example.com", "MX", "10 mx.example.net.")
    checker.check({"type": "MX", "host": "example.com", "value": "mx.example.net"})
    assert ("example.com", "MX") in local_dns.queries
