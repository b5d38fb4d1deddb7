"""``/chat/completions``: a checked request through the Router, as JSON or SSE.

A stream's first chunk is awaited before anything is sent, so a failure that
fallback cannot fix still gets a proper status code; after that, chunks pass
through one for one and a later failure ends the stream with an error event
(never ``[DONE]``), so a cut answer never looks complete.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

from ..errors import LLMRouterError
from ..responses import ChatCompletion, ChatCompletionChunk, RouterInfo
from ..router import Router
from ..streaming import AsyncCompletionStream, CompletionStream
from .replies import Reply, StreamReply, SyncStreamReply
from .wire import ChatRequest, error_payload, header_value, json_bytes, parse_chat, router_headers

__all__ = ["achat", "chat"]

logger = logging.getLogger("llmrouter.server")

Observer = Callable[[RouterInfo], None]

_SSE_HEADERS = [("cache-control", "no-cache"), ("x-accel-buffering", "no")]
_DONE = b"data: [DONE]\n\n"


async def achat(
    router: Router,
    raw: bytes,
    headers: Mapping[str, str],
    observe: Observer | None = None,
    api_key_id: str | None = None,
) -> Reply | StreamReply:
    request = parse_chat(raw, headers)
    # Which key is calling comes from authentication, never from the body (budgets use it).
    request.params.pop("api_key_id", None)
    if api_key_id is not None:
        request.params["api_key_id"] = api_key_id
    if not request.stream:
        completion = await router.acomplete(request.messages, request.model, **request.params)
        assert isinstance(completion, ChatCompletion)
        return _json_reply(completion)
    stream = await router.acomplete(request.messages, request.model, stream=True, **request.params)
    assert isinstance(stream, AsyncCompletionStream)
    try:
        first = await anext(stream, None)
    except BaseException:
        await stream.aclose()
        raise
    return StreamReply(_stream_headers(stream), _aevents(stream, first, request, observe))


def chat(
    router: Router, raw: bytes, headers: Mapping[str, str], observe: Observer | None = None
) -> Reply | SyncStreamReply:
    """The sync twin of :func:`achat` (for the in-process sync client)."""
    request = parse_chat(raw, headers)
    if not request.stream:
        completion = router.complete(request.messages, request.model, **request.params)
        assert isinstance(completion, ChatCompletion)
        return _json_reply(completion)
    stream = router.complete(request.messages, request.model, stream=True, **request.params)
    assert isinstance(stream, CompletionStream)
    try:
        first = next(stream, None)
    except BaseException:
        stream.close()
        raise
    return SyncStreamReply(_stream_headers(stream), _events(stream, first, request, observe))


def _json_reply(completion: ChatCompletion) -> Reply:
    info = completion.router
    body = _wire_json(completion)
    return Reply(200, body, router_headers(info), info=info)


def _wire_json(model: ChatCompletion | ChatCompletionChunk) -> bytes:
    """The JSON the upstream sent, as validated (no second serialisation); the model's own
    serialisation when there is none, or when a backend adapter left a non-JSON value."""
    wire = model.wire()
    if wire is not None and _strict_types(wire):
        try:
            return json_bytes(wire)
        except TypeError:
            logger.debug("serialising %s from the model: its wire form is not JSON", model.id)
    return model.model_dump_json(exclude_unset=True).encode()


def _strict_types(wire: dict[str, Any]) -> bool:
    """Whether the integers strict clients parse as integers arrived as integers: an
    upstream that sends ``"created": 1.7e9`` or ``"index": "0"`` gets them normalised by
    the model's serialisation, as before."""
    created = wire.get("created")
    if created is not None and type(created) is not int:
        return False
    for choice in wire.get("choices") or ():
        index = choice.get("index")
        if index is not None and type(index) is not int:
            return False
    usage = wire.get("usage")
    if usage:
        for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
            count = usage.get(name)
            if count is not None and type(count) is not int:
                return False
    return True


def _stream_headers(stream: AsyncCompletionStream | CompletionStream) -> list[tuple[str, str]]:
    headers = list(_SSE_HEADERS)
    if stream.backend:
        headers.append(("x-llmrouter-backend", stream.backend))
    if stream.complexity is not None:
        headers.append(("x-llmrouter-complexity", f"{stream.complexity:.4f}"))
    if stream.cache:
        headers.append(("x-llmrouter-cache", stream.cache))
    if stream.request_id:
        headers.append(("x-llmrouter-request-id", stream.request_id))
    if stream.budget_warning:  # a soft budget is over its limit
        headers.append(("x-llmrouter-budget-warning", header_value(stream.budget_warning)))
    return headers


class _Framer:
    """Turns chunks into SSE events; keeps the usage chunk only when the client asked."""

    __slots__ = ("include_usage", "last", "saw_usage")

    def __init__(self, include_usage: bool) -> None:
        self.include_usage = include_usage
        self.saw_usage = False
        self.last: ChatCompletionChunk | None = None

    def frame(self, chunk: ChatCompletionChunk) -> bytes | None:
        self.last = chunk
        if chunk.usage is not None:
            if not chunk.choices and not self.include_usage:
                return None  # the router asked upstream for usage; this client did not
            self.saw_usage = True
        return b"data: " + _wire_json(chunk) + b"\n\n"

    def closing(self, info: RouterInfo) -> list[bytes]:
        """Usage (when asked and upstream sent none, counted by the router), metadata, DONE."""
        events = []
        if self.include_usage and not self.saw_usage:
            last = self.last
            usage = {
                "prompt_tokens": info.prompt_tokens,
                "completion_tokens": info.completion_tokens,
                "total_tokens": info.prompt_tokens + info.completion_tokens,
            }
            chunk: dict[str, Any] = {
                "id": last.id if last else "",
                "object": "chat.completion.chunk",
                "created": last.created if last else 0,
                "model": last.model if last else "",
                "choices": [],
                "usage": usage,
            }
            events.append(b"data: " + json_bytes(chunk) + b"\n\n")
        # An SSE comment: ignored by OpenAI-style parsers, readable by anyone who wants it.
        summary = {
            "backend": info.backend,
            "cost_usd": info.cost_usd,
            "baseline_cost_usd": info.baseline_cost_usd,
            "cache": info.cache,
            "request_id": info.request_id,
        }
        events.append(b": llmrouter " + json_bytes(summary) + b"\n\n")
        events.append(_DONE)
        return events


def _error_event(exc: LLMRouterError) -> bytes:
    return b"data: " + error_payload(exc)[1] + b"\n\n"


async def _aevents(
    stream: AsyncCompletionStream,
    first: ChatCompletionChunk | None,
    request: ChatRequest,
    observe: Observer | None,
) -> AsyncIterator[bytes]:
    framer = _Framer(request.include_usage)
    chunk = first
    try:
        while chunk is not None:
            event = framer.frame(chunk)
            if event is not None:
                yield event
            chunk = await anext(stream, None)
    except LLMRouterError as exc:
        yield _error_event(exc)
        return
    finally:
        if chunk is not None:  # the consumer went away (or failed) mid-stream
            await stream.aclose()
    info = stream.router
    for event in framer.closing(info):
        yield event
    if observe is not None:
        observe(info)


def _events(
    stream: CompletionStream,
    first: ChatCompletionChunk | None,
    request: ChatRequest,
    observe: Observer | None,
) -> Iterator[bytes]:
    framer = _Framer(request.include_usage)
    chunk = first
    try:
        while chunk is not None:
            event = framer.frame(chunk)
            if event is not None:
                yield event
            chunk = next(stream, None)
    except LLMRouterError as exc:
        yield _error_event(exc)
        return
    finally:
        if chunk is not None:
            stream.close()
    info = stream.router
    yield from framer.closing(info)
    if observe is not None:
        observe(info)
