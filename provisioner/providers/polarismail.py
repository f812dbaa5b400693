"""Adapter for PolarisMail / EmailArray (docs/providers/polarismail.md).

The admin API is one form-encoded endpoint, ``POST {base_url}/admin/json.php``,
whose form field ``action`` names the call. ``action=login`` trades the
reseller's username and password for a token that every other call sends as
``token``; the token is cached for all worker threads and renewed when it ages
out or the API refuses it. Answers are ``{"returncode": 1, "returndata": ...}``;
refusals ``{"returncode": 0, "returndata": "<message>"}``, usually with HTTP 200,
so errors are told apart by their message.

Two sign-ons (``sign_ons``), as PolarisMail's own Blesta module offers them:
**webmail** (``getOTPassAndToken`` answers ``{otp, token, url}``, ``url`` being the
webmail host) and the mailbox's **control panel** (``getOTPass`` answers a one-time
password for ``processlogin.php?u=&p=``).

One account per billing service: the *domain*, whose name is also the account
id. PolarisMail keeps no per-domain limits (mailbox counts, quotas and so on are
the reseller's to enforce), so this adapter has no ``Capability.LIMITS``: the
provisioner enforces the product's limits before it calls ``create_mailbox`` and
friends, and this class stays a faithful client of the API.
"""
from __future__ import annotations

import base64
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import requests

from .base import (
    AccountSpec,
    AccountStatus,
    Alias,
    Capability,
    DistributionList,
    DnsRecord,
    Mailbox,
    MailboxSpec,
    Page,
    Provider,
    UpstreamAccount,
    Usage,
)
from .errors import (
    AuthError,
    ConfigurationError,
    Conflict,
    LimitExceeded,
    MalformedResponse,
    NotFound,
    ProviderError,
    Unavailable,
    ValidationError,
)
from .http import HttpClient

log = logging.getLogger("provisioner.upstream.polarismail")

API_PATH = "/admin/json.php"
LOGIN_PAGE = "/processlogin.php"     # the user control panel's one-time-password login
WEBMAIL = "webmail"
CONTROL_PANEL = "control_panel"
DEFAULT_BASE_URL = "https://cp.emailarray.com"
#: renew the login token before this age (s); public clients cache it for 300 s
TOKEN_MAX_AGE = 240.0
#: login tokens still masked by value after they were replaced (they expire anyway)
MASKED_TOKENS = 8
DEFAULT_QUOTA_GB = 10          # the Blesta module's default mailbox quota
USERS_PAGE = 250               # getAllUsersDomain page size (slicing=1)
VERIFICATION_HOST = "mx-verification"
LIST_TYPE_DISTRIBUTION = 1
ACCOUNT_TYPES = {"basic": 1, "enhanced": 2}
MB_PER_GB = 1000
#: actions whose ``returncode 0`` is an answer, not a refusal: getDomainVerification
#: says "nothing left to verify" that way (how the PolarisMail Blesta module reads it)
ZERO_IS_AN_ANSWER = frozenset({"getDomainVerification"})


# --- errors -------------------------------------------------------------------------

class TokenRejected(AuthError):
    """The API no longer accepts our login token: log in again and repeat the call."""


def _rx(*alternatives: str) -> re.Pattern:
    return re.compile("|".join(alternatives), re.IGNORECASE)


# Message patterns, tried in this order. The real texts are not published; these
# cover what public clients report and what the simulator answers.
_TOKEN = _rx(r"\b(token|session)\b.*\b(invalid|expired|not valid|unknown|missing)\b",
             r"\b(invalid|expired|unknown|missing)\b.*\b(token|session)\b",
             r"not logged in", r"please log ?in")
_AUTH = _rx(r"invalid (login|credentials|username|password)", r"wrong (username|password)",
            r"authentication failed", r"access denied", r"permission denied",
            r"not authori[sz]ed", r"unauthori[sz]ed", r"forbidden", r"not allowed from")
_NOT_VERIFIED = _rx(r"not (been )?verified", r"verification (is )?(pending|required)")
_LIMIT = _rx(r"limit (reached|exceeded)", r"exceed", r"maximum (number|allowed)",
             r"no (more )?(free|available) (accounts|mailboxes|licen)", r"not enough (accounts|quota|space)")
_NOT_FOUND = _rx(r"not found", r"does not exist", r"doesn't exist", r"no such",
                 r"\bno( \w+){1,2} found", r"unknown (domain|user|alias|list|member)")
_CONFLICT = _rx(r"already", r"exists", r"not available", r"unavailable", r"in use", r"taken",
                r"duplicate")


def classify(message: str) -> ProviderError:
    """The error for a ``returncode: 0`` answer, by its message (kept as ``upstream_text``)."""
    if _TOKEN.search(message):
        err: ProviderError = TokenRejected(message)
    elif _AUTH.search(message):
        err = AuthError(message)
    elif _NOT_VERIFIED.search(message):
        err = Conflict(message, safe_message="The domain's ownership has not been verified yet.")
    elif _LIMIT.search(message):
        err = LimitExceeded(message)
    elif _NOT_FOUND.search(message):
        err = NotFound(message)
    elif _CONFLICT.search(message):
        err = Conflict(message)
    else:
        err = ValidationError(message)
    err.upstream_text = message
    return err


def _succeeded(returncode: Any) -> bool:
    if isinstance(returncode, bool):
        return returncode
    if isinstance(returncode, (int, float)) or (isinstance(returncode, str) and returncode.strip()):
        try:
            return int(float(returncode)) == 1
        except ValueError:
            pass
    raise MalformedResponse(f"polarismail: returncode {str(returncode)[:20]!r} is neither 0 nor 1")


def _requested_action(response: requests.Response) -> str:
    """The ``action`` form field of the request ``response`` answers ("" if unknown)."""
    body = getattr(getattr(response, "request", None), "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    return parse_qs(body).get("action", [""])[0] if isinstance(body, str) else ""


def polaris_error(response: requests.Response, body: Any) -> ProviderError | None:
    """Map a PolarisMail answer onto the error hierarchy (None: not an error)."""
    if not 200 <= response.status_code < 300:
        return None                       # the HTTP status says it (Unavailable, RateLimited, ...)
    if not isinstance(body, dict) or "returncode" not in body:
        return MalformedResponse("polarismail: an answer without returncode")
    if _succeeded(body["returncode"]):
        return None
    message = body.get("returndata")
    if not isinstance(message, str) or not message.strip():
        message = body.get("message") if isinstance(body.get("message"), str) else ""
    err = classify(message or "request refused")
    if (_requested_action(response) in ZERO_IS_AN_ANSWER
            and not isinstance(err, (AuthError, NotFound))):
        return None
    return err


# --- answers --------------------------------------------------------------------------

def _data(body: dict[str, Any]) -> Any:
    return body.get("returndata")


def _records(value: Any, what: str) -> list[dict[str, Any]]:
    if value is None or value == "":
        return []
    if isinstance(value, dict):           # PHP arrays with numeric keys may arrive as objects
        value = list(value.values())
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise MalformedResponse(f"polarismail: {what} is not a list of records")
    return value


def _text(record: dict[str, Any], *keys: str) -> str:
    for key in keys:
        value = record.get(key)
        if value not in (None, ""):
            return str(value).strip()
    return ""


def _number(value: Any, default: float = 0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _on(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _gb(quota: Any) -> int | None:
    """A quota from a user record in GB. The API reports MB (1 GB = 1000 MB, as the
    Blesta module converts); small values are taken as GB already."""
    value = _number(quota, -1)
    if value < 0:
        return None
    return int(round(value / MB_PER_GB)) if value >= MB_PER_GB else int(round(value))


def normalise_domain(domain: str) -> str:
    return str(domain or "").strip().rstrip(".").lower()


def _local(object_id: str, domain: str, what: str) -> str:
    """The local part from an id given as ``name`` or ``name@domain``."""
    local, at, other = str(object_id).strip().lower().partition("@")
    if not local or (at and normalise_domain(other) != domain):
        raise NotFound(f"polarismail: no {what} {object_id!r} in {domain}")
    return local


def _fqdn(host: str, domain: str) -> str:
    host = host.strip().rstrip(".")
    if host in ("", "@"):
        return domain
    return host if host == domain or host.endswith("." + domain) else f"{host}.{domain}"


class PolarisMailProvider(Provider):
    kind = "polarismail"
    lists_usage = False          # the account list carries no usage
    capabilities = frozenset({
        Capability.SUSPEND, Capability.BULK_LIST, Capability.MAILBOXES, Capability.ALIASES,
        Capability.LISTS, Capability.DNS, Capability.SSO,
    })
    sign_ons = {WEBMAIL: "Webmail", CONTROL_PANEL: "Mailbox control panel"}
    required_settings = ("base_url", "username", "password")
    mailbox_types = {"basic": "mailboxes", "enhanced": "enhanced_mailboxes"}

    def __init__(self, name: str, config: dict[str, Any], *, session: requests.Session | None = None,
                 monotonic: Callable[[], float] = time.monotonic):
        super().__init__(name, config)
        for setting in self.required_settings:
            if not str(config.get(setting) or "").strip():
                raise ConfigurationError(f"upstream {name}: {setting} is required")
        self.base_url = str(config["base_url"]).rstrip("/")
        self.fallback_url = str(config.get("fallback_url") or "").rstrip("/") or None
        if str(config.get("webmail_url") or "").strip():
            # It used to name processlogin.php, which is the control panel's login, not webmail.
            raise ConfigurationError(f"upstream {name}: webmail_url is now control_panel_url (the "
                                     "processlogin.php page); the webmail host comes from the API")
        self.control_panel_url = (str(config.get("control_panel_url") or "").strip()
                                  or f"{self.base_url}{LOGIN_PAGE}")
        self._username = str(config["username"])
        self._password = str(config["password"])
        self.token_max_age = self._positive(config, "token_max_age", TOKEN_MAX_AGE)
        self.default_quota_gb = self._positive(config, "default_quota_gb", DEFAULT_QUOTA_GB)
        self.mx_hosts = self._mx_hosts(config.get("mx_hosts"))
        timeout = self._positive(config, "timeout", None)
        self.http = HttpClient(name, self.base_url, timeout=timeout or (5, 30),
                               secrets=[self._password], error_mapper=polaris_error, session=session)
        self._monotonic = monotonic
        self._token_lock = threading.Lock()
        self._token: str | None = None
        self._token_at = 0.0
        self._recent_tokens: deque[str] = deque(maxlen=MASKED_TOKENS)

    def _positive(self, config: dict[str, Any], key: str, default: float | None) -> float | None:
        raw = config.get(key)
        if raw in (None, ""):
            return default
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ConfigurationError(f"upstream {self.name}: {key} must be a number") from None
        if value <= 0:
            raise ConfigurationError(f"upstream {self.name}: {key} must be positive")
        return value

    def _mx_hosts(self, raw: Any) -> list[tuple[str, int]]:
        """``mx_hosts``: "host:priority ..." (a string or a list) to publish as MX records."""
        items = raw.split() if isinstance(raw, str) else list(raw or [])
        hosts = []
        for item in items:
            host, _, priority = str(item).partition(":")
            try:
                hosts.append((host.strip().rstrip("."), int(priority or 10)))
            except ValueError:
                raise ConfigurationError(f"upstream {self.name}: mx_hosts entry {item!r} "
                                         "must look like host:priority") from None
        return hosts

    def close(self) -> None:
        self.http.close()

    # --- transport, token --------------------------------------------------------------
    def _post(self, api_action: str, form: dict[str, Any], *, idempotent: bool,
              log_bodies: bool = True) -> dict[str, Any]:
        """One API call on the primary host, then (for calls safe to repeat) the fallback
        host when the primary is down, as PolarisMail's own modules do."""
        data = {"action": api_action, **form}
        try:
            body = self.http.post(API_PATH, action=api_action, data=data, idempotent=idempotent,
                                  log_bodies=log_bodies)
        except Unavailable as err:
            if not (self.fallback_url and idempotent and not isinstance(err, MalformedResponse)
                    and (err.status is None or err.status >= 500)):
                raise
            log.info("upstream %s %s: primary host failed, trying the fallback host", self.name, api_action)
            body = self.http.post(f"{self.fallback_url}{API_PATH}", action=api_action, data=data,
                                  idempotent=idempotent, log_bodies=log_bodies)
        if not isinstance(body, dict):
            raise MalformedResponse(f"{self.name} {api_action}: not a JSON object", action=api_action)
        return body

    def _login(self) -> str:
        """A fresh token; call with ``_token_lock`` held. A refused login is permanent."""
        form = {"username": self._username, "password": self._password}
        try:
            # The answer carries the token: keep bodies out of the logs.
            body = self._post("login", form, idempotent=True, log_bodies=False)
        except ProviderError as err:
            if err.retryable or isinstance(err, ConfigurationError):
                raise
            raise AuthError(err.message, status=err.status, action="login", body=err.body) from None
        token = _data(body)
        if not isinstance(token, str) or not token.strip():
            raise MalformedResponse(f"{self.name} login: no token in the answer", action="login")
        self._mask_token(token)
        self._token, self._token_at = token, self._monotonic()
        return token

    def _mask_token(self, token: str) -> None:
        """Mask ``token`` wherever it would be logged. Tokens are renewed every few minutes
        for the life of the process, so only the latest few stay masked (a late answer
        may still carry one of them); older ones are dropped to keep log lines fast."""
        oldest = self._recent_tokens[0] if len(self._recent_tokens) == MASKED_TOKENS else None
        self._recent_tokens.append(token)
        self.http.add_secret(token, replaces=oldest)

    def _current_token(self, rejected: str | None = None) -> str:
        """The shared token; a new one if it is too old or ``rejected`` is the current one."""
        with self._token_lock:
            token = self._token
            if token is not None and rejected is not None and token != rejected:
                return token                  # another thread already renewed it
            fresh = self._monotonic() - self._token_at < self.token_max_age
            if token is not None and token != rejected and fresh:
                return token
            self._token = None
            return self._login()

    def _call(self, api_action: str, params: dict[str, Any] | None = None, *,
              idempotent: bool = False, log_bodies: bool = True, secret: str | None = None) -> dict[str, Any]:
        """An authenticated call: the answer's JSON object. A rejected token is renewed
        once and the call repeated (a refused call was not applied, so that is safe)."""
        token = self._current_token()
        for attempt in (1, 2):
            try:
                return self._post(api_action, {**(params or {}), "token": token},
                                  idempotent=idempotent, log_bodies=log_bodies)
            except TokenRejected as err:
                if attempt == 2:
                    raise AuthError(f"{self.name} {api_action}: a fresh login token was refused",
                                    status=err.status, action=api_action) from None
                log.info("upstream %s %s: login token no longer accepted, logging in again",
                         self.name, api_action)
                token = self._current_token(rejected=token)
            except ProviderError as err:
                raise err.scrubbed(secret) from None
        raise AssertionError("unreachable")

    # --- connection -------------------------------------------------------------------
    def test_connection(self) -> None:
        with self._token_lock:
            self._login()

    # --- accounts (domains) -----------------------------------------------------------
    def _listing(self, api_action: str, params: dict[str, Any], what: str) -> tuple[list[dict[str, Any]], dict]:
        """(records, whole answer) of a listing call. An answer that there is nothing
        to list counts as an empty list; one that the domain is unknown does not."""
        try:
            body = self._call(api_action, params, idempotent=True)
        except NotFound as err:
            if params.get("domain") and "domain" in getattr(err, "upstream_text", "").lower():
                raise
            return [], {}
        return _records(_data(body), what), body

    def _domains(self) -> list[dict[str, Any]]:
        records, _ = self._listing("getAllDomains", {}, "the domain list")
        return [d for d in records if _text(d, "domain")]

    def _owned(self, domain: str) -> bool:
        return any(normalise_domain(_text(d, "domain")) == domain for d in self._domains())

    def _verification(self, domain: str) -> dict[str, str] | None:
        """The ownership record still to publish, or None once the domain is verified.

        getDomainVerification answers ``returncode 1`` with the record while
        verification is pending and ``returncode 0`` once it is done (how the
        PolarisMail Blesta module reads it)."""
        try:
            body = self._call("getDomainVerification", {"domain": domain}, idempotent=True)
        except (Conflict, ValidationError):
            return None                   # the same "verified" answer, where the mapper could not tell
        if not _succeeded(body.get("returncode")):
            return None
        record = _data(body)
        if isinstance(record, dict):
            return {"type": _text(record, "type") or "TXT",
                    "host": _fqdn(_text(record, "host") or VERIFICATION_HOST, domain),
                    "value": _text(record, "value"), "message": str(body.get("message") or "")}
        return {"type": "TXT", "host": _fqdn(VERIFICATION_HOST, domain),
                "value": "" if record is None else str(record), "message": str(body.get("message") or "")}

    def _users(self, domain: str) -> list[dict[str, Any]]:
        users: list[dict[str, Any]] = []
        while True:
            page, body = self._listing("getAllUsersDomain", {
                "domain": domain, "slicing": 1, "offset": len(users), "limit": USERS_PAGE, "showQuota": 1,
            }, "the user list")
            users.extend(page)
            meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
            total = int(_number(meta.get("all"), -1))
            if len(page) < USERS_PAGE or (0 <= total <= len(users)):
                return users

    def get_account(self, account_id: str) -> UpstreamAccount:
        domain = normalise_domain(account_id)
        info = _data(self._call("getDomainInfo", {"domain": domain}, idempotent=True))
        if not isinstance(info, dict):
            raise MalformedResponse(f"{self.name} getDomainInfo: not a record", action="getDomainInfo")
        verification = self._verification(domain)
        users = self._users(domain)
        if not _on(info.get("active", "1")):
            status = AccountStatus.SUSPENDED
        elif verification is not None:
            status = AccountStatus.PENDING
        else:
            status = AccountStatus.ACTIVE
        usage = Usage(
            mailboxes=len(users),
            enhanced_mailboxes=sum(1 for u in users if str(u.get("account_type")) == "2"),
            aliases=int(_number(info.get("aliases"))),
            distribution_lists=int(_number(info.get("lists"))),
            storage_mb=int(sum(_number(u.get("usage")) for u in users)),
        )
        return UpstreamAccount(id=domain, domain=domain, status=status, limits={}, usage=usage,
                               native={"domain": domain, "info": info, "verification": verification})

    def find_account(self, spec: AccountSpec) -> UpstreamAccount | None:
        # getAllDomains lists the reseller's own domains only: being listed is being ours.
        domain = normalise_domain(spec.domain)
        return self.get_account(domain) if self._owned(domain) else None

    def create_account(self, spec: AccountSpec) -> UpstreamAccount:
        domain = normalise_domain(spec.domain)
        log.info("upstream %s create_account %s (service %s)", self.name, domain, spec.service_id)
        try:
            self._call("isDomainAvailable", {"domain": domain}, idempotent=True)
        except Conflict:
            return self._adopt(domain)
        try:
            self._call("addDomain", {"newdomain": domain})
        except Conflict:
            return self._adopt(domain)        # an earlier attempt whose answer was lost, or a race
        return self.get_account(domain)

    def _adopt(self, domain: str) -> UpstreamAccount:
        if not self._owned(domain):
            raise Conflict(f"{self.name}: {domain} is hosted by another PolarisMail account",
                           safe_message="This domain is already registered with the e-mail platform "
                                        "under another account.", action="addDomain")
        log.info("upstream %s adopts the existing domain %s", self.name, domain)
        return self.get_account(domain)

    def delete_account(self, account_id: str) -> None:
        domain = normalise_domain(account_id)
        log.info("upstream %s delete_account %s", self.name, domain)
        try:
            # A repeat after a lost answer finds nothing and ends below: safe to retry.
            self._call("removeDomain", {"domain": domain}, idempotent=True)
        except NotFound:
            pass

    def _set_active(self, account_id: str, active: bool) -> None:
        self._call("updateDomain", {"domain": normalise_domain(account_id),
                                    "editdomainactive": 1 if active else 0}, idempotent=True)

    def suspend_account(self, account_id: str, reason: str) -> None:
        # PolarisMail keeps no suspension reason; the provisioner records it.
        log.info("upstream %s suspend_account %s", self.name, normalise_domain(account_id))
        self._set_active(account_id, False)

    def unsuspend_account(self, account_id: str) -> None:
        log.info("upstream %s unsuspend_account %s", self.name, normalise_domain(account_id))
        self._set_active(account_id, True)

    def list_accounts(self, page: int = 1, per_page: int = 100) -> Page:
        """Every domain of the reseller from one getAllDomains (the API does not page it),
        paged here. Status is active/suspended only: verification is read per account."""
        page, per_page = max(1, page), max(1, per_page)
        domains = self._domains()
        start = (page - 1) * per_page
        items = [UpstreamAccount(id=normalise_domain(_text(d, "domain")),
                                 domain=normalise_domain(_text(d, "domain")),
                                 status=AccountStatus.ACTIVE if _on(d.get("active", "1")) else AccountStatus.SUSPENDED,
                                 native=d)
                 for d in domains[start:start + per_page]]
        return Page(items=items, page=page, per_page=per_page, total=len(domains))

    # --- DNS, single sign-on -----------------------------------------------------------------
    def dns_records(self, account_id: str) -> list[DnsRecord]:
        domain = normalise_domain(account_id)
        records: list[DnsRecord] = []
        verification = self._verification(domain)
        if verification is not None:
            records.append(DnsRecord(verification["type"], verification["host"], verification["value"],
                                     purpose="ownership check"))
        records.extend(DnsRecord("MX", domain, host, priority=priority, purpose="mail delivery")
                       for host, priority in self.mx_hosts)
        if verification is None:
            dkim = self._dkim(domain)
            if dkim is not None:
                records.append(dkim)
        return records

    def _dkim(self, domain: str) -> DnsRecord | None:
        """The DKIM record; DKIM is enabled (a key generated) first if it has none."""
        data = _data(self._call("getDKIM", {"domain": domain}, idempotent=True))
        data = data if isinstance(data, dict) else {}
        host, key = _text(data, "dkim_host"), _text(data, "dkim_key")
        if not key or not _on(data.get("dkim_enabled")):
            try:
                body = self._call("enableDKIM", {"domain": domain})
            except (Conflict, ValidationError) as err:
                # Not worth failing a converge over: the records are fetched again later.
                log.warning("upstream %s: DKIM for %s not available: %s", self.name, domain, err.message)
                return None
            host = _text(body, "dkimhost") or host
            key = _text(body, "dkimkey") or key
            if not key:
                data = _data(self._call("getDKIM", {"domain": domain}, idempotent=True))
                data = data if isinstance(data, dict) else {}
                host, key = _text(data, "dkim_host") or host, _text(data, "dkim_key")
        if not key:
            return None
        if not key.lower().startswith("v=dkim1"):
            key = f"v=DKIM1; k=rsa; p={key}"
        return DnsRecord("TXT", _fqdn(host or "default._domainkey", domain), key, purpose="DKIM")

    def sso_url(self, account_id: str, mailbox: str | None = None, target: str | None = None) -> str:
        """A one-time sign-on link for ``mailbox`` into ``target`` (``sign_ons``; default
        webmail). The API signs in users, not domains, so a mailbox is required."""
        target = target or WEBMAIL
        if target not in self.sign_ons:
            raise ValidationError(f"{self.name}: no sign-on {target!r}",
                                  safe_message="Choose webmail or the mailbox control panel.")
        domain = normalise_domain(account_id)
        api_action = "getOTPassAndToken" if target == WEBMAIL else "getOTPass"
        if not mailbox:
            raise ValidationError(f"{self.name}: single sign-on needs a mailbox",
                                  safe_message="Choose the mailbox to sign in to.", action=api_action)
        username = _local(mailbox, domain, "mailbox")
        # Both answers are one-time credentials: keep bodies out of the logs.
        data = _data(self._call(api_action, {"username": username, "domain": domain},
                                idempotent=True, log_bodies=False))
        if target == WEBMAIL:
            return self._webmail_link(data)
        if not isinstance(data, str) or not data:
            raise MalformedResponse(f"{self.name} getOTPass: no one-time password", action=api_action)
        query = urlencode({"u": base64.b64encode(f"{username}@{domain}".encode()).decode(),
                           "p": base64.b64encode(data.encode()).decode()})
        return f"{self.control_panel_url}?{query}"

    def _webmail_link(self, data: Any) -> str:
        """The webmail link from getOTPassAndToken's ``{otp, token, url}``. How the webmail
        host takes otp and token is not published (*unverified*): they are added to
        ``url`` as ``otp`` and ``token`` query parameters, here and in the simulator."""
        record = data if isinstance(data, dict) else {}
        otp, token, url = _text(record, "otp"), _text(record, "token"), _text(record, "url")
        parts = urlsplit(url)
        if not (otp and token and parts.scheme in ("http", "https") and parts.netloc):
            raise MalformedResponse(f"{self.name} getOTPassAndToken: no otp, token and webmail url",
                                    action="getOTPassAndToken")
        query = "&".join(q for q in (parts.query, urlencode({"otp": otp, "token": token})) if q)
        return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", query, ""))

    # --- mailboxes --------------------------------------------------------------------------
    @staticmethod
    def _mailbox(record: dict[str, Any], domain: str) -> Mailbox:
        username = _text(record, "username") or _text(record, "email").partition("@")[0]
        return Mailbox(
            id=username, address=f"{username}@{domain}", name=_text(record, "uname", "name"),
            quota_gb=_gb(record.get("quota")),
            type="enhanced" if str(record.get("account_type")) == "2" else "basic",
            enabled=not _on(record.get("disabled")), used_mb=int(_number(record.get("usage"))),
        )

    def _user(self, domain: str, username: str) -> dict[str, Any]:
        record = _data(self._call("getUserInfo", {"username": username, "domain": domain}, idempotent=True))
        if not isinstance(record, dict):
            raise MalformedResponse(f"{self.name} getUserInfo: not a record", action="getUserInfo")
        return record

    def list_mailboxes(self, account_id: str) -> list[Mailbox]:
        domain = normalise_domain(account_id)
        return [self._mailbox(u, domain) for u in self._users(domain)]

    def create_mailbox(self, account_id: str, spec: MailboxSpec) -> Mailbox:
        domain = normalise_domain(account_id)
        username = spec.local_part.strip().lower()
        if spec.type not in ACCOUNT_TYPES:
            raise ValidationError(f"{self.name}: unknown mailbox type {spec.type!r}",
                                  safe_message="The mailbox type must be basic or enhanced.")
        log.info("upstream %s create_mailbox %s@%s", self.name, username, domain)
        quota = _quota(spec.quota_gb if spec.quota_gb is not None else self.default_quota_gb)
        self._call("addUser", {"username": username, "domain": domain,
                               "account_type": ACCOUNT_TYPES[spec.type], "password": spec.password,
                               "quota": quota, "uname": spec.name or ""},
                   secret=spec.password)
        # Built from what was sent: a read failing now must not turn a made mailbox into an error.
        return Mailbox(id=username, address=f"{username}@{domain}", name=spec.name or "",
                       quota_gb=int(round(quota)), type=spec.type)

    def update_mailbox(self, account_id: str, mailbox_id: str, changes: dict[str, Any]) -> Mailbox:
        domain = normalise_domain(account_id)
        username = _local(mailbox_id, domain, "mailbox")
        current = self._mailbox(self._user(domain, username), domain)
        kind = changes.get("type", current.type)
        if kind not in ACCOUNT_TYPES:
            raise ValidationError(f"{self.name}: unknown mailbox type {kind!r}",
                                  safe_message="The mailbox type must be basic or enhanced.")
        log.info("upstream %s update_mailbox %s@%s", self.name, username, domain)
        fields = {"password", "name", "quota_gb", "type"}
        if fields & set(changes):
            # The known clients always send the whole record, so this does too.
            quota = changes.get("quota_gb") or current.quota_gb or self.default_quota_gb
            form: dict[str, Any] = {"editusername": username, "editdomain": domain,
                                    "edituname": changes.get("name", current.name),
                                    "editquota": _quota(quota), "editaccount_type": ACCOUNT_TYPES[kind]}
            password = changes.get("password")
            if password:
                form["editpassword"] = password
            self._call("updateUser", form, idempotent=True, secret=password)
        if "enabled" in changes and bool(changes["enabled"]) != current.enabled:
            self._call("enableUser" if changes["enabled"] else "disableUser",
                       {"username": username, "domain": domain}, idempotent=True)
        return self._mailbox(self._user(domain, username), domain)

    def delete_mailbox(self, account_id: str, mailbox_id: str) -> None:
        domain = normalise_domain(account_id)
        username = _local(mailbox_id, domain, "mailbox")
        log.info("upstream %s delete_mailbox %s@%s", self.name, username, domain)
        self._call("removeUser", {"username": username, "domain": domain})

    # --- aliases -----------------------------------------------------------------------------
    def list_aliases(self, account_id: str) -> list[Alias]:
        domain = normalise_domain(account_id)
        records, _ = self._listing("getAllAliasesDomain", {"domain": domain}, "the alias list")
        aliases = []
        for record in records:
            name = _text(record, "alias", "name").partition("@")[0].lower()
            if name:
                aliases.append(Alias(id=name, address=f"{name}@{domain}",
                                     target=_text(record, "forward", "target", "destination")))
        return aliases

    def list_forwards(self, account_id: str) -> list[Alias]:
        """Every mailbox forward of the domain (getAllForwardsDomain, as the Blesta
        module's forwards tab reads it: ``username`` and ``forward``). A forward copies a
        mailbox's mail elsewhere, unlike an alias, which is an address of its own, so
        these are not aliases: ``address`` is the mailbox, ``id`` is ``mailbox>target``."""
        domain = normalise_domain(account_id)
        records, _ = self._listing("getAllForwardsDomain", {"domain": domain}, "the forward list")
        forwards = []
        for record in records:
            username = _text(record, "username").partition("@")[0].lower()
            target = _text(record, "forward").lower()
            if username and target:
                forwards.append(Alias(id=f"{username}>{target}", address=f"{username}@{domain}", target=target))
        return forwards

    def create_alias(self, account_id: str, local_part: str, target: str) -> Alias:
        domain = normalise_domain(account_id)
        name = local_part.strip().lower()
        log.info("upstream %s create_alias %s@%s", self.name, name, domain)
        self._call("addAlias", {"alias": name, "domain": domain, "forward": target.strip()})
        return Alias(id=name, address=f"{name}@{domain}", target=target.strip().lower())

    def delete_alias(self, account_id: str, alias_id: str) -> None:
        domain = normalise_domain(account_id)
        name = _local(alias_id, domain, "alias")
        log.info("upstream %s delete_alias %s@%s", self.name, name, domain)
        self._call("removeAlias", {"alias": name, "domain": domain})

    # --- distribution lists ----------------------------------------------------------------
    def _members(self, domain: str, lname: str) -> list[str]:
        records, _ = self._listing("getListMembers", {"lname": lname, "domain": domain}, "the member list")
        return [_text(m, "member", "email").lower() for m in records if _text(m, "member", "email")]

    def _list(self, domain: str, lname: str) -> DistributionList:
        return DistributionList(id=lname, address=f"{lname}@{domain}", members=self._members(domain, lname))

    def list_lists(self, account_id: str) -> list[DistributionList]:
        domain = normalise_domain(account_id)
        records, _ = self._listing("getAllListsDomain", {"domain": domain}, "the list of lists")
        names = [_text(r, "lname", "name").partition("@")[0].lower() for r in records]
        return [self._list(domain, name) for name in names if name]

    def create_list(self, account_id: str, local_part: str, members: list[str]) -> DistributionList:
        domain = normalise_domain(account_id)
        lname = local_part.strip().lower()
        log.info("upstream %s create_list %s@%s", self.name, lname, domain)
        self._call("addList", {"newlname": lname, "domain": domain, "newlisttype": LIST_TYPE_DISTRIBUTION})
        for member in _unique(members):
            self._add_member(domain, lname, member)
        return self._list(domain, lname)

    def update_list(self, account_id: str, list_id: str, members: list[str]) -> DistributionList:
        domain = normalise_domain(account_id)
        lname = _local(list_id, domain, "distribution list")
        log.info("upstream %s update_list %s@%s", self.name, lname, domain)
        wanted = _unique(members)
        current = self._members(domain, lname)
        for member in wanted:
            if member not in current:
                self._add_member(domain, lname, member)
        for member in current:
            if member not in wanted:
                self._call("removeListMember", {"lname": lname, "domain": domain, "member": member})
        return self._list(domain, lname)

    def _add_member(self, domain: str, lname: str, member: str) -> None:
        self._call("addListMember", {"editlname": lname, "editdomain": domain, "newmember": member})

    def delete_list(self, account_id: str, list_id: str) -> None:
        domain = normalise_domain(account_id)
        lname = _local(list_id, domain, "distribution list")
        log.info("upstream %s delete_list %s@%s", self.name, lname, domain)
        self._call("removeList", {"lname": lname, "domain": domain})


def _quota(value: float) -> int | float:
    value = float(value)
    return int(value) if value.is_integer() else value


def _unique(members: list[str]) -> list[str]:
    seen: list[str] = []
    for member in members:
        member = str(member).strip().lower()
        if member and member not in seen:
            seen.append(member)
    return seen
