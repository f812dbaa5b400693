"""Small helpers over a real Modoboa's REST API v2 and Dovecot's IMAP, for tests/real."""
from __future__ import annotations

import imaplib
import secrets

import requests

TIMEOUT = 15        # seconds, every API call and IMAP connection


class Api:
    """Calls ``/api/v2/`` with the instance's token; answers are returned unchecked."""

    def __init__(self, base_url: str, session: requests.Session) -> None:
        self.base = f"{base_url}/api/v2"
        self.http = session

    def get(self, path: str, **params) -> requests.Response:
        return self.http.get(f"{self.base}{path}", params=params, timeout=TIMEOUT)

    def post(self, path: str, body: dict) -> requests.Response:
        return self.http.post(f"{self.base}{path}", json=body, timeout=TIMEOUT)

    def patch(self, path: str, body: dict) -> requests.Response:
        return self.http.patch(f"{self.base}{path}", json=body, timeout=TIMEOUT)

    def delete(self, path: str) -> requests.Response:
        return self.http.delete(f"{self.base}{path}", timeout=TIMEOUT)

    def create_domain(self, name: str, *, quota: int = 500, default_mailbox_quota: int = 100) -> dict:
        answer = self.post("/domains/", {"name": name, "type": "domain", "quota": str(quota),
                                         "default_mailbox_quota": str(default_mailbox_quota),
                                         "enabled": True, "enable_dns_checks": False})
        assert answer.status_code == 201, (answer.status_code, answer.text)
        return answer.json()

    def create_account(self, address: str, password: str, *, quota: int = 50) -> dict:
        answer = self.post("/accounts/", {"username": address, "role": "SimpleUsers", "password": password,
                                          "mailbox": {"use_domain_quota": False, "quota": str(quota)}})
        assert answer.status_code == 201, (answer.status_code, answer.text)
        return answer.json()


def unique_domain() -> str:
    return f"real-{secrets.token_hex(4)}.example.com"


def imap_login(port: int, user: str, password: str) -> bool:
    """True when Dovecot accepts LOGIN; False when it answers NO."""
    with imaplib.IMAP4("127.0.0.1", port, timeout=TIMEOUT) as imap:
        try:
            imap.login(user, password)
        except imaplib.IMAP4.error:
            return False
        imap.logout()
        return True


def imap_store_and_quota(port: int, user: str, password: str, size: int = 0) -> tuple[int, int]:
    """Log in, APPEND a message of about ``size`` bytes to INBOX (if any), and answer
    Dovecot's (used, limit) for the STORAGE quota in KiB (limit 0: unlimited)."""
    with imaplib.IMAP4("127.0.0.1", port, timeout=TIMEOUT) as imap:
        imap.login(user, password)
        if size:
            body = b"Subject: quota\r\n\r\n" + b"x" * 76 + b"\r\n"
            message = body.replace(b"x" * 76 + b"\r\n", (b"x" * 76 + b"\r\n") * max(1, size // 78))
            status, _ = imap.append("INBOX", None, None, message)
            assert status == "OK"
        status, data = imap.getquotaroot("INBOX")
        assert status == "OK", data
        imap.logout()
    for line in data[1]:
        text = line.decode() if isinstance(line, bytes) else str(line)
        if "STORAGE" in text:
            words = text.split("STORAGE", 1)[1].strip(" ()").split()
            return int(words[0]), int(words[1])
    return 0, 0
