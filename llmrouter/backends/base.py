"""What every backend client offers the router, and how upstream failures are named."""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

from ..errors import UpstreamError

__all__ = [
    "RETRYABLE_KINDS",
    "BackendClient",
    "error_for_status",
    "parse_retry_after",
]

# Failures worth retrying on the same backend; everything else goes straight to fallback.
RETRYABLE_KINDS = frozenset(
    {"rate_limited", "server_error", "timeout", "connection", "bad_response"}
)


class BackendClient(Protocol):
    """One backend's wire protocol: a request body in, OpenAI-shaped dicts out."""

    def complete(self, body: dict[str, Any], timeout: float) -> dict[str, Any]: ...

    def stream(self, body: dict[str, Any], timeout: float) -> Iterator[dict[str, Any]]: ...

    async def acomplete(self, body: dict[str, Any], timeout: float) -> dict[str, Any]: ...

    def astream(self, body: dict[str, Any], timeout: float) -> AsyncIterator[dict[str, Any]]: ...

    def close(self) -> None: ...

    async def aclose(self) -> None: ...


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(parsed.timestamp() - time.time(), 0.0)


def error_for_status(
    backend: str, status: int, detail: str, retry_after: float | None = None
) -> UpstreamError:
    if status == 429:
        kind = "rate_limited"
    elif status in (401, 403):
        kind = "auth_error"
    elif status == 408 or status == 504:
        kind = "timeout"
    elif status >= 500:
        kind = "server_error"
    else:
        kind = "client_error"
    return UpstreamError(
        f"backend {backend!r} answered HTTP {status}: {detail[:300]}",
        kind=kind,
        backend=backend,
        status=status,
        retry_after=retry_after,
    )
