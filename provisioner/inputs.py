"""What every request's text must be before anything reads it further.

JSON bodies (hooks, the admin API, the client area) are decoded by ``loads``: strict
UTF-8, finite numbers only (no ``NaN``, ``Infinity`` or ``1e400``), nested at most
``MAX_DEPTH`` levels, and no string holding a NUL byte, another control character or a
lone surrogate. Paths, query strings and form fields are checked by ``check_url_text``
(the web app does it before any view runs), where invalid UTF-8 (decoded as U+FFFD) is
refused too. PostgreSQL refuses NUL bytes and lone surrogates where SQLite stores them,
and deep structures overflow encoders: refusing them here gives one clear 400 on both
databases, before anything is stored.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

#: deeper than any event or API body we define (an event is 3 levels; options 4)
MAX_DEPTH = 32
#: C0 controls but tab, newline and carriage return; DEL; lone surrogates
BAD_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
#: the same and U+FFFD, which invalid UTF-8 in a URL or form decodes to
BAD_URL_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffd]")


class InputError(ValueError):
    """A request refused before it is read: a status, a code and a message."""

    def __init__(self, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InputError("malformed_json", f"The number {text[:40]} is too large (numbers must be finite).")
    return value


def _constant(name: str):
    raise InputError("malformed_json", f"{name} is not a JSON number (numbers must be finite).")


def loads(raw: bytes) -> Any:
    """The decoded JSON document, or an InputError naming what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError("malformed_json", f"The body is not UTF-8: {exc.reason} at byte {exc.start}.") from None
    try:
        data = json.loads(text, parse_float=_finite, parse_constant=_constant)
    except RecursionError:
        raise InputError("malformed_json", f"The body is nested more than {MAX_DEPTH} levels deep.") from None
    except InputError:
        raise
    except ValueError as exc:
        raise InputError("malformed_json", f"The body is not valid JSON: {exc}.") from None
    check_value(data)
    return data


def check_value(data: Any) -> None:
    """Depth and characters of a decoded document (iteratively: no recursion to overflow)."""
    stack: list[tuple[Any, str, int]] = [(data, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InputError("malformed_json", f"The body is nested more than {MAX_DEPTH} levels deep.")
        if isinstance(value, dict):
            for key, item in value.items():
                where = f"{path}.{key}" if path else str(key)
                check_text(str(key), where)
                stack.append((item, where, depth + 1))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                stack.append((item, f"{path}[{index}]", depth + 1))
        elif isinstance(value, str):
            check_text(value, path or "body")


def check_text(value: str, where: str, pattern: re.Pattern = BAD_CHARACTERS) -> None:
    match = pattern.search(value)
    if match:
        raise InputError("invalid_characters",
                         f"{where[:100]} holds a character that is not allowed (U+{ord(match.group()):04X}): "
                         "NUL bytes, control characters, lone surrogates and invalid UTF-8 are refused.",
                         where[:100])


def check_url_text(value: str, where: str) -> None:
    """A path, query parameter or form field (decoded by the web framework)."""
    check_text(value, where, BAD_URL_CHARACTERS)
