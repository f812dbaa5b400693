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



def imap_append(port: int, user: str, password: str, size: int) -> str:
    """APPEND a message of about ``size`` bytes to INBOX; Dovecot's status ("OK" or "NO")."""
    line = b"x" * 76 + b"\r\n"
    message = b"Subject: quota\r\n\r\n" + line * max(1, size // len(line))
    with imaplib.IMAP4("127.0.0.1", port, timeout=TIMEOUT) as imap:
        imap.login(user, password)
        status, _ = imap.append("INBOX", None, None, message)
        imap.logout()
        return status


def imap_quota(port: int, user: str, password: str) -> tuple[int, int]:
    """Dovecot's (used, limit) for INBOX's STORAGE quota, in KiB; (0, 0) when there is none."""
    with imaplib.IMAP4("127.0.0.1", port, timeout=TIMEOUT) as imap:
        imap.login(user, password)
        status, data = imap.getquotaroot("INBOX")
        imap.logout()
    assert status == "OK", data
    for item in data[1]:
        text = item.decode() if isinstance(item, bytes) else str(item)
        if "STORAGE" in text:
            used, limit = text.split("STORAGE", 1)[1].strip(" ()").split()[:2]
            return int(used), int(limit)
    return 0, 0
