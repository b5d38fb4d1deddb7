"""The sidecar as a bare ASGI application: no framework between the socket and the Router.

Each request is a dict lookup to its endpoint, one pass over its headers, a
bounded body read, and the endpoint's reply. A client that disconnects
cancels the task serving it (and so the upstream call). No exception escapes
to the server: anything unexpected becomes a 500 with an OpenAI-style body.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .. import __version__
from ..dashboard import DashboardApp
from ..errors import LLMRouterError
from ..router import Router
from .auth import ApiKeys
from .chat import achat
from .direct import DirectUpstream
from .metrics import Metrics
from .openapi import openapi_document
from .replies import Reply, StreamReply
from .wire import error_payload, json_bytes

__all__ = ["ServerApp"]

log = logging.getLogger("llmrouter.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Handler = Callable[[bytes, dict[str, str]], Awaitable["Reply | StreamReply"]]


# Where the authenticated key's id travels with the request's headers: a name with a space,
# which no HTTP header can have, so a client cannot set it.
_KEY_ID = "llmrouter api-key-id"


class PayloadTooLarge(LLMRouterError):
    status_code = 413
    error_type = "invalid_request_error"
    code = "request_too_large"


class _ClientGone(Exception):
    """The client disconnected while its request body was still arriving."""


class _NotFound(LLMRouterError):
    status_code = 404
    error_type = "invalid_request_error"
    code = "not_found"


class _MethodNotAllowed(LLMRouterError):
    status_code = 405
    error_type = "invalid_request_error"
    code = "method_not_allowed"


class ServerApp:
    """ASGI app for ``llmrouter serve``; owns the Router it is given."""

    def __init__(self, router: Router, keys: ApiKeys | None = None) -> None:
        self.router = router
        self.keys = keys if keys is not None else ApiKeys(router.policy.server.api_keys_env)
        self.max_body_bytes = router.policy.server.max_body_bytes
        self.metrics = Metrics()
        self.direct = DirectUpstream(router)
        models = [{"id": "auto", "object": "model", "created": 0, "owned_by": "llmrouter"}] + [
            {"id": name, "object": "model", "created": 0, "owned_by": "llmrouter"}
            for name in router.backends
        ]
        self._models = json_bytes({"object": "list", "data": models})
        self._openapi = json_bytes(openapi_document(__version__))
        posts: dict[str, Handler] = {
            "/chat/completions": self._chat,
            "/completions": self.direct.completions,
            "/embeddings": self.direct.embeddings,
        }
        gets: dict[str, Callable[[], Reply]] = {
            "/models": lambda: Reply(200, self._models),
            "/metrics": lambda: Reply(
                200, self.metrics.render(), content_type="text/plain; version=0.0.4"
            ),
        }
        self._posts = {f"{prefix}{p}": h for p, h in posts.items() for prefix in ("/v1", "")}
        self._gets = {f"{prefix}{p}": h for p, h in gets.items() for prefix in ("/v1", "")}
        # No key needed: liveness probes and the API description.
        self._public: dict[str, Callable[[], Reply]] = {
            "/health": self._health,
            "/openapi.json": lambda: Reply(200, self._openapi),
        }
        # The spend dashboard: public page, data behind the same keys (see llmrouter.dashboard).
        self.dashboard = (
            DashboardApp(
                router.ledger,
                router.policy.budgets,
                check=self.keys.check if self.keys.enabled else None,
            )
            if router.ledger is not None
            else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            try:
                await self._http(scope, receive, send)
            except Exception:  # the last line of defence: a worker never dies of a request
                log.exception("unhandled error serving %s", scope.get("path"))
                with contextlib.suppress(Exception):  # the response may have started already
                    await _send_reply(send, _error_reply(RuntimeError()))
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        dashboard = self.dashboard_for(path)
        if dashboard is not None:
            await dashboard(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        route = self._route(scope["method"], path, headers)
        if isinstance(route, Reply):
            await _send_reply(send, route)
            return
        endpoint, handler = route
        try:
            raw = await self._read_body(headers, receive)
        except LLMRouterError as exc:
            reply = _error_reply(exc)
            self.metrics.response(endpoint, reply.status)
            await _send_reply(send, reply)
            return
        except _ClientGone:
            self.metrics.response(endpoint, 499)
            return
        await self._serve(endpoint, handler, raw, headers, receive, send)

    async def respond(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> Reply | StreamReply:
        """One request whose body is in hand: the entry point of the native HTTP server
        (:mod:`llmrouter.server.protocol`), which cancels this task if the client leaves."""
        route = self._route(method, path, headers)
        if isinstance(route, Reply):
            return route
        endpoint, handler = route
        try:
            return await self._run(endpoint, handler, body, headers)
        except asyncio.CancelledError:
            self.metrics.response(endpoint, 499)
            raise

    def dashboard_for(self, path: str) -> DashboardApp | None:
        """The dashboard (an ASGI app of its own) if it serves ``path``."""
        if self.dashboard is not None and (path == "/dashboard" or path.startswith("/dashboard/")):
            return self.dashboard
        return None

    def _route(
        self, method: str, path: str, headers: dict[str, str]
    ) -> tuple[str, Handler] | Reply:
        """The endpoint and handler of a call, after the key check; or the whole reply
        (public pages, GET endpoints, refusals)."""
        public = self._public.get(path)
        if public is not None:
            return public()
        headers.pop(_KEY_ID, None)
        post = self._posts.get(path)
        get = self._gets.get(path) if post is None else None
        endpoint = path[3:] if path.startswith("/v1/") else path
        try:
            if post is None and get is None:
                raise _NotFound(
                    f"no endpoint {path}; this sidecar serves /v1/chat/completions, "
                    "/v1/completions, /v1/embeddings, /v1/models, /health, /metrics, /openapi.json"
                )
            key_id = self.keys.check(headers.get("authorization"), headers.get("x-api-key"))
            if key_id is not None:
                headers[_KEY_ID] = key_id
            if get is not None:
                if method not in ("GET", "HEAD"):
                    raise _MethodNotAllowed(f"{path} takes GET")
                return get()
            if method != "POST":
                raise _MethodNotAllowed(f"{path} takes POST")
        except LLMRouterError as exc:
            reply = _error_reply(exc)
            self.metrics.response(endpoint, reply.status)
            return reply
        assert post is not None
        return endpoint, post

    async def _run(
        self, endpoint: str, handler: Handler, raw: bytes, headers: dict[str, str]
    ) -> Reply | StreamReply:
        try:
            reply = await handler(raw, headers)
        except LLMRouterError as exc:
            reply = _error_reply(exc)
        if isinstance(reply, Reply):
            self.metrics.response(endpoint, reply.status)
            if reply.info is not None:
                self.metrics.call(reply.info)
        else:
            self.metrics.response(endpoint, 200)
        return reply

    async def _serve(
        self,
        endpoint: str,
        handler: Handler,
        raw: bytes,
        headers: dict[str, str],
        receive: Receive,
        send: Send,
    ) -> None:
        """Run the endpoint; a client disconnect cancels it, upstream call included."""
        task = asyncio.current_task()
        assert task is not None
        watcher = _DisconnectWatcher(receive, task)
        try:
            reply = await self._run(endpoint, handler, raw, headers)
            if isinstance(reply, Reply):
                await _send_reply(send, reply)
            else:
                await _send_stream(send, reply)
        except asyncio.CancelledError:
            if not watcher.fired:
                raise
            uncancel = getattr(task, "uncancel", None)  # Python ≥ 3.11
            if uncancel is not None:
                uncancel()
            self.metrics.response(endpoint, 499)
        finally:
            watcher.stop()

    def _chat(self, raw: bytes, headers: dict[str, str]) -> Awaitable[Reply | StreamReply]:
        return achat(self.router, raw, headers, self.metrics.call, headers.get(_KEY_ID))

    def _health(self) -> Reply:
        states = {name: self.router.health.state(name) for name in self.router.backends}
        return Reply(200, json_bytes({"status": "ok", "backends": states}))

    async def _read_body(self, headers: dict[str, str], receive: Receive) -> bytes:
        limit = self.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(
                f"request body of {declared} bytes is over the {limit}-byte limit"
            )
        message = await receive()
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            if len(body) > limit:
                raise PayloadTooLarge(f"request body is over the {limit}-byte limit")
            return body
        parts = [body]
        size = len(body)
        while message.get("more_body", False):
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"request body is over the {limit}-byte limit")
            parts.append(chunk)
        return b"".join(parts)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.aclose()
                finally:
                    await send({"type": "lifespan.shutdown.complete"})
                return

    async def aclose(self) -> None:
        """Close the upstream clients and the Router (flushing its ledger and cache)."""
        try:
            await self.direct.aclose()
        finally:
            await self.router.aclose()


class _DisconnectWatcher:
    """Waits for ``http.disconnect`` and then cancels the task serving the request."""

    __slots__ = ("_task", "fired")

    def __init__(self, receive: Receive, task: asyncio.Task[Any]) -> None:
        self.fired = False
        self._task = asyncio.get_running_loop().create_task(self._watch(receive, task))

    async def _watch(self, receive: Receive, task: asyncio.Task[Any]) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.fired = True
                task.cancel()
                return

    def stop(self) -> None:
        self._task.cancel()


def _error_reply(exc: BaseException) -> Reply:
    status, body, headers = error_payload(exc)
    return Reply(status, body, headers)


async def _send_reply(send: Send, reply: Reply) -> None:
    headers = [
        (b"content-type", reply.content_type.encode()),
        (b"content-length", str(len(reply.body)).encode()),
    ]
    headers.extend((k.encode(), v.encode()) for k, v in reply.headers)
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


async def _send_stream(send: Send, reply: StreamReply) -> None:
    headers = [(b"content-type", b"text/event-stream; charset=utf-8")]
    headers.extend((k.encode(), v.encode()) for k, v in reply.headers)
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    events = reply.events
    try:
        async for event in events:
            await send({"type": "http.response.body", "body": event, "more_body": True})
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
    await send({"type": "http.response.body", "body": b"", "more_body": False})
