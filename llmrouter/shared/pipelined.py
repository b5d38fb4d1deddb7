"""A lean asyncio Redis connection for the request path (the atomic budget reserve).

redis-py's asyncio client spends ~110 µs of CPU per command here (pool checkout, locks,
retry wrappers, reply conversion): a third of a sidecar core's headroom at a few hundred
requests per second. This connection does only what the request path needs:

- one connection per event loop, no pool: Redis answers in order, so replies are matched
  to callers first-in first-out and any number of concurrent callers share it;
- commands issued in the same event-loop turn leave in one write (automatic pipelining);
  each command is still executed by Redis on its own, so a Lua script stays atomic;
- replies are parsed by hiredis; error replies come back as :class:`hiredis.ReplyError`
  values for the caller to judge;
- a command unanswered for ``timeout_s`` closes the connection and fails every waiting
  caller (one watchdog timer per connection, not one per command); the next command
  reconnects.

A caller that stops waiting (its task was cancelled) does not stop Redis from executing
the command: ``orphan`` receives the reply instead, so the caller can undo its effect.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import hiredis

__all__ = ["PipelinedRedis", "RedisUnavailable", "supports"]

Orphan = Callable[[Any], None]

log = logging.getLogger("llmrouter.shared")


def hand_to_orphan(orphan: Orphan, reply: Any) -> None:
    """Give a reply to the handler of a caller that went away; its failure is logged, never
    allowed to stop the replies behind it from reaching their callers."""
    try:
        orphan(reply)
    except Exception:
        log.exception("redis: undoing an abandoned command failed")


class RedisUnavailable(ConnectionError):
    """The connection failed, timed out or was closed before the reply came."""


def supports(url: str) -> bool:
    """Plain TCP and Unix-socket URLs; anything else (TLS) is left to redis-py."""
    return url.startswith(("redis://", "unix://"))


class _Connection(asyncio.Protocol):
    def __init__(self, timeout_s: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._timeout_s = timeout_s
        self._reader = hiredis.Reader()
        self._waiting: deque[tuple[asyncio.Future[Any], float, Orphan | None]] = deque()
        self._outgoing: list[bytes] = []
        self._transport: Any = None  # an asyncio.Transport (uvloop's are not subclasses)
        self._watchdog: asyncio.TimerHandle | None = None
        self.lost = False

    # --- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisUnavailable(f"Redis connection lost: {exc or 'closed'}"))

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while True:
            try:
                reply = self._reader.gets()
            except hiredis.ProtocolError as exc:
                self.close(RedisUnavailable(f"Redis protocol error: {exc}"))
                return
            if reply is False:
                return
            if not self._waiting:  # a reply nobody asked for: we are out of step with Redis
                self.close(RedisUnavailable("unexpected reply from Redis"))
                return
            future, _, orphan = self._waiting.popleft()
            if not future.done():
                future.set_result(reply)
            elif orphan is not None and future.cancelled():
                hand_to_orphan(orphan, reply)

    # --- commands --------------------------------------------------------------------------------

    def send(self, args: tuple[Any, ...], orphan: Orphan | None = None) -> asyncio.Future[Any]:
        future = self._loop.create_future()
        if self.lost:
            future.set_exception(RedisUnavailable("Redis connection lost"))
            return future
        if not self._outgoing:
            self._loop.call_soon(self._write)
        self._outgoing.append(hiredis.pack_command(args))
        self._waiting.append((future, self._loop.time(), orphan))
        if self._watchdog is None:
            self._watchdog = self._loop.call_later(self._timeout_s, self._check)
        return future

    def _write(self) -> None:
        if self._transport is not None and self._outgoing and not self.lost:
            self._transport.write(b"".join(self._outgoing))
        self._outgoing.clear()

    def _check(self) -> None:
        """The watchdog: close the connection if the oldest command waited too long."""
        self._watchdog = None
        if not self._waiting or self.lost:
            return
        waited = self._loop.time() - self._waiting[0][1]
        if waited >= self._timeout_s:
            self.close(RedisUnavailable(f"no reply from Redis in {self._timeout_s:g} s"))
            return
        self._watchdog = self._loop.call_later(self._timeout_s - waited, self._check)

    def close(self, reason: Exception | None = None) -> None:
        self._fail(reason or RedisUnavailable("Redis connection closed"))
        if self._transport is not None:
            self._transport.abort()

    def _fail(self, reason: Exception) -> None:
        """Every caller still waiting gets ``reason``; their commands' effects are unknown."""
        self.lost = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._outgoing.clear()
        while self._waiting:
            future, _, _ = self._waiting.popleft()
            if not future.done():
                future.set_exception(reason)


class PipelinedRedis:
    """Commands to one Redis from one event loop (make one per loop); connects on first use."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        from redis.connection import parse_url  # the same URL rules as the redis-py client

        if not supports(url):
            raise ValueError(f"not a redis:// or unix:// URL: {url!r}")
        self._params: dict[str, Any] = parse_url(url)
        self.timeout_s = timeout_s
        self._connection: _Connection | None = None
        self._lock: asyncio.Lock | None = None

    async def execute(self, *args: Any, orphan: Orphan | None = None) -> Any:
        """Send one command and return its reply (a ``hiredis.ReplyError`` for an error
        reply); raises :class:`RedisUnavailable` when the connection fails."""
        connection = self._connection
        if connection is None or connection.lost:
            connection = await self._connect()
        future = connection.send(args, orphan)
        try:
            return await future
        except asyncio.CancelledError:
            # The reply and the cancellation can arrive in the same loop turn: the reply is
            # then in the future but the caller never sees it, so ``orphan`` must.
            answered = future.done() and not future.cancelled() and future.exception() is None
            if orphan is not None and answered:
                hand_to_orphan(orphan, future.result())
            raise

    async def _connect(self) -> _Connection:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._connection is None or self._connection.lost:
                try:
                    self._connection = await asyncio.wait_for(self._open(), self.timeout_s)
                except (OSError, asyncio.TimeoutError) as exc:
                    raise RedisUnavailable(f"cannot connect to Redis: {exc!r}") from exc
            return self._connection

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        params = self._params
        timeout = self.timeout_s
        if "path" in params:
            _, connection = await loop.create_unix_connection(
                lambda: _Connection(timeout), params["path"]
            )
        else:
            _, connection = await loop.create_connection(
                lambda: _Connection(timeout),
                params.get("host", "localhost"),
                int(params.get("port", 6379)),
            )
        setup: list[tuple[Any, ...]] = []
        if params.get("password") is not None:
            user = params.get("username")
            password = params["password"]
            setup.append(("AUTH", user, password) if user else ("AUTH", password))
        if params.get("db"):
            setup.append(("SELECT", int(params["db"])))
        for command in setup:
            reply = await connection.send(command)
            if isinstance(reply, hiredis.ReplyError):
                connection.close()
                raise RedisUnavailable(f"Redis refused {command[0]}: {reply}")
        return connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
