"""httpx transports that answer OpenAI API requests with an in-process Router: no server.

The official SDK builds and sends its requests as usual; the transport hands
each one to the same endpoint code the sidecar runs, so the SDK parses the
very bytes a sidecar would have sent (headers included).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import Any

from ..errors import LLMRouterError
from ..router import Router
from ..server.chat import achat, chat
from ..server.replies import Reply, StreamReply, SyncStreamReply
from ..server.wire import error_payload, json_bytes

__all__ = ["AsyncRouterTransport", "RouterTransport", "http_module"]


def http_module() -> ModuleType:
    """The httpx flavour the installed ``openai`` package is built on (httpx or httpx2)."""
    from openai import _base_client

    namespace = vars(_base_client)
    module = namespace.get("httpx2") or namespace.get("httpx")
    assert isinstance(module, ModuleType)
    return module


_http: Any = http_module()


class _NotServed(LLMRouterError):
    status_code = 404
    error_type = "invalid_request_error"
    code = "not_found"


def _models(router: Router) -> Reply:
    data = [{"id": "auto", "object": "model", "created": 0, "owned_by": "llmrouter"}] + [
        {"id": name, "object": "model", "created": 0, "owned_by": "llmrouter"}
        for name in router.backends
    ]
    return Reply(200, json_bytes({"object": "list", "data": data}))


def _not_served(path: str) -> LLMRouterError:
    return _NotServed(
        f"the in-process client serves /chat/completions and /models, not {path}; "
        "run `llmrouter serve` for the other endpoints"
    )


def _headers(request: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}


def _error(exc: LLMRouterError) -> Reply:
    status, body, headers = error_payload(exc)
    return Reply(status, body, headers)


def _response(reply: Reply, request: Any) -> Any:
    headers = [("content-type", reply.content_type), *reply.headers]
    return _http.Response(reply.status, headers=headers, content=reply.body, request=request)


def _stream_headers(reply: StreamReply | SyncStreamReply) -> list[tuple[str, str]]:
    return [("content-type", "text/event-stream; charset=utf-8"), *reply.headers]


class _SyncEvents(_http.SyncByteStream):
    def __init__(self, events: Iterator[bytes]) -> None:
        self._events = events

    def __iter__(self) -> Iterator[bytes]:
        return self._events

    def close(self) -> None:
        close = getattr(self._events, "close", None)
        if close is not None:
            close()  # a stream left early is recorded as cancelled


class _AsyncEvents(_http.AsyncByteStream):
    def __init__(self, events: AsyncIterator[bytes]) -> None:
        self._events = events

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._events

    async def aclose(self) -> None:
        aclose = getattr(self._events, "aclose", None)
        if aclose is not None:
            await aclose()


class RouterTransport(_http.BaseTransport):
    def __init__(self, router: Router) -> None:
        self.router = router

    def handle_request(self, request: Any) -> Any:
        path: str = request.url.path
        try:
            if path.endswith("/chat/completions") and request.method == "POST":
                reply = chat(self.router, request.read(), _headers(request))
            elif path.endswith("/models") and request.method == "GET":
                reply = _models(self.router)
            else:
                raise _not_served(path)
        except LLMRouterError as exc:
            reply = _error(exc)
        if isinstance(reply, SyncStreamReply):
            return _http.Response(
                200,
                headers=_stream_headers(reply),
                stream=_SyncEvents(reply.events),
                request=request,
            )
        return _response(reply, request)


class AsyncRouterTransport(_http.AsyncBaseTransport):
    def __init__(self, router: Router) -> None:
        self.router = router

    async def handle_async_request(self, request: Any) -> Any:
        path: str = request.url.path
        try:
            if path.endswith("/chat/completions") and request.method == "POST":
                reply = await achat(self.router, await request.aread(), _headers(request))
            elif path.endswith("/models") and request.method == "GET":
                reply = _models(self.router)
            else:
                raise _not_served(path)
        except LLMRouterError as exc:
            reply = _error(exc)
        if isinstance(reply, StreamReply):
            return _http.Response(
                200,
                headers=_stream_headers(reply),
                stream=_AsyncEvents(reply.events),
                request=request,
            )
        return _response(reply, request)
