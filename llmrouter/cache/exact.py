"""The exact cache: the same request to the same model gets the stored answer, for $0.

The key hashes everything that can change the output, so two requests share
an entry only when the upstream call would have been identical.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..write_behind import RowBuffer
from .presence import KeyFilter

__all__ = ["ExactCache", "cache_key"]

logger = logging.getLogger("llmrouter")

_INDEX_EVERY_S = 1.0  # how often the key filter reads rows other processes stored
_REBUILD_EVERY_S = 300.0  # a fresh filter sheds keys that expired or were evicted
_CULL_EVERY_S = 30.0  # expired entries and the size limit, off the write path

# Parameters that do not change what the model writes, and so stay out of the key.
_NOT_IN_KEY = frozenset(
    {
        "stream",
        "stream_options",
        "user",
        "metadata",
        "timeout",
        "extra_headers",
        "store",
        "service_tier",
    }
)


def cache_key(
    namespace: str,
    backend: str,
    provider_model: str,
    messages: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
) -> str:
    material = {
        "ns": namespace,
        "backend": backend,
        "model": provider_model,
        "messages": messages,
        "params": {k: v for k, v in params.items() if k not in _NOT_IN_KEY and v is not None},
    }
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ExactCache:
    """diskcache on local disk, with a TTL; safe across threads and processes.

    Writes go behind the request path (:mod:`llmrouter.write_behind`): one writer thread
    stores each batch of answers in one diskcache transaction (~58 µs an entry, against
    ~124 µs for a lone ``set``). Until written, an answer is served from a small map of
    pending writes. ``flush()`` waits for what was put before it; ``close()`` flushes first.

    Lookups of keys never stored skip the disk (:class:`~llmrouter.cache.presence.KeyFilter`,
    kept up to date by an index thread that also culls expired entries and enforces the size
    limit every 30 s, instead of on every write).
    """

    def __init__(self, path: str | Path, ttl_s: float | None, max_size_mb: int = 512) -> None:
        import diskcache

        Path(path).mkdir(parents=True, exist_ok=True)
        # A small page cache and no mmap: the cache's memory stays flat however large it grows.
        # cull_limit=0: a write does not look for expired entries or check the size (about
        # 40% of a write's cost); the index thread culls instead.
        self._cache = diskcache.Cache(
            str(path),
            size_limit=max_size_mb * 1024 * 1024,
            sqlite_mmap_size=0,
            sqlite_cache_size=256,
            cull_limit=0,
        )
        self._db_path = Path(path) / diskcache.core.DBNAME
        self.ttl_s = ttl_s
        self._pending: dict[str, dict[str, Any]] = {}
        self._buffer = RowBuffer()
        self._lock = threading.Lock()
        self._writer: threading.Thread | None = None
        # None until built (and after an index failure): then every lookup reads the disk.
        self._filter: KeyFilter | None = None
        self._seen_rowid = 0
        self.indexed = threading.Event()  # set once the filter first covers the disk
        self._stop_index = threading.Event()
        self._indexer = threading.Thread(
            target=self._index_loop, name="llmrouter-cache-index", daemon=True
        )
        self._indexer.start()

    def get(self, key: str) -> dict[str, Any] | None:
        pending = self._pending.get(key)
        if pending is not None:
            return pending
        known = self._filter
        if known is not None and key not in known:
            return None
        value = self._cache.get(key)
        return value if isinstance(value, dict) else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        known = self._filter
        if known is not None:
            known.add(key)
        with self._lock:
            self._pending[key] = value
        self._buffer.put((key, value))
        if self._writer is None:
            with self._lock:
                if self._writer is None:
                    self._writer = threading.Thread(
                        target=self._write_loop, name="llmrouter-cache", daemon=True
                    )
                    self._writer.start()

    def flush(self) -> None:
        if self._writer is not None:
            self._buffer.flush()

    def _write_loop(self) -> None:
        while True:
            batch, markers = self._buffer.take()
            if batch:
                self._store(batch)
                known = self._filter  # puts made before the filter was built are in it now
                if known is not None:
                    for key, _ in batch:
                        known.add(key)
                with self._lock:  # a newer answer put meanwhile stays pending
                    for key, value in batch:
                        if self._pending.get(key) is value:
                            del self._pending[key]
            if self._buffer.settle(markers):
                return

    def _store(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        try:
            with self._cache.transact():
                for key, value in batch:
                    self._cache.set(key, value, expire=self.ttl_s)
        except Exception as exc:  # a full disk must not stop later writes
            logger.warning("exact cache write failed, %d entries dropped: %s", len(batch), exc)

    # --- the key filter ----------------------------------------------------------------------

    def _index_loop(self) -> None:
        """Build the filter, then every second add the rows stored since (by any process);
        rebuild it when it fills up, every five minutes, or when rows were deleted from the
        end of the table (a clear elsewhere); cull every 30 s."""
        connection: sqlite3.Connection | None = None
        built = last_cull = time.monotonic()
        failing = False
        while True:
            try:
                if connection is None:
                    connection = sqlite3.connect(self._db_path, check_same_thread=False)
                    connection.execute("PRAGMA query_only = 1")
                now = time.monotonic()
                known = self._filter
                if known is None or known.full or now - built >= _REBUILD_EVERY_S:
                    self._rebuild(connection)
                    built = now
                elif not self._catch_up(connection, known):
                    self._filter = None  # rows were deleted from the end: rebuild next time
                self.indexed.set()
                failing = False
            except (sqlite3.Error, OSError) as exc:
                self._filter = None
                if not failing:  # once per outage, not every second
                    logger.warning("exact cache index unavailable, lookups read the disk: %s", exc)
                failing = True
                if connection is not None:
                    connection.close()
                    connection = None
            if self._stop_index.wait(_INDEX_EVERY_S):
                break
            if time.monotonic() - last_cull >= _CULL_EVERY_S:
                last_cull = time.monotonic()
                self._cull()
        if connection is not None:
            connection.close()

    def _rebuild(self, connection: sqlite3.Connection) -> None:
        (rows,) = connection.execute("SELECT COUNT(*) FROM Cache").fetchone()
        fresh = KeyFilter(2 * rows)
        last = 0
        for rowid, key in connection.execute("SELECT rowid, key FROM Cache ORDER BY rowid"):
            if isinstance(key, str):
                fresh.add(key)
            last = rowid
        self._seen_rowid = last
        self._filter = fresh
        # Rows stored while the filter was built (and this process's puts made meanwhile,
        # which went to the old filter) have higher rowids: add them now.
        self._catch_up(connection, fresh)

    def _catch_up(self, connection: sqlite3.Connection, known: KeyFilter) -> bool:
        """Add the rows stored since the last look; False if rows vanished from the end."""
        rows = connection.execute(
            "SELECT rowid, key FROM Cache WHERE rowid > ? ORDER BY rowid", (self._seen_rowid,)
        ).fetchall()
        if rows:
            for _, key in rows:
                if isinstance(key, str):
                    known.add(key)
            self._seen_rowid = rows[-1][0]
            return True
        (top,) = connection.execute("SELECT MAX(rowid) FROM Cache").fetchone()
        return (top or 0) >= self._seen_rowid

    def _cull(self) -> None:
        try:
            self._cache.cull()
        except Exception as exc:  # a busy or full disk: try again next time
            logger.warning("exact cache cull failed: %s", exc)

    def clear(self) -> None:
        self.flush()
        self._cache.clear()

    def __len__(self) -> int:
        self.flush()
        return len(self._cache)

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            self._buffer.stop().done.wait()
            writer.join()
        self._stop_index.set()
        self._indexer.join()
        self._cache.close()
