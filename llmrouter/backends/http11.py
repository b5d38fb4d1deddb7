"""A lean HTTP/1.1 transport for ``httpx.AsyncClient``: keep-alive pools on asyncio protocols.

Why: httpx's default transport (httpcore) scans every pooled connection, with a
``poll()`` system call each, whenever a request starts or ends; with 32 calls in
flight that scan was ~70% of the sidecar's core (see benchmarks/proxy_overhead).
Here the event loop tells a connection when its peer closes it, so an idle
connection is reused by a pop from a list. httpx still does everything else:
URLs, headers, timeouts, proxies from the environment, content decoding, errors.

Scope: HTTP/1.1 (plain or TLS), one request per connection at a time, responses
parsed by httptools and streamed with back-pressure. ``LLMROUTER_HTTP_TRANSPORT=httpcore``
switches back to httpx's default transport.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import httpx

__all__ = ["LeanAsyncTransport", "async_client", "upstream_transport"]

_HIGH_WATER = 1 << 20  # pause reading when a consumer is this far behind
_LOW_WATER = 1 << 18


def upstream_transport(limits: httpx.Limits, url: str) -> httpx.AsyncBaseTransport:
    """The transport for calls to ``url``: httpx's own when a proxy from the environment
    applies to it (HTTP(S)_PROXY, ALL_PROXY, NO_PROXY) or with
    ``LLMROUTER_HTTP_TRANSPORT=httpcore``; otherwise the lean one when httptools is
    installed (the ``server`` extra)."""
    parts = urlsplit(url)
    proxies = getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    # NO_PROXY entries may name a host, a host:port or an IPv6 address.
    hosts = (parts.netloc.rpartition("@")[2], parts.hostname or "")
    if proxy and not any(proxy_bypass(host) for host in hosts if host):
        return httpx.AsyncHTTPTransport(limits=limits, proxy=proxy)
    if _lean_available():
        return LeanAsyncTransport(limits)
    return httpx.AsyncHTTPTransport(limits=limits)


def async_client(limits: httpx.Limits, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    """A pooled async client for calls to many upstreams (proxies from the environment are
    mounted by httpx as usual); the lean transport carries the rest."""
    if _lean_available():
        return httpx.AsyncClient(headers=headers, transport=LeanAsyncTransport(limits))
    return httpx.AsyncClient(headers=headers, limits=limits)


def _lean_available() -> bool:
    """httptools is installed (the server extra) and the lean transport is not switched off."""
    if os.environ.get("LLMROUTER_HTTP_TRANSPORT", "lean") == "httpcore":
        return False
    return importlib.util.find_spec("httptools") is not None


class LeanAsyncTransport(httpx.AsyncBaseTransport):
    """One pool per (scheme, host, port), bound to the event loop that opened it."""

    def __init__(
        self, limits: httpx.Limits | None = None, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        limits = limits or httpx.Limits()
        self._max_connections = limits.max_connections or 1 << 30
        self._max_idle = (
            limits.max_keepalive_connections
            if limits.max_keepalive_connections is not None
            else self._max_connections
        )
        self._expiry = limits.keepalive_expiry
        self._pools: dict[tuple[bytes, bytes, int], _Pool] = {}
        self._ssl = ssl_context

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.raw_scheme
        if scheme not in (b"http", b"https"):
            raise httpx.UnsupportedProtocol(f"the lean transport speaks http and https, not {url}")
        port = url.port or (443 if scheme == b"https" else 80)
        key = (scheme, url.raw_host, port)
        loop = asyncio.get_running_loop()
        pool = self._pools.get(key)
        if pool is None or pool.loop is not loop:  # a new event loop cannot use the old sockets
            pool = self._pools[key] = _Pool(self, loop, key)
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        sending = request.stream
        # A body in memory (ByteStream) is taken as it is, read or not; others are read whole.
        body = b"".join(sending) if isinstance(sending, httpx.ByteStream) else await request.aread()
        head = _head(request, len(body))
        connection = await pool.acquire(timeouts.get("pool"), timeouts.get("connect"))
        read_timeout = timeouts.get("read")
        try:
            connection.send(head, body)
            await connection.wait_head(read_timeout)
        except BaseException:
            connection.discard()
            raise
        status, headers = connection.status, connection.headers
        if connection.complete:  # the whole answer came with its head (most JSON replies)
            content = b"".join(connection.chunks)
            connection.pool.release(connection)
            stream: httpx.AsyncByteStream | httpx.ByteStream = httpx.ByteStream(content)
        else:
            stream = _Body(connection, read_timeout)
        return httpx.Response(
            status, headers=headers, stream=stream, extensions={"http_version": b"HTTP/1.1"}
        )

    def ssl_context(self) -> ssl.SSLContext:
        """httpx's default: certifi's roots, or SSL_CERT_FILE / SSL_CERT_DIR when set."""
        if self._ssl is None:
            context = httpx.create_ssl_context()
            context.set_alpn_protocols(["http/1.1"])
            self._ssl = context
        return self._ssl

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()


class _Pool:
    """Idle connections (most recent first) and a queue of requests waiting for a slot."""

    def __init__(
        self,
        owner: LeanAsyncTransport,
        loop: asyncio.AbstractEventLoop,
        key: tuple[bytes, bytes, int],
    ) -> None:
        self.owner = owner
        self.loop = loop
        self.scheme, host, self.port = key
        self.host = host.decode("ascii")
        self.idle: list[_Connection] = []
        self.open = 0
        self.waiting: deque[asyncio.Future[None]] = deque()

    async def acquire(
        self, pool_timeout: float | None, connect_timeout: float | None
    ) -> _Connection:
        """The most recently used live idle connection, else a new one when under the limit,
        else wait for one to be released or closed."""
        expiry = self.owner._expiry
        while True:
            now = time.monotonic()
            while self.idle:
                connection = self.idle.pop()
                if connection.closed or (
                    expiry is not None and now - connection.idle_since > expiry
                ):
                    connection.discard()
                    continue
                return connection
            if self.open < self.owner._max_connections:
                break
            await self._wait_for_slot(pool_timeout)
        self.open += 1
        try:
            connection = await self._connect(connect_timeout)
        except BaseException:
            self.open -= 1
            self._wake_one()
            raise
        if connection.closed:  # closed before it was ever ours (a late cancel or timeout)
            self.open -= 1
            self._wake_one()
            raise httpx.ConnectError(f"the connection to {self.host}:{self.port} closed at once")
        connection.counted = True
        return connection

    async def _wait_for_slot(self, timeout: float | None) -> None:
        waiter: asyncio.Future[None] = self.loop.create_future()
        self.waiting.append(waiter)
        handle = (
            self.loop.call_later(timeout, _expire, waiter, httpx.PoolTimeout)
            if timeout is not None
            else None
        )
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._wake_one()  # woken, then cancelled in the same turn: pass the slot on
            raise
        finally:
            if handle is not None:
                handle.cancel()
            if waiter in self.waiting:
                self.waiting.remove(waiter)

    async def _connect(self, timeout: float | None) -> _Connection:
        https = self.scheme == b"https"
        try:
            _, connection = await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: _Connection(self),
                    self.host,
                    self.port,
                    ssl=self.owner.ssl_context() if https else None,
                    server_hostname=self.host if https else None,
                ),
                timeout,
            )
        except asyncio.TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {self.host}:{self.port} timed out") from None
        except OSError as exc:
            raise httpx.ConnectError(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        return connection

    def release(self, connection: _Connection) -> None:
        """A finished exchange: keep the connection for the next request when it allows."""
        if connection.reusable and not connection.closed and len(self.idle) < self.owner._max_idle:
            connection.reset()
            self.idle.append(connection)
            self._wake_one()
        else:
            connection.discard()

    def forget(self, connection: _Connection) -> None:
        """A connection closed: free its slot (if it ever held one)."""
        if not connection.counted:
            return
        self.open -= 1
        if connection in self.idle:
            self.idle.remove(connection)
        self._wake_one()

    def _wake_one(self) -> None:
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        idle, self.idle = self.idle, []
        for connection in idle:
            connection.discard()


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection; httptools parses, the reader waits on one future."""

    def __init__(self, pool: _Pool) -> None:
        import httptools

        self.pool = pool
        self.transport: Any = None  # uvloop's transports are not asyncio.Transport subclasses
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.counted = False  # holds one of the pool's slots (set once connected)
        self.busy = False  # an exchange is in flight
        self.idle_since = 0.0
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.framed = False  # the answer says where it ends (content-length or chunked)
        self.interim = False  # a 1xx answer is being read; the real one follows
        self.head_done = False
        self.complete = False
        self.reusable = False
        self.error: Exception | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None

    # --- the event loop's side ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if not self.busy:  # bytes on an idle connection (a 408 before closing, say)
            self.discard()
            return
        try:
            self.parser.feed_data(data)
        except Exception as exc:  # httptools' parser errors: the peer broke HTTP/1.1
            self._fail(httpx.RemoteProtocolError(f"malformed HTTP response: {exc}"))
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            self.pool.forget(self)
        if self.head_done and not self.complete and not self.framed and exc is None:
            # An answer with neither a length nor chunks ends where the connection does.
            self.complete = True
            self._wake()
        if not self.complete:
            self._fail(httpx.ReadError("the server closed the connection mid-response"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        lowered = name.lower()
        if lowered == b"content-length" or (
            lowered == b"transfer-encoding" and b"chunked" in value.lower()
        ):
            self.framed = True

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:  # 100 Continue, 103 Early Hints, ...
            self.interim = True
            self.headers = []
            self.framed = False
            return
        self.status = status
        if status in (204, 304):
            self.framed = True  # no body, whatever the headers say
        self.head_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.interim:  # the end of a 1xx answer, not of the exchange
            self.interim = False
            return
        self.complete = True
        self.reusable = self.parser.should_keep_alive()
        self._wake()

    # --- the request's side ------------------------------------------------------------------

    def send(self, head: bytes, body: bytes) -> None:
        if self.closed or self.transport.is_closing():
            raise httpx.WriteError("the connection closed before the request was sent")
        self.busy = True
        self.transport.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            self.transport.write(body)

    async def wait_head(self, timeout: float | None) -> None:
        while not self.head_done:
            if self.error is not None:
                raise self.error
            await self._wait(timeout)

    async def body(self, timeout: float | None) -> AsyncIterator[bytes]:
        while True:
            if self.chunks:
                chunk = self.chunks.popleft()
                self.buffered -= len(chunk)
                if self.paused and self.buffered < _LOW_WATER:
                    self.paused = False
                    self.transport.resume_reading()
                yield chunk
            elif self.complete:
                return
            elif self.error is not None:
                raise self.error
            else:
                await self._wait(timeout)

    async def _wait(self, timeout: float | None) -> None:
        waiter = self.waiter = self.pool.loop.create_future()
        handle = (
            self.pool.loop.call_later(timeout, _expire, waiter, httpx.ReadTimeout)
            if timeout is not None
            else None
        )
        try:
            await waiter
        finally:
            self.waiter = None
            if handle is not None:
                handle.cancel()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: Exception) -> None:
        if self.error is None:
            self.error = error
        self._wake()

    def reset(self) -> None:
        """Ready for the next exchange on the same connection."""
        self.idle_since = time.monotonic()
        self.status = 0
        self.headers = []
        self.head_done = self.complete = self.reusable = False
        self.busy = self.framed = self.interim = False
        self.error = None
        self.chunks.clear()
        self.buffered = 0
        if self.paused:
            self.paused = False
            self.transport.resume_reading()

    def discard(self) -> None:
        """Close the connection (mid-exchange, expired, or not reusable)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        if not self.closed:
            self.closed = True
            self.pool.forget(self)


class _Body(httpx.AsyncByteStream):
    """The response body as httpx reads it; closing hands the connection back."""

    def __init__(self, connection: _Connection, timeout: float | None) -> None:
        self._connection: _Connection | None = connection
        self._timeout = timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._connection is None:
            raise httpx.StreamClosed()
        async for chunk in self._connection.body(self._timeout):
            yield chunk

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if connection.complete:  # whatever is left unread is already off the wire
            connection.pool.release(connection)
        else:  # the reader stopped early: the rest of the response is still on the wire
            connection.discard()


def _expire(waiter: asyncio.Future[None], error: type[httpx.TimeoutException]) -> None:
    if not waiter.done():
        waiter.set_exception(error("timed out waiting for the upstream"))


def _head(request: httpx.Request, length: int) -> bytes:
    """The request line and headers; a body read whole is always sent with its length, and
    a request built without httpx's defaults still names its host."""
    url = request.url
    lines = [b"%s %s HTTP/1.1\r\n" % (request.method.encode("ascii"), url.raw_path)]
    has_length = has_host = False
    for name, value in request.headers.raw:
        lowered = name.lower()
        if lowered == b"transfer-encoding":
            continue
        if lowered == b"content-length":
            has_length = True
            value = b"%d" % length
        elif lowered == b"host":
            has_host = True
        lines.append(b"%s: %s\r\n" % (name, value))
    if not has_host:
        lines.insert(1, b"Host: %s\r\n" % url.netloc)
    if not has_length and (length or request.method in ("POST", "PUT", "PATCH")):
        lines.append(b"Content-Length: %d\r\n" % length)
    lines.append(b"\r\n")
    return b"".join(lines)
