"""Streams: gathering chunks into a whole answer, and handing them to the caller.

A stream's router metadata only exists once the last chunk is through, so the
stream objects expose ``.router`` after iteration ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from .responses import ChatCompletionChunk, RouterInfo

__all__ = ["AsyncCompletionStream", "CompletionStream", "StreamAccumulator", "replay_chunks"]


class StreamAccumulator:
    """Builds the complete chat completion from its chunks (for the cache and the ledger)."""

    def __init__(self) -> None:
        self.id: str | None = None
        self.model: str | None = None
        self.created: int = 0
        self.usage: dict[str, Any] | None = None
        self.chunks = 0
        self._choices: dict[int, dict[str, Any]] = {}

    def add(self, event: dict[str, Any]) -> None:
        self.chunks += 1
        self.id = self.id or event.get("id")
        self.model = self.model or event.get("model")
        self.created = self.created or int(event.get("created") or 0)
        usage = event.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        for choice in event.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            index = int(choice.get("index") or 0)
            slot = self._choices.setdefault(
                index, {"content": [], "tool_calls": {}, "finish_reason": None, "role": None}
            )
            delta = choice.get("delta") or {}
            if delta.get("role"):
                slot["role"] = delta["role"]
            if isinstance(delta.get("content"), str):
                slot["content"].append(delta["content"])
            for call in delta.get("tool_calls") or ():
                position = int(call.get("index") or 0)
                merged = slot["tool_calls"].setdefault(
                    position,
                    {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                )
                merged["id"] = call.get("id") or merged["id"]
                function = call.get("function") or {}
                merged["function"]["name"] += function.get("name") or ""
                merged["function"]["arguments"] += function.get("arguments") or ""
            if choice.get("finish_reason"):
                slot["finish_reason"] = choice["finish_reason"]

    @property
    def text(self) -> str:
        parts: list[str] = []
        for slot in self._choices.values():
            parts.extend(slot["content"])
            for call in slot["tool_calls"].values():
                parts.append(call["function"]["name"])
                parts.append(call["function"]["arguments"])
        return "".join(parts)

    def completion(self) -> dict[str, Any]:
        choices = []
        for index in sorted(self._choices):
            slot = self._choices[index]
            message: dict[str, Any] = {
                "role": slot["role"] or "assistant",
                "content": "".join(slot["content"]) if slot["content"] else None,
            }
            if slot["tool_calls"]:
                message["tool_calls"] = [slot["tool_calls"][k] for k in sorted(slot["tool_calls"])]
            choices.append(
                {"index": index, "message": message, "finish_reason": slot["finish_reason"]}
            )
        return {
            "id": self.id or "",
            "object": "chat.completion",
            "created": self.created,
            "model": self.model or "",
            "choices": choices,
            "usage": self.usage,
        }


def replay_chunks(completion: dict[str, Any]) -> list[dict[str, Any]]:
    """A cached completion as the chunks a stream would have sent."""
    base = {
        "id": completion.get("id", ""),
        "object": "chat.completion.chunk",
        "created": completion.get("created", 0),
        "model": completion.get("model", ""),
    }
    chunks: list[dict[str, Any]] = []
    for choice in completion.get("choices") or ():
        message = choice.get("message") or {}
        index = choice.get("index", 0)
        delta: dict[str, Any] = {"role": message.get("role", "assistant"), "content": ""}
        chunks.append(
            {**base, "choices": [{"index": index, "delta": delta, "finish_reason": None}]}
        )
        body: dict[str, Any] = {}
        if message.get("content"):
            body["content"] = message["content"]
        if message.get("tool_calls"):
            body["tool_calls"] = [
                {**call, "index": position} for position, call in enumerate(message["tool_calls"])
            ]
        if body:
            chunks.append(
                {**base, "choices": [{"index": index, "delta": body, "finish_reason": None}]}
            )
        chunks.append(
            {
                **base,
                "choices": [
                    {"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")}
                ],
            }
        )
    if completion.get("usage"):
        chunks.append({**base, "choices": [], "usage": completion["usage"]})
    return chunks


class _StreamLabels:
    """What a stream's consumer may know before it ends (the sidecar's headers), and
    ``.router``, the call's metadata, once it has ended."""

    def __init__(self) -> None:
        self._router: RouterInfo | None = None
        self.request_id: str | None = None
        self.backend: str | None = None
        self.complexity: float | None = None
        self.cache: str | None = None  # "hit", "miss" or "off"
        self.budget_warning: str | None = None  # a soft budget over its limit at reservation

    @property
    def router(self) -> RouterInfo:
        if self._router is None:
            raise AttributeError("router metadata is available once the stream has ended")
        return self._router


class CompletionStream(_StreamLabels):
    """Iterate for chunks; ``.router`` holds the call's metadata once the stream ends."""

    def __init__(self, chunks: Iterator[ChatCompletionChunk]) -> None:
        super().__init__()
        self._chunks = chunks

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        return self

    def __next__(self) -> ChatCompletionChunk:
        return next(self._chunks)

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> CompletionStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncCompletionStream(_StreamLabels):
    """The async twin of :class:`CompletionStream`."""

    def __init__(self, chunks: AsyncIterator[ChatCompletionChunk]) -> None:
        super().__init__()
        self._chunks = chunks

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        close = getattr(self._chunks, "aclose", None)
        if close is not None:
            await close()

    async def __aenter__(self) -> AsyncCompletionStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
