"""HTTP/1.1 connections for ``llmrouter serve``, parsed by httptools and handed straight to
:class:`~llmrouter.server.app.ServerApp`.

No ASGI messages between the socket and the Router: on one core, uvicorn's ASGI cycle and
the task that watches for a disconnect cost about 50 µs a request, a quarter of what the
sidecar adds in total. What a server owes its clients is kept: keep-alive with an idle
timeout, pipelined requests answered in order, bodies bounded (413 before reading an
oversized one), ``Expect: 100-continue``, chunked request and response bodies, write
back-pressure for streams, and a client that disconnects cancels the task serving it (and
so the upstream call). Nothing a client sends raises out of the protocol: a malformed
request is a 400 and the connection closes.
"""

from __future__ import annotations

import asyncio
import email.utils
import http
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, cast

import httptools

from ..errors import LLMRouterError
from .replies import Reply, StreamReply
from .wire import error_payload

if TYPE_CHECKING:
    from .app import ServerApp

__all__ = ["ConnectionSet", "HttpProtocol", "Request"]

log = logging.getLogger("llmrouter.server")

_REASONS = {status.value: status.phrase.encode() for status in http.HTTPStatus}
_MAX_HEADER_BYTES = 64 * 1024
_MAX_QUEUED = 8  # pipelined requests buffered before reading pauses
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Request:
    """One request, its body read whole (within the app's limit)."""

    __slots__ = (
        "body",
        "chunked_ok",
        "headers",
        "keep_alive",
        "method",
        "path",
        "query",
        "raw_headers",
    )

    def __init__(
        self,
        method: str,
        path: str,
        query: bytes,
        raw_headers: list[tuple[bytes, bytes]],
        headers: dict[str, str],
        body: bytes,
        keep_alive: bool,
        chunked_ok: bool = True,
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.raw_headers = raw_headers
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        self.chunked_ok = chunked_ok  # HTTP/1.1: a stream is chunked; HTTP/1.0: ends at close


class _Refuse(Exception):
    """Answer with this status and close: the request cannot be read any further."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Clock:
    """The Date header, formatted once a second rather than once a request."""

    __slots__ = ("_line", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._line = b""

    def line(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._line = b"date: " + email.utils.formatdate(now, usegmt=True).encode() + b"\r\n"
        return self._line


class ConnectionSet:
    """Every open connection, for a graceful shutdown: idle ones close at once, busy ones
    after their response; ``drained()`` says when none is left."""

    def __init__(self, keep_alive_s: float, request_timeout_s: float = 30.0) -> None:
        self.keep_alive_s = keep_alive_s
        self.request_timeout_s = request_timeout_s  # first byte to last (slowloris)
        self._loop = asyncio.get_running_loop()
        # One sweep for all connections instead of a timer armed and cancelled per request.
        self._sweep_every = min(max(min(keep_alive_s, request_timeout_s) / 2, 0.05), 1.0)
        self._sweeper = self._loop.call_later(self._sweep_every, self._sweep)
        self.clock = _Clock()
        self.open: set[HttpProtocol] = set()
        self.stopping = False
        self._empty = asyncio.Event()
        self._empty.set()

    def add(self, connection: HttpProtocol) -> None:
        self.open.add(connection)
        self._empty.clear()

    def discard(self, connection: HttpProtocol) -> None:
        self.open.discard(connection)
        if not self.open:
            self._empty.set()

    def _sweep(self) -> None:
        """Close connections that sent nothing for ``keep_alive_s`` while not being served,
        and answer 408 to requests still arriving after ``request_timeout_s``."""
        now = self._loop.time()
        quiet_since = now - self.keep_alive_s
        late_since = now - self.request_timeout_s
        for connection in list(self.open):
            connection.close_if_idle(quiet_since, late_since)
        self._sweeper = self._loop.call_later(self._sweep_every, self._sweep)

    def stop(self) -> None:
        self.stopping = True
        self._sweeper.cancel()
        for connection in list(self.open):
            connection.close_when_idle()

    async def drained(self, timeout_s: float) -> bool:
        try:
            await asyncio.wait_for(self._empty.wait(), timeout_s)
        except (TimeoutError, asyncio.TimeoutError):  # distinct classes before Python 3.11
            return False
        return True

    def abort(self) -> None:
        for connection in list(self.open):
            connection.abort()


class HttpProtocol(asyncio.Protocol):
    """One client connection."""

    def __init__(self, app: ServerApp, connections: ConnectionSet) -> None:
        self.app = app
        self.connections = connections
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._queue: deque[Request] = deque()
        self._task: asyncio.Task[None] | None = None
        self.last_active = self._loop.time()
        self.request_started: float | None = None  # a request is arriving since then
        self._lost = False
        self._closing = False  # answer what is in hand, then close
        self._reading = True
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._head_sent = False
        self._reset()

    def _reset(self) -> None:
        self._url = b""
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_size = 0

    # --- asyncio callbacks -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self.connections.discard(self)
        if self._task is not None:
            self._task.cancel()  # the client went away: stop working (and paying) for it
        self._queue.clear()
        self._wake_writer()

    def data_received(self, data: bytes) -> None:
        self.last_active = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # No upgrades (h2c, websockets): answer what was asked over HTTP/1.1, then close.
            self._closing = True
            if self._task is None and not self._queue:
                self._refuse(400, "protocol upgrades are not supported")
        except httptools.HttpParserCallbackError as exc:
            refusal = exc.__context__
            if isinstance(refusal, _Refuse):
                self._refuse(refusal.status, refusal.message)
            else:
                log.error("HTTP parser callback failed", exc_info=refusal)
                self._refuse(400, "malformed HTTP request")
        except httptools.HttpParserError:
            self._refuse(400, "malformed HTTP request")

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_writer()

    # --- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._reset()
        self.request_started = self._loop.time()

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count_header_bytes(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value))
        self._raw_headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        limit = self.app.max_body_bytes
        for name, value in self._raw_headers:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                raise _Refuse(
                    413, f"request body of {int(value)} bytes is over the {limit}-byte limit"
                )
        if self._task is not None or self._queue or self._parser.get_http_version() != "1.1":
            return  # a 100 now would land inside another response (or mean nothing to 1.0)
        for name, value in self._raw_headers:
            if name == b"expect" and value.lower() == b"100-continue" and self._transport:
                self._transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self.app.max_body_bytes:
            raise _Refuse(413, f"request body is over the {self.app.max_body_bytes}-byte limit")
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.request_started = None
        parsed = httptools.parse_url(self._url)
        request = Request(
            method=self._parser.get_method().decode("ascii"),
            path=(parsed.path or b"/").decode("latin-1"),
            query=parsed.query or b"",
            raw_headers=self._raw_headers,
            headers={k.decode("latin-1"): v.decode("latin-1") for k, v in self._raw_headers},
            body=b"".join(self._body),
            keep_alive=self._parser.should_keep_alive(),
            chunked_ok=self._parser.get_http_version() != "1.0",
        )
        self._reset()
        if self._task is None:
            self._start(request)
            return
        self._queue.append(request)
        if len(self._queue) >= _MAX_QUEUED and self._transport is not None and self._reading:
            self._reading = False
            self._transport.pause_reading()

    def _count_header_bytes(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > _MAX_HEADER_BYTES:
            raise _Refuse(431, f"request headers are over {_MAX_HEADER_BYTES} bytes")

    # --- serving ---------------------------------------------------------------------------

    def _start(self, request: Request) -> None:
        self._task = self._loop.create_task(self._serve(request))

    async def _serve(self, request: Request) -> None:
        self._head_sent = False
        try:
            dashboard = self.app.dashboard_for(request.path)
            if dashboard is not None:
                await self._serve_asgi(dashboard, request)
            else:
                reply = await self.app.respond(
                    request.method, request.path, request.headers, request.body
                )
                if isinstance(reply, Reply):
                    self._write_reply(reply, request)
                else:
                    await self._write_stream(reply, request)
            if self._write_paused:  # a slow reader: nothing more until it has caught up
                await self._drained()
        except asyncio.CancelledError:
            if not self._lost:  # cancelled by a shutdown, not by the client: pass it on
                raise
            return
        except Exception:  # the last line of defence: a worker never dies of a request
            log.exception("unhandled error serving %s", request.path)
            self._fail_response(request)
            return
        finally:
            self._task = None
        self._next(request)

    def _fail_response(self, request: Request) -> None:
        """After an unexpected error: a 500 if nothing was sent yet, else cut the connection
        (a half-sent response cannot be finished honestly); either way, close it."""
        self._closing = True
        self._queue.clear()
        if self._transport is None or self._lost:
            return
        if self._head_sent:
            self._transport.abort()
            return
        status, body, headers = error_payload(RuntimeError())
        self._write_reply(Reply(status, body, headers), request)
        self._transport.close()

    def _next(self, served: Request) -> None:
        if self._lost or self._transport is None:
            return
        if self._closing or not served.keep_alive:
            self._transport.close()
            return
        if self._queue:
            self._start(self._queue.popleft())
            if not self._reading and len(self._queue) < _MAX_QUEUED:
                self._reading = True
                self._transport.resume_reading()
            return
        if self.connections.stopping:
            self._transport.close()
            return
        self.last_active = self._loop.time()

    def _keeps_alive(self, request: Request) -> bool:
        return request.keep_alive and not self._closing and not self.connections.stopping

    def _head(
        self,
        status: int,
        request: Request,
        headers: list[tuple[str, str]],
        framing: bytes,
    ) -> bytes:
        self._head_sent = True
        reason = _REASONS.get(status, b"Unknown")
        parts = [b"HTTP/1.1 %d %s\r\n" % (status, reason), framing, self.connections.clock.line()]
        parts += [b"%s: %s\r\n" % (name.encode(), value.encode()) for name, value in headers]
        if not self._keeps_alive(request):
            parts.append(b"connection: close\r\n")
        elif not request.chunked_ok:  # HTTP/1.0 keeps a connection only when told so
            parts.append(b"connection: keep-alive\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    def _write_reply(self, reply: Reply, request: Request) -> None:
        if self._transport is None or self._lost:
            return
        framing = b"content-type: %s\r\ncontent-length: %d\r\n" % (
            reply.content_type.encode(),
            len(reply.body),
        )
        head = self._head(reply.status, request, reply.headers, framing)
        self._transport.write(head if request.method == "HEAD" else head + reply.body)

    async def _write_stream(self, reply: StreamReply, request: Request) -> None:
        transport = self._transport
        assert transport is not None
        chunked = request.chunked_ok
        if not chunked:
            request.keep_alive = False  # the end of the stream is the end of the connection
        framing = b"content-type: text/event-stream; charset=utf-8\r\n"
        if chunked:
            framing += b"transfer-encoding: chunked\r\n"
        transport.write(self._head(200, request, reply.headers, framing))
        events = reply.events
        try:
            async for event in events:
                if self._lost:
                    break
                if event:
                    transport.write(b"%x\r\n%s\r\n" % (len(event), event) if chunked else event)
                if self._write_paused:
                    await self._drained()
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()
        if chunked and not self._lost:
            transport.write(b"0\r\n\r\n")

    async def _serve_asgi(self, app: Callable[..., Awaitable[None]], request: Request) -> None:
        """The dashboard is an ASGI app: run it with the request in hand."""
        transport = self._transport
        assert transport is not None
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "path": request.path,
            "raw_path": request.path.encode("latin-1"),
            "query_string": request.query,
            "headers": request.raw_headers,
            "client": transport.get_extra_info("peername"),
            "server": transport.get_extra_info("sockname"),
        }
        sent_body = False
        chunked = False

        async def receive() -> MutableMapping[str, Any]:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": request.body, "more_body": False}
            while not self._lost:
                await asyncio.sleep(1)
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            nonlocal chunked
            if self._lost:
                return
            if message["type"] == "http.response.start":
                raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message["headers"]]
                chunked = not any(k.lower() == "content-length" for k, _ in raw)
                framing = b"transfer-encoding: chunked\r\n" if chunked else b""
                transport.write(self._head(message["status"], request, raw, framing))
            elif message["type"] == "http.response.body" and request.method != "HEAD":
                body = message.get("body", b"")
                if chunked:
                    if body:
                        transport.write(b"%x\r\n%s\r\n" % (len(body), body))
                    if not message.get("more_body", False):
                        transport.write(b"0\r\n\r\n")
                elif body:
                    transport.write(body)
            if self._write_paused:
                await self._drained()

        await app(scope, receive, send)

    # --- lifecycle -------------------------------------------------------------------------

    def _refuse(self, status: int, message: str) -> None:
        """Answer an unreadable request and close the connection."""
        self._closing = True
        if self._transport is None or self._lost or self._task is not None:
            if self._transport is not None and self._task is None:
                self._transport.close()
            return
        _, body, headers = error_payload(_HttpError(status, message))
        closing = Request("GET", "", b"", [], {}, b"", keep_alive=False)
        self._write_reply(Reply(status, body, headers), closing)
        self._transport.close()

    def close_if_idle(self, quiet_since: float, late_since: float) -> None:
        if self._task is not None or self._queue or self._transport is None:
            return
        started = self.request_started
        if started is not None and started < late_since:
            limit = self.connections.request_timeout_s
            self._refuse(408, f"the request took over {limit:g} s to arrive")
        elif self.last_active < quiet_since:
            self._transport.close()

    def close_when_idle(self) -> None:
        """Shutdown: close now if nothing is being served, else after this response."""
        self._closing = True
        if self._task is None and not self._queue and self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _wake_writer(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._drain = None

    async def _drained(self) -> None:
        if self._write_paused and not self._lost:
            self._drain = self._loop.create_future()
            await self._drain


class _HttpError(LLMRouterError):
    """A protocol-level refusal in the OpenAI error shape (status set per instance)."""

    error_type = "invalid_request_error"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status
        self.code = {
            408: "request_timeout",
            413: "request_too_large",
            431: "headers_too_large",
        }.get(status)
