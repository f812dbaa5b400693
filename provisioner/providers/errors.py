"""One error hierarchy for every upstream adapter.

Each error carries two messages: ``message`` for operators' logs (never a
credential) and ``safe_message`` for end customers (no hostnames, no class
names, no upstream internals). ``retryable`` tells the job queue whether another
attempt can help; permanent errors fail a job at once. Safe messages state what
happened, never what will happen next: the job's state says that.
"""
from __future__ import annotations


class ProviderError(Exception):
    code = "upstream_error"
    retryable = False
    safe_message = "The e-mail platform rejected the request."

    def __init__(self, message: str = "", *, safe_message: str | None = None,
                 status: int | None = None, action: str | None = None,
                 body: str | None = None):
        super().__init__(message or self.safe_message)
        self.message = message or self.safe_message
        if safe_message is not None:
            self.safe_message = safe_message
        self.status = status
        self.action = action
        # The upstream's answer, truncated and already masked by the HTTP client.
        self.body = body

    def scrubbed(self, *secrets: str | None) -> "ProviderError":
        """This error with ``secrets`` (passwords sent in the failed call, which an
        upstream may echo back) masked out of its message and body."""
        for secret in secrets:
            if secret:
                self.message = self.message.replace(secret, "***")
                self.args = (self.message,)
                if self.body:
                    self.body = self.body.replace(secret, "***")
        return self


class AuthError(ProviderError):
    """Bad credentials, IP not whitelisted, access denied: an operator must act."""
    code = "upstream_auth"
    safe_message = "The e-mail platform refused our credentials; support has been notified."


class ValidationError(ProviderError):
    """The upstream rejected the parameters; retrying the same call cannot help."""
    code = "upstream_validation"
    safe_message = "The e-mail platform rejected the request as invalid."


class NotFound(ProviderError):
    code = "upstream_not_found"
    safe_message = "The requested object does not exist on the e-mail platform."


class Conflict(ProviderError):
    """The object already exists (or is in a state that forbids the call)."""
    code = "upstream_conflict"
    safe_message = "The e-mail platform reports a conflict with an existing object."


class LimitExceeded(ProviderError):
    """The upstream refused because an account or plan limit is reached."""
    code = "upstream_limit"
    safe_message = "A limit of the e-mail platform has been reached."


class NotSupported(ProviderError):
    code = "not_supported"
    safe_message = "This action is not supported by the e-mail platform."


class ConfigurationError(ProviderError):
    """Our side is misconfigured (unknown upstream, missing setting)."""
    code = "configuration_error"
    safe_message = "The service is not configured correctly; support has been notified."


class RateLimited(ProviderError):
    code = "upstream_rate_limited"
    retryable = True
    safe_message = "The e-mail platform is busy."

    def __init__(self, message: str = "", *, retry_after: float | None = None, **kw):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class Unavailable(ProviderError):
    """5xx, connection errors, timeouts: the call may or may not have been applied."""
    code = "upstream_unavailable"
    retryable = True
    safe_message = "The e-mail platform is temporarily unavailable."


class MalformedResponse(Unavailable):
    code = "upstream_malformed_response"
    safe_message = "The e-mail platform sent an unreadable answer."


class Pending(ProviderError):
    """The upstream accepted the work but has not finished it (asynchronous activation).

    Not a failure: the job is checked again after ``retry_after`` seconds and the
    wait does not use up its attempts.
    """
    code = "upstream_pending"
    retryable = True
    safe_message = "The e-mail platform is still setting this up."

    def __init__(self, message: str = "", *, retry_after: float = 5.0, **kw):
        super().__init__(message, **kw)
        self.retry_after = retry_after
