"""Server-sent events: the framing of OpenAI-style streams."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from .codec import loads

__all__ = ["DONE", "aiter_sse_lines", "parse_data_line"]

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


async def aiter_sse_lines(response: httpx.Response) -> AsyncIterator[str]:
    """The lines of an event stream as they arrive.

    SSE is UTF-8 by definition and ends lines with CRLF, LF or CR, so lines are split on
    the bytes (a CR at the end of a chunk waits for the next, which may start with LF) and
    only then decoded: httpx's ``aiter_lines`` would first parse the content type's charset
    and run a text decoder, about a tenth of a streamed call's CPU.
    """
    body = response.aiter_raw() if "content-encoding" not in response.headers else None
    chunks = body if body is not None else response.aiter_bytes()
    pending = b""
    async for chunk in chunks:
        pending += chunk
        if pending.endswith(b"\r"):  # maybe the first half of a CRLF
            head, pending = pending[:-1], b"\r"
        else:
            head, pending = pending, b""
        if b"\r" in head:
            head = head.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *lines, rest = head.split(b"\n")
        pending = rest + pending if pending else rest
        for line in lines:
            yield line.decode("utf-8", "replace")
    tail = pending.rstrip(b"\r")
    if tail:
        yield tail.decode("utf-8", "replace")
