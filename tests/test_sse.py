"""Event-stream lines split on bytes: every line ending (CRLF, LF, CR; nothing else: U+2028
and U+0085 are legal inside JSON strings), in any chunking, with UTF-8 split across chunks."""

from __future__ import annotations

import asyncio
import itertools
import re

import httpx
import pytest

from llmrouter.backends.sse import DONE, aiter_sse_lines, iter_sse_lines, parse_data_line

STREAM = (
    'data: {"choices": [{"delta": {"content": "héllo ✓"}}]}\r\n\r\n'
    ": a comment\n"
    'data: {"choices": [{"delta": {"content": "wörld\u2028next\x85line"}}]}\n\n'
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


def reference_lines(data: bytes) -> list[str]:
    parts = re.split(rb"\r\n|\r|\n", data)
    if parts and parts[-1] == b"":
        parts.pop()
    return [part.decode() for part in parts]


def sync_lines_of(chunks: list[bytes]) -> list[str]:
    response = httpx.Response(200, stream=httpx.ByteStream(b"".join(chunks)))
    return list(iter_sse_lines(response))


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(STREAM)])
def test_any_chunking_gives_reference_lines(size: int) -> None:
    chunks = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    assert lines_of(chunks) == reference_lines(STREAM)


def test_every_split_point_of_crlf_and_multibyte_characters() -> None:
    expected = reference_lines(STREAM)
    for cut in range(1, len(STREAM)):
        assert lines_of([STREAM[:cut], STREAM[cut:]]) == expected, cut


def test_events_parse() -> None:
    parsed = [parse_data_line(line) for line in lines_of([STREAM])]
    data = [p for p in parsed if p is not None]
    assert data[0] == {"choices": [{"delta": {"content": "héllo ✓"}}]}
    assert data[1] == {"choices": [{"delta": {"content": "wörld\u2028next\x85line"}}]}
    assert data[-1] is DONE
    assert len(list(itertools.chain(data))) == 4


def test_non_finite_numbers_python_writes_still_parse() -> None:
    """Python's json writes -Infinity (e.g. a logprob); orjson refuses it: fall back."""
    event = parse_data_line('data: {"logprob": -Infinity, "x": NaN}')
    assert isinstance(event, dict) and event["logprob"] == float("-inf")
    with pytest.raises(ValueError):
        parse_data_line("data: {not json")
