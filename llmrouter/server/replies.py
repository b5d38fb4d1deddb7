"""What an endpoint answers, independent of how it is sent (ASGI or an httpx transport)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

from ..responses import RouterInfo

__all__ = ["Reply", "StreamReply", "SyncStreamReply"]


@dataclass(slots=True)
class Reply:
    """A whole response body; ``info`` is the router's metadata when a model answered."""

    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json"
    info: RouterInfo | None = None


@dataclass(slots=True)
class StreamReply:
    """A server-sent event stream whose first event is already in hand (so status is 200)."""

    headers: list[tuple[str, str]]
    events: AsyncIterator[bytes]


@dataclass(slots=True)
class SyncStreamReply:
    headers: list[tuple[str, str]]
    events: Iterator[bytes]
