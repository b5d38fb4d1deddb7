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

from ..routing.conversations import ConversationMemory
from ..write_behind import RowBuffer

__all__ = ["SharedConversationMemory"]

log = logging.getLogger("llmrouter.shared")


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
        self._thread = threading.Thread(
            target=self._write_loop, name="llmrouter-conversations", daemon=True
        )
        self._thread.start()

    def _lookup(self, key: bytes) -> tuple[str, int] | None:
        found = super()._lookup(key)
        if found is not None:
            return found
        now = int(self._clock())
        window = now // self._ttl
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.hget(f"{self._prefix}{window}", key)
            pipe.hget(f"{self._prefix}{window - 1}", key)
            replies = pipe.execute()
        except Exception as exc:  # Redis down: this replica's own memory is all there is
            log.warning("shared conversation memory unavailable (%s); using the local one", exc)
            return None
        raw = replies[0] if replies[0] is not None else replies[1]
        if raw is None:
            return None
        backend, _, stamp = raw.decode("utf-8").rpartition(" ")
        if not backend or not stamp.isdigit():
            log.warning("shared conversation memory: malformed entry %r ignored", raw[:80])
            return None
        second = int(stamp)
        if now - second > self._ttl:
            return None  # kept until its window's hash expires, trusted for one TTL
        super()._store(key, backend, second)
        return backend, second

    def _store(self, key: bytes, backend: str, second: int) -> None:
        super()._store(key, backend, second)
        self._buffer.put((second // self._ttl, key, f"{backend} {second}"))

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
            log.warning("shared conversation memory: %d entries not shared (%s)", len(rows), exc)

    def flush(self) -> None:
        """Return once every conversation remembered so far is in Redis (or logged)."""
        self._buffer.flush()

    def close(self) -> None:
        self._buffer.stop().done.wait(timeout=5)
        self._thread.join(timeout=5)
