"""Which backend answered a conversation, shared by replicas through Redis.

Behind a load balancer a conversation's turns land on any replica; each would otherwise
remember only the turns it answered, and stickiness would be a coin toss. Entries are fields
of one hash per ``conversation_ttl_s`` window, ``{prefix}:conv:{window}``: field the local
memory's 16-byte digest, value ``backend second`` (wall-clock seconds, comparable between
replicas). One HSET stores a whole batch (a pipelined SET per entry costs ten times the
client CPU), and a window's hash expires one TTL after the window closes, so an entry lives
between one and two TTLs and is trusted for one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..routing.conversations import ConversationMemory, when
from ..write_behind import RowBuffer

__all__ = ["SharedConversationMemory"]

log = logging.getLogger("llmrouter.shared")

# A local entry meaning "Redis did not know this conversation" (no backend has this name:
# policy names are non-empty), trusted this long.
_UNKNOWN = ""
_UNKNOWN_TTL_S = 10
# After a failed read, requests stop asking Redis for this long: a read against a down
# Redis blocks its request for seconds (the client's connect timeout and retries).
_READ_PAUSE_S = 30.0


class SharedConversationMemory(ConversationMemory):
    """The local LRU (what this replica answered or has looked up) in front of Redis.

    ``remember`` stores locally and queues the entry for a writer thread that sends each
    batch as one HSET, so the request path pays a deque append; ``backend_for`` asks Redis
    (one pipelined read of the current and the previous window) only for a conversation the
    local memory does not know. When Redis is unreachable the local memory still answers,
    and the failure is logged: it never fails a request.
    """

    def __init__(
        self,
        client: Any,
        prefix: str,
        ttl_s: float,
        max_entries: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(max_entries, clock=clock)
        self._client = client
        self._prefix = f"{prefix}:conv:"
        self._ttl = max(int(ttl_s), 1)
        self._buffer = RowBuffer()
        self._closed = False
        self._warned: dict[str, float] = {}
        self._down_until = -1e18
        self._thread = threading.Thread(
            target=self._write_loop, name="llmrouter-conversations", daemon=True
        )
        self._thread.start()

    def _lookup(self, key: bytes) -> tuple[str, int] | None:
        now = int(self._clock())
        found = super()._lookup(key)
        if found is not None:
            backend, second = found
            if backend == _UNKNOWN:  # asked Redis a moment ago: not worth another round trip
                return None if now - second < _UNKNOWN_TTL_S else self._ask(key, now)
            # The same expiry as an entry read from Redis, so replicas agree on it.
            return found if now - when(second) <= self._ttl else None
        return self._ask(key, now)

    def _ask(self, key: bytes, now: int) -> tuple[str, int] | None:
        """The entry Redis holds for ``key`` (current or previous window), if trusted."""
        if time.monotonic() < self._down_until:
            return None  # a failed read (seconds, with the client's retries) was recent
        window = now // self._ttl
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.hget(f"{self._prefix}{window}", key)
            pipe.hget(f"{self._prefix}{window - 1}", key)
            replies = pipe.execute()
            raw = replies[0] if replies[0] is not None else replies[1]
            parsed = _parse(raw) if raw is not None else None
        except Exception as exc:  # Redis down: this replica's own memory is all there is
            self._down_until = time.monotonic() + _READ_PAUSE_S
            why = f"shared conversation memory unavailable ({exc}); local only for a while"
            self._warn("read", why)
            return None
        if parsed is None or now - when(parsed[1]) > self._ttl:
            # Unknown (or too old) everywhere: few-shot prompts carry assistant turns no
            # router gave, and would otherwise cost a round trip each.
            super()._store(key, _UNKNOWN, now)
            return None
        super()._store(key, *parsed)
        return parsed

    def _warn(self, kind: str, message: str) -> None:
        """Log ``message`` at most once a minute per ``kind`` (a down Redis would otherwise
        log every request)."""
        now = time.monotonic()
        if now - self._warned.get(kind, -1e18) >= 60.0:
            self._warned[kind] = now
            log.warning(message)

    def _store(self, key: bytes, backend: str, second: int) -> None:
        super()._store(key, backend, second)
        if not self._closed:
            self._buffer.put((when(second) // self._ttl, key, f"{backend} {second}"))

    def _write_loop(self) -> None:
        while True:
            rows, markers = self._buffer.take()
            if rows:
                self._write(rows)
            if RowBuffer.settle(markers):
                return

    def _write(self, rows: list[tuple[int, bytes, str]]) -> None:
        by_window: dict[int, list[bytes | str]] = {}
        for window, key, value in rows:
            by_window.setdefault(window, []).extend((key, value))
        try:
            pipe = self._client.pipeline(transaction=False)
            for window, fields in by_window.items():
                name = f"{self._prefix}{window}"
                pipe.execute_command("HSET", name, *fields)
                pipe.expireat(name, (window + 2) * self._ttl)
            pipe.execute()
        except Exception as exc:
            why = f"shared conversation memory: {len(rows)} entries not shared ({exc})"
            self._warn("write", why)

    def flush(self) -> None:
        """Return once every conversation remembered so far is in Redis (or logged)."""
        if not self._closed:
            self._buffer.flush()

    def close(self) -> None:
        """Send what is queued and stop the writer; later turns are remembered locally."""
        if self._closed:
            return
        self._closed = True
        self._buffer.stop().done.wait(timeout=5)
        self._thread.join(timeout=5)


def _parse(raw: bytes) -> tuple[str, int] | None:
    """``backend second`` from Redis, or None (logged) for anything else."""
    backend, _, stamp = raw.decode("utf-8", "replace").rpartition(" ")
    digits = stamp.removeprefix("-")  # negative: a reply served from a router's cache
    if backend and backend != _UNKNOWN and digits.isascii() and digits.isdigit():
        return backend, int(stamp)
    log.warning("shared conversation memory: malformed entry %r ignored", raw[:80])
    return None
