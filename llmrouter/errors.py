"""Exceptions, each carrying the HTTP status and OpenAI error type it maps to.

The sidecar turns any of these into an OpenAI-style error body without a
lookup table of its own: the exception knows how it should be reported.
"""

from __future__ import annotations

__all__ = [
    "BudgetExceeded",
    "ContextTooLarge",
    "InvalidRequest",
    "LLMRouterError",
    "NoBackendAvailable",
    "PolicyError",
    "StreamInterrupted",
    "UnknownBackend",
    "UpstreamError",
]


class LLMRouterError(Exception):
    """Base class of every error llmrouter raises on purpose."""

    status_code: int = 500
    error_type: str = "server_error"
    code: str | None = None
    param: str | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PolicyError(LLMRouterError):
    """A policy file is invalid; the message names the file, line and key."""

    status_code = 500
    error_type = "configuration_error"

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        location = file or "<policy>"
        if line is not None:
            location += f":{line}"
        prefix = f"{location}: " if file or line is not None else ""
        where = f"'{key}': " if key else ""
        super().__init__(f"{prefix}{where}{message}")
        self.file = file
        self.line = line
        self.key = key


class InvalidRequest(LLMRouterError):
    """The request itself is malformed (bad messages, bad parameter value)."""

    status_code = 400
    error_type = "invalid_request_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class UnknownBackend(InvalidRequest):
    """A pinned model name matches no backend of the policy."""

    status_code = 404
    code = "model_not_found"

    def __init__(self, name: str, valid: list[str]) -> None:
        super().__init__(
            f"unknown model {name!r}; valid models: {', '.join(['auto', *valid])}", param="model"
        )
        self.name = name
        self.valid = valid


class ContextTooLarge(InvalidRequest):
    """The prompt fits no backend's context window."""

    code = "context_length_exceeded"

    def __init__(self, message: str) -> None:
        super().__init__(message, param="messages")


class NoBackendAvailable(LLMRouterError):
    """Every backend was excluded (capabilities, health, cost or latency caps).

    When the request's own demands excluded them all (a capability no backend has, a
    cost or latency cap nothing meets) it is the caller's 400; when some backend was
    out only for its health, it is a 503 worth retrying later.
    """

    status_code = 503
    error_type = "service_unavailable"
    code = "no_backend_available"

    def __init__(self, message: str, *, caller_limits: bool = False) -> None:
        super().__init__(message)
        if caller_limits:
            self.status_code = 400
            self.error_type = "invalid_request_error"


class BudgetExceeded(LLMRouterError):
    """A hard budget would be exceeded by this call."""

    status_code = 429
    error_type = "insufficient_quota"
    code = "budget_exceeded"


_UPSTREAM_STATUS = {"timeout": 504, "rate_limited": 429, "client_error": 400}


class UpstreamError(LLMRouterError):
    """A backend failed and no fallback could answer; ``kind`` says how it failed."""

    status_code = 502
    error_type = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        backend: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.backend = backend
        self.status = status
        self.retry_after = retry_after
        self.code = kind
        # What the caller should see: a timeout is 504, a persistent 429 stays 429 (with
        # Retry-After), an upstream 4xx about the request itself is the caller's 400.
        self.status_code = _UPSTREAM_STATUS.get(kind, 502)


class StreamInterrupted(UpstreamError):
    """A stream failed after its first chunk: the answer received so far is incomplete."""

    def __init__(self, message: str, *, backend: str | None = None) -> None:
        super().__init__(message, kind="stream_interrupted", backend=backend)
