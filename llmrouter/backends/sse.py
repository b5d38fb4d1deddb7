"""Server-sent events: the framing of OpenAI-style streams."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from .codec import loads

__all__ = ["DONE", "aiter_sse_lines", "iter_sse_lines", "parse_data_line"]

DONE = object()


def parse_data_line(line: str) -> dict[str, Any] | object | None:
    """A parsed ``data:`` payload, ``DONE`` for ``[DONE]``, None for other lines.

    Raises ``ValueError`` on a data line that is not JSON: a corrupt stream must
    not be skipped silently.
    """
    if not line.startswith("data:"):
        return None
    payload = line[5:].strip()
    if not payload:
        return None
    if payload == "[DONE]":
        return DONE
    value = loads(payload)
    if not isinstance(value, dict):
        raise ValueError("stream event is not a JSON object")
    return value


class _LineSplitter:
    """Bytes in, lines out. SSE is UTF-8 by definition and ends lines with CRLF, LF or CR
    only, so lines are split on the bytes (a CR at the end of a chunk waits for the next,
    which may start with LF) and decoded afterwards. httpx's ``iter_lines`` splits decoded
    text with ``str.splitlines``, which also breaks on U+2028, U+0085 and other characters
    that are legal inside a JSON string, and costs a charset parse and a text decoder."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending = b""

    def feed(self, chunk: bytes) -> list[str]:
        pending = self.pending + chunk
        held = b""
        if pending.endswith(b"\r"):  # maybe the first half of a CRLF
            pending, held = pending[:-1], b"\r"
        if b"\r" in pending:
            pending = pending.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *lines, rest = pending.split(b"\n")
        self.pending = rest + held
        return [line.decode("utf-8", "replace") for line in lines]

    def close(self) -> list[str]:
        tail = self.pending.rstrip(b"\r")
        self.pending = b""
        return [tail.decode("utf-8", "replace")] if tail else []


async def aiter_sse_lines(response: httpx.Response) -> AsyncIterator[str]:
    """The lines of an event stream as they arrive (see ``_LineSplitter``)."""
    plain = "content-encoding" not in response.headers
    chunks = response.aiter_raw() if plain else response.aiter_bytes()
    splitter = _LineSplitter()
    async for chunk in chunks:
        for line in splitter.feed(chunk):
            yield line
    for line in splitter.close():
        yield line


def iter_sse_lines(response: httpx.Response) -> Iterator[str]:
    """The sync twin of :func:`aiter_sse_lines`."""
    plain = "content-encoding" not in response.headers
    chunks = response.iter_raw() if plain else response.iter_bytes()
    splitter = _LineSplitter()
    for chunk in chunks:
        yield from splitter.feed(chunk)
    yield from splitter.close()
