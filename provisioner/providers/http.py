"""The one HTTP client every upstream adapter uses.

It owns what every adapter would otherwise get subtly wrong on its own: a
timeout on every call, retries only where they are safe, one mapping from HTTP
answers to ``provisioner.providers.errors``, masked logs and metrics.

Providers plug in what differs per upstream through ``error_mapper``: a
function ``(response, parsed_body) -> ProviderError | None`` that runs before
the status mapping, so upstreams that report errors inside ``200`` answers
(ResellerClub's ``{"status": "ERROR"}``, PolarisMail's ``returncode``, JSON-RPC
``error`` objects) or give a status a special meaning (a sandbox ``422
limit_exceeded``) can say so. Returning None falls back to the status mapping.
"""
from __future__ import annotations

import contextlib
import contextvars
import email.utils
import json as jsonlib
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus, urlsplit

import requests
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from provisioner.metrics import UPSTREAM_CALLS, UPSTREAM_DURATION

from ..lease import check_current, wait_allowed
from .errors import (
    AuthError,
    ConfigurationError,
    Conflict,
    MalformedResponse,
    NotFound,
    ProviderError,
    RateLimited,
    Unavailable,
    ValidationError,
)
from .pacing import TokenBucket, bucket_for

log = logging.getLogger("provisioner.upstream")

# Set while a background pass reads listings: its answered calls are logged at DEBUG
# (every interval, every upstream); failures still show as warnings.
_QUIET = contextvars.ContextVar("provisioner_quiet_upstream_responses", default=False)


@contextlib.contextmanager
def quiet_responses():
    """Log the successful upstream calls made inside at DEBUG instead of INFO."""
    token = _QUIET.set(True)
    try:
        yield
    finally:
        _QUIET.reset(token)

ErrorMapper = Callable[[requests.Response, Any], "ProviderError | None"]
Timeout = float | tuple[float, float]

MASK = "***"
BODY_LOG_LIMIT = 2000      # characters of a body kept in logs and on errors
MESSAGE_LIMIT = 200        # characters of an upstream message kept in error messages


# --- masking ------------------------------------------------------------------

# Key names whose values are secrets, compared lower-case with "-", "_", "." and
# spaces removed: "API-Key", "api_key" and "apikey" are one name.
_SECRET_KEYS = frozenset({"pass", "pwd", "key", "pin", "otp", "sid", "hplsauth"})
_SECRET_KEY_PARTS = ("password", "passwd", "passphrase", "secret", "token", "apikey",
                     "auth", "session", "cookie", "credential", "signature", "privatekey")
_KEY_STRIP = re.compile(r"[-_.\s]")

# key=value or "key": "value" pairs in free text (error pages, exception texts).
# A key starts only at a word boundary and is matched possessively, so the scan
# stays linear even on huge unbroken strings (base64 blobs).
_PAIR = re.compile(
    r"""(?<![\w.-])(?P<q>["']?)(?P<key>[A-Za-z][\w.-]*+)(?P=q)(?P<sep>\s*+[:=]\s*+)"""
    r"""(?P<value>(?:Bearer|Basic|Token)\s+[^\s"'&,;]+|"(?:[^"\\]++|\\.)*+"|'[^']*+'|[^\s"'&,;}\]]++)""",
    re.IGNORECASE,
)
# one key=value item of a form body or query string
_FORM_ITEM = re.compile(r"(?P<lead>^|&)(?P<key>[^=&]+)=(?P<value>[^&]*)")
_LOOKS_LIKE_FORM = re.compile(r"^[^=&\s]+=[^&\s]*(?:&[^=&\s]+=[^&\s]*)*$")


def is_secret_key(key: Any) -> bool:
    k = _KEY_STRIP.sub("", str(key).lower())
    return k in _SECRET_KEYS or any(part in k for part in _SECRET_KEY_PARTS)


def truncate(text: str, limit: int = BODY_LOG_LIMIT) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...(+{len(text) - limit} chars)"


class Masker:
    """Hides secrets by key name and by value (every registered secret string,
    also in its URL- and JSON-escaped forms, wherever it appears)."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._values: list[str] = []
        for secret in secrets:
            self.add(secret)

    @staticmethod
    def _variants(secret: str) -> set[str]:
        return {secret, quote(secret, safe=""), quote_plus(secret), jsonlib.dumps(secret)[1:-1]}

    def add(self, secret: str | None) -> None:
        if not secret:
            return
        # longest first, so a secret containing another is replaced whole
        self._values = sorted(set(self._values) | self._variants(str(secret)), key=len, reverse=True)

    def discard(self, secret: str | None) -> None:
        """Stop masking a secret that can no longer appear (an expired session token)."""
        if secret:
            gone = self._variants(str(secret))
            self._values = [value for value in self._values if value not in gone]

    def text(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, MASK)
        return _PAIR.sub(self._mask_pair, text)

    @staticmethod
    def _mask_pair(m: re.Match) -> str:
        if not is_secret_key(m["key"]):
            return m[0]
        value = m["value"]
        masked = f'"{MASK}"' if value.startswith('"') else MASK
        return f"{m['q']}{m['key']}{m['q']}{m['sep']}{masked}"

    def data(self, value: Any) -> Any:
        """A masked copy of JSON-like data (dicts, lists, tuples of pairs)."""
        if isinstance(value, Mapping):
            return {k: (MASK if is_secret_key(k) and v not in (None, "") else self.data(v))
                    for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            if value and all(isinstance(i, tuple) and len(i) == 2 for i in value):
                return [(k, MASK if is_secret_key(k) else self.data(v)) for k, v in value]
            return [self.data(v) for v in value]
        if isinstance(value, bytes):
            return self.data(value.decode("utf-8", "replace"))
        if isinstance(value, str):
            stripped = value.strip()
            if stripped[:1] in ("{", "[") and len(stripped) > 1:
                try:  # JSON nested inside a string value
                    return jsonlib.dumps(self.data(jsonlib.loads(stripped)), ensure_ascii=False)
                except ValueError:
                    pass
            return self.text(value)
        return value

    def query(self, qs: str) -> str:
        def item(m: re.Match) -> str:
            if is_secret_key(unquote_plus(m["key"])):
                return f"{m['lead']}{m['key']}={MASK}"
            return m[0]
        return self.text(_FORM_ITEM.sub(item, qs))

    def url(self, url: str) -> str:
        parts = urlsplit(url)
        path = parts.path + (f"?{self.query(parts.query)}" if parts.query else "")
        return self.text(path)

    def body(self, body: Any, limit: int = BODY_LOG_LIMIT) -> str:
        """A masked, truncated rendering of a request or response body for logs."""
        if body is None or body == b"" or body == "":
            return ""
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        if isinstance(body, str):
            stripped = body.strip()
            try:
                body = jsonlib.loads(stripped)
            except ValueError:
                if _LOOKS_LIKE_FORM.match(stripped):
                    return truncate(self.query(stripped), limit)
                return truncate(self.text(body), limit)
        rendered = jsonlib.dumps(self.data(body), ensure_ascii=False, default=str)
        return truncate(self.text(rendered), limit)


# --- responses --------------------------------------------------------------------

@dataclass
class UpstreamResponse:
    status: int
    data: Any                      # parsed JSON; None for an empty or non-JSON body
    text: str
    headers: Mapping[str, str]
    elapsed: float                 # seconds
    raw: requests.Response = field(repr=False)


def _parse_json(resp: requests.Response) -> tuple[Any, bool]:
    """(parsed body, whether it parsed); an empty body parses as None."""
    if not resp.content or not resp.content.strip():
        return None, True
    try:
        return resp.json(), True
    except ValueError:
        return None, False


def upstream_message(body: Any, text: str = "") -> str:
    """The upstream's own error text, from the common shapes of error answers."""
    if isinstance(body, Mapping):
        err = body.get("error")
        if isinstance(err, Mapping):
            for key in ("message", "msg", "description", "code"):
                if err.get(key):
                    return str(err[key])
        elif isinstance(err, str) and err:
            return err
        message = next((str(body[k]) for k in ("message", "msg", "description", "detail",
                                                "returndata", "error_description")
                        if body.get(k) and isinstance(body[k], (str, int, float))), "")
        errors = body.get("errors")       # Qboxmail: "Validation failed" + per-field errors
        if errors:
            detail = jsonlib.dumps(errors, default=str, ensure_ascii=False)
            return f"{message}: {detail}" if message else detail
        if message:
            return message
    if isinstance(body, list) and body:
        return jsonlib.dumps(body, default=str)
    return text.strip()


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _sent_nothing(exc: requests.RequestException) -> bool:
    """True when the request certainly never reached the server (the connection
    was never established), so even a non-idempotent call may be retried."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError) and exc.args:
        reason = getattr(exc.args[0], "reason", None) if isinstance(exc.args[0], MaxRetryError) else None
        return isinstance(reason, (NewConnectionError, ConnectTimeoutError))
    return False


def _check_timeout(timeout: Any) -> Timeout:
    parts = timeout if isinstance(timeout, tuple) else (timeout,)
    if timeout is None or len(parts) not in (1, 2) or any(
            not isinstance(p, (int, float)) or p <= 0 for p in parts):
        raise ValueError(f"an upstream call needs a positive timeout, got {timeout!r}")
    return timeout


# --- the client ------------------------------------------------------------------------

#: HttpClient's ``rate_limit`` default: the process's bucket of its upstream (pacing.py)
SHARED_BUCKET: Any = object()


class HttpClient:
    """A ``requests.Session`` wrapper bound to one upstream connection.

    ``provider`` names the upstream in logs, metrics and error messages.
    ``secrets`` are values masked wherever they would be logged (API keys,
    passwords); add session tokens obtained later with ``add_secret``.
    ``rate_limit`` paces the calls: by default the bucket this process keeps for the
    upstream named ``provider`` (set from its ``rate_limit`` setting), if any.
    """

    IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

    def __init__(self, provider: str, base_url: str, *,
                 timeout: Timeout = (5, 30),
                 headers: Mapping[str, str] | None = None,
                 secrets: Iterable[str] = (),
                 error_mapper: ErrorMapper | None = None,
                 max_safe_retries: int = 2,
                 backoff: float = 0.2,
                 max_backoff: float = 5.0,
                 retry_after_cap: float = 10.0,
                 rate_limit: TokenBucket | None = SHARED_BUCKET,
                 session: requests.Session | None = None):
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.timeout = _check_timeout(timeout)
        self.headers = {"Accept": "application/json", "User-Agent": "provisioner",
                        **(headers or {})}
        self.masker = Masker(secrets)
        self.error_mapper = error_mapper
        self.max_safe_retries = max(0, int(max_safe_retries))
        self.backoff = backoff
        self.max_backoff = max_backoff
        # A longer Retry-After goes back to the job queue instead of blocking a worker.
        self.retry_after_cap = retry_after_cap
        self.rate_limit: TokenBucket | None = bucket_for(provider) if rate_limit is SHARED_BUCKET else rate_limit
        # requests does not promise that one Session is safe across threads, and
        # worker threads share one provider: each thread gets its own pool.
        self._injected_session = session
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    @property
    def session(self) -> requests.Session:
        if self._injected_session is not None:
            return self._injected_session
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    # --- lifecycle -----------------------------------------------------------------
    def add_secret(self, value: str | None, *, replaces: str | None = None) -> None:
        """Mask ``value`` in every later log line and error (e.g. a session token);
        ``replaces`` is one that can no longer appear, so the list stays short."""
        self.masker.discard(replaces)
        self.masker.add(value)

    def close(self) -> None:
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        if self._injected_session is not None:
            self._injected_session.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- overridable for tests ---------------------------------------------------------
    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter before retry number ``attempt`` (1-based)."""
        ceiling = min(self.max_backoff, self.backoff * (2 ** (attempt - 1)))
        return random.uniform(ceiling / 2, ceiling)

    # --- calls ---------------------------------------------------------------------
    def get(self, path: str, *, action: str, **kw: Any) -> Any:
        return self.request("GET", path, action=action, **kw).data

    def post(self, path: str, *, action: str, **kw: Any) -> Any:
        return self.request("POST", path, action=action, **kw).data

    def put(self, path: str, *, action: str, **kw: Any) -> Any:
        return self.request("PUT", path, action=action, **kw).data

    def patch(self, path: str, *, action: str, **kw: Any) -> Any:
        return self.request("PATCH", path, action=action, **kw).data

    def delete(self, path: str, *, action: str, **kw: Any) -> Any:
        return self.request("DELETE", path, action=action, **kw).data

    def request(self, method: str, path: str, *, action: str,
                params: Mapping[str, Any] | None = None,
                json: Any = None,
                data: Any = None,
                headers: Mapping[str, str] | None = None,
                idempotent: bool | None = None,
                expect_json: bool = True,
                timeout: Timeout | None = None,
                log_bodies: bool = True) -> UpstreamResponse:
        """One logical upstream call, retried where that is safe.

        ``path`` is joined to ``base_url`` (an absolute URL is used as is).
        ``idempotent`` overrides the method's default (GET/HEAD/OPTIONS/PUT/DELETE
        are, POST/PATCH are not); only idempotent calls are retried once the
        request may have reached the server. ``log_bodies=False`` keeps bodies
        out of the logs entirely (e.g. a login answer carrying a session token).
        Raises a ``ProviderError``; never returns an error answer.
        """
        method = method.upper()
        url = path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"
        safe = method in self.IDEMPOTENT_METHODS if idempotent is None else idempotent
        timeout = _check_timeout(self.timeout if timeout is None else timeout)
        merged_headers = {**self.headers, **(headers or {})}
        shown_path = self.masker.url(url)
        attempt = 0
        while True:
            attempt += 1
            if log.isEnabledFor(logging.DEBUG):
                log.debug("upstream request %s %s %s %s attempt=%d params=%s body=%s",
                          self.provider, action, method, shown_path, attempt,
                          self.masker.body(dict(params)) if params else "",
                          self._shown_body(json if json is not None else data, log_bodies),
                          extra=self._extra(action))
            # Inside a job: never send what might land after the job's lease ran out.
            request_seconds = sum(timeout) if isinstance(timeout, tuple) else timeout
            check_current(request_seconds, action)
            if self.rate_limit is not None and self._paced(action, request_seconds):
                check_current(request_seconds, action)      # the wait used some of the lease
            started = time.monotonic()
            try:
                resp = self.session.request(method, url, params=params, json=json, data=data,
                                            headers=merged_headers, timeout=timeout)
            except requests.RequestException as exc:
                elapsed = time.monotonic() - started
                err = self._transport_error(exc, method, shown_path, action, timeout)
                self._record(action, err.code, elapsed)
                self._log_outcome(action, method, shown_path, None, elapsed, err)
                may_retry = isinstance(err, Unavailable) and (safe or _sent_nothing(exc))
                if may_retry and attempt <= self.max_safe_retries:
                    self._wait(action, attempt, None)
                    continue
                # not chained: str(exc) holds the full URL, query secrets included
                raise err from None
            elapsed = time.monotonic() - started
            result, err, retry_after = self._interpret(resp, action, expect_json, elapsed)
            self._record(action, "ok" if err is None else err.code, elapsed)
            self._log_outcome(action, method, shown_path, resp.status_code, elapsed, err)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("upstream response body %s %s %s: %s", self.provider, action,
                          resp.status_code, self._shown_body(resp.content, log_bodies),
                          extra=self._extra(action, resp.status_code))
            if err is None:
                return result
            if isinstance(err, RateLimited) and retry_after and self.rate_limit is not None:
                self.rate_limit.pause(retry_after)        # every thread of this process waits
            retryable = isinstance(err, (Unavailable, RateLimited)) and not isinstance(err, MalformedResponse)
            if safe and retryable and attempt <= self.max_safe_retries:
                if retry_after is None or retry_after <= self.retry_after_cap:
                    self._wait(action, attempt, retry_after)
                    continue
            raise err

    # --- internals ---------------------------------------------------------------------
    def _paced(self, action: str, request_seconds: float) -> bool:
        """Wait for the rate limit's next call (True if it took a while). Not longer than
        the job's lease allows, nor than ``retry_after_cap``: RateLimited instead."""
        allowed = wait_allowed(request_seconds)
        max_wait = self.retry_after_cap if allowed is None else min(allowed, self.retry_after_cap)
        try:
            waited = self.rate_limit.acquire(max_wait, what=f"{self.provider} {action}")
        except RateLimited as err:
            err.action = action
            log.warning("upstream paced %s %s: %s", self.provider, action, err.message,
                        extra=self._extra(action))
            raise
        return waited > 0

    def _wait(self, action: str, attempt: int, retry_after: float | None) -> None:
        delay = self._backoff(attempt)
        if retry_after is not None:
            delay = max(delay, retry_after)
        log.info("upstream retry %s %s in %.2fs (retry %d of %d)", self.provider, action,
                 delay, attempt, self.max_safe_retries, extra=self._extra(action))
        self._sleep(delay)

    def _interpret(self, resp: requests.Response, action: str, expect_json: bool,
                   elapsed: float) -> tuple[UpstreamResponse | None, ProviderError | None, float | None]:
        body, parsed = _parse_json(resp)
        err = self._mapped_error(resp, body if parsed else None)
        status = resp.status_code
        retry_after = parse_retry_after(resp.headers.get("Retry-After")) if status in (429, 503) else None
        if err is None and not 200 <= status < 300:
            err = self._status_error(status, retry_after)
        if err is None and expect_json and not parsed:
            err = MalformedResponse()
        if err is not None:
            if isinstance(err, RateLimited) and err.retry_after is not None:
                retry_after = err.retry_after
            self._finish_error(err, resp, action, body if parsed else None)
            return None, err, retry_after
        return (UpstreamResponse(status=status, data=body if parsed else None, text=resp.text,
                                 headers=resp.headers, elapsed=elapsed, raw=resp), None, None)

    def _mapped_error(self, resp: requests.Response, body: Any) -> ProviderError | None:
        if self.error_mapper is None:
            return None
        try:
            return self.error_mapper(resp, body)
        except ProviderError as err:   # a mapper may raise as well as return
            return err
        except Exception as exc:  # noqa: BLE001 - an answer the mapper cannot read
            return MalformedResponse(f"unreadable answer ({type(exc).__name__})")

    @staticmethod
    def _status_error(status: int, retry_after: float | None) -> ProviderError:
        if status in (401, 403):
            return AuthError()
        if status in (404, 410):
            return NotFound()
        if status == 409:
            return Conflict()
        if status in (400, 422):
            return ValidationError()
        if status == 429:
            return RateLimited(retry_after=retry_after)
        if status == 408 or status >= 500:
            return Unavailable()
        return ProviderError()

    def _finish_error(self, err: ProviderError, resp: requests.Response, action: str, body: Any) -> None:
        """Give every error the same operator message: provider, action, status and a
        short masked upstream text. ``safe_message`` is left alone on purpose."""
        raw = resp.content or b""
        own = err.message if err.message and err.message != err.safe_message else ""
        upstream = own or upstream_message(body, resp.text if raw else "")
        upstream = truncate(" ".join(self.masker.text(upstream).split()), MESSAGE_LIMIT)
        err.status = err.status if err.status is not None else resp.status_code
        err.action = action
        err.body = self.masker.body(raw)
        err.message = f"{self.provider} {action}: HTTP {resp.status_code}" + (f": {upstream}" if upstream else "")
        err.args = (err.message,)

    def _transport_error(self, exc: requests.RequestException, method: str, shown_path: str,
                         action: str, timeout: Timeout) -> ProviderError:
        if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                            requests.exceptions.InvalidSchema)):
            cls: type[ProviderError] = ConfigurationError
            what = "invalid upstream URL"
        elif isinstance(exc, requests.Timeout):
            cls, what = Unavailable, f"timed out ({type(exc).__name__}, timeout={timeout})"
        else:
            cls, what = Unavailable, f"connection failed ({type(exc).__name__})"
        detail = truncate(" ".join(self.masker.text(str(exc)).split()), MESSAGE_LIMIT)
        err = cls(f"{self.provider} {action}: {method} {shown_path} {what}: {detail}", action=action)
        return err

    def _record(self, action: str, outcome: str, elapsed: float) -> None:
        UPSTREAM_CALLS.labels(self.provider, action, outcome).inc()
        UPSTREAM_DURATION.labels(self.provider, action).observe(elapsed)

    def _log_outcome(self, action: str, method: str, shown_path: str, status: int | None,
                     elapsed: float, err: ProviderError | None) -> None:
        extra = self._extra(action, status, elapsed)
        if err is None:
            log.log(logging.DEBUG if _QUIET.get() else logging.INFO,
                    "upstream response %s %s %s %s %s %.0fms", self.provider, action, method,
                    shown_path, status, elapsed * 1000, extra=extra)
        else:
            log.warning("upstream response %s %s %s %s %s %.0fms %s: %s", self.provider, action,
                        method, shown_path, status if status is not None else "-",
                        elapsed * 1000, err.code, err.message, extra=extra)

    def _shown_body(self, body: Any, log_bodies: bool) -> str:
        if not log_bodies:
            return "(not logged)" if body else ""
        return self.masker.body(body)

    def _extra(self, action: str, status: int | None = None, elapsed: float | None = None) -> dict[str, Any]:
        extra: dict[str, Any] = {"upstream_provider": self.provider, "upstream_action": action}
        if status is not None:
            extra["upstream_status"] = status
        if elapsed is not None:
            extra["upstream_ms"] = round(elapsed * 1000, 1)
        return extra
