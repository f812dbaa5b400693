"""Secrets at rest: encrypted pending passwords, hashed API keys, keyed digests."""
from __future__ import annotations

import hashlib
import hmac
import secrets as _random

from cryptography.fernet import Fernet, InvalidToken

API_KEY_PREFIX = "prov_"


class SecretBox:
    """Encrypts secrets that must be kept until applied (Fernet: AES + HMAC)."""

    def __init__(self, key: str):
        try:
            self._fernet = Fernet(key.encode() if isinstance(key, str) else key)
        except (ValueError, TypeError):
            raise ValueError("PROVISIONER_ENCRYPTION_KEY is not a valid Fernet key "
                             "(32 url-safe base64-encoded bytes)") from None

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ValueError("a stored secret cannot be decrypted with the current "
                             "PROVISIONER_ENCRYPTION_KEY") from None


def new_fernet_key() -> str:
    return Fernet.generate_key().decode()


def new_api_key() -> str:
    return API_KEY_PREFIX + _random.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    # API keys carry 256 random bits, so a plain SHA-256 is enough; no salt needed.
    return hashlib.sha256(key.encode()).hexdigest()


def body_digest(secret_key: str, body: bytes) -> str:
    """A keyed digest of a hook body, so a stored digest reveals nothing about it."""
    return hmac.new(secret_key.encode(), body, hashlib.sha256).hexdigest()
