"""Event-stream lines split on bytes: every line ending, in any chunking, and UTF-8 split
across chunks, give the same lines as httpx's text decoder."""

from __future__ import annotations

import asyncio
import itertools

import httpx
import pytest

from llmrouter.backends.sse import DONE, aiter_sse_lines, parse_data_line

STREAM = (
    'data: {"choices": [{"delta": {"content": "héllo ✓"}}]}\r\n\r\n'
    ": a comment\n"
    'data: {"choices": [{"delta": {"content": "wörld"}}]}\n\n'
    "event: x\r"
    'data: {"n": 3}\r\r'
    "data: [DONE]"
).encode()


def lines_of(chunks: list[bytes], encoded: bool = False) -> list[str]:
    class Chunks(httpx.AsyncByteStream):
        async def __aiter__(self):  # type: ignore[override]
            for chunk in chunks:
                yield chunk

    headers = {"content-type": "text/event-stream"}
    response = httpx.Response(200, headers=headers, stream=Chunks())

    async def collect() -> list[str]:
        return [line async for line in aiter_sse_lines(response)]

    return asyncio.run(collect())


def httpx_lines(data: bytes) -> list[str]:
    response = httpx.Response(200, content=data)
    return list(response.iter_lines())


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(STREAM)])
def test_any_chunking_gives_httpx_lines(size: int) -> None:
    chunks = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    assert lines_of(chunks) == httpx_lines(STREAM)


def test_every_split_point_of_crlf_and_multibyte_characters() -> None:
    expected = httpx_lines(STREAM)
    for cut in range(1, len(STREAM)):
        assert lines_of([STREAM[:cut], STREAM[cut:]]) == expected, cut


def test_events_parse() -> None:
    parsed = [parse_data_line(line) for line in lines_of([STREAM])]
    data = [p for p in parsed if p is not None]
    assert data[0] == {"choices": [{"delta": {"content": "héllo ✓"}}]}
    assert data[-1] is DONE
    assert len(list(itertools.chain(data))) == 4
