"""The exact cache: the same request to the same model gets the stored answer, for $0.

The key hashes everything that can change the output, so two requests share
an entry only when the upstream call would have been identical.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import threading
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..write_behind import RowBuffer
from .bulk import set_many
from .index import KeyIndex

__all__ = ["ExactCache", "cache_key"]

logger = logging.getLogger("llmrouter")

_MAX_PENDING = 20_000  # answers waiting for the writer (about 20 MB at most)

# Every open cache, so that a forked child can reset the threads it did not inherit.
_OPEN: weakref.WeakSet[ExactCache] = weakref.WeakSet()

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
    return hashlib.sha256(_canonical(material)).hexdigest()


def _canonical_stdlib(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def _canonical(value: Any) -> bytes:
    """Sorted-key JSON: orjson when installed (5 µs less per request on the sidecar's path;
    chosen on first use, so ``import llmrouter`` does not import it). Keys made with and
    without orjson differ, so processes sharing one cache directory should share an
    installation; a mismatch only costs hits, never serves a wrong answer."""
    global _canonical
    if importlib.util.find_spec("orjson") is None:
        _canonical = _canonical_stdlib
    else:
        import orjson

        options = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS

        def canonical(value: Any) -> bytes:
            return orjson.dumps(value, default=str, option=options)

        _canonical = canonical
    return _canonical(value)


class ExactCache:
    """diskcache on local disk, with a TTL; safe across threads and processes.

    Writes go behind the request path (:mod:`llmrouter.write_behind`): one writer thread
    stores each batch of answers in one diskcache transaction, the new keys with one
    statement (:mod:`llmrouter.cache.bulk`: ~24 µs an entry, against ~57 µs for ``set`` in
    a transaction and ~124 µs for a lone ``set``). Until written, an answer is served from
    a small map of pending writes. ``flush()`` waits for what was put before it;
    ``close()`` flushes first.

    Lookups of keys never stored skip the disk (:mod:`llmrouter.cache.index`, whose thread
    also culls expired entries and the size limit, instead of every write doing so).
    """

    def __init__(self, path: str | Path, ttl_s: float | None, max_size_mb: int = 512) -> None:
        import diskcache

        Path(path).mkdir(parents=True, exist_ok=True)
        # A small page cache and no mmap: the cache's memory stays flat however large it grows.
        # cull_limit=0: a write does not look for expired entries or check the size (about
        # 40% of a write's cost); the index thread culls, and close() does.
        self._cache = diskcache.Cache(
            str(path),
            size_limit=max_size_mb * 1024 * 1024,
            sqlite_mmap_size=0,
            sqlite_cache_size=64,
            cull_limit=0,
        )
        self.ttl_s = ttl_s
        self._pending: dict[str, dict[str, Any]] = {}
        self._buffer = RowBuffer()
        self._lock = threading.Lock()
        self._writer: threading.Thread | None = None
        self._dropping = False
        # The index reads diskcache's store_time index (the default eviction policy has it).
        self._index = KeyIndex(self._cache, Path(path) / diskcache.core.DBNAME)
        # Dropped without close(): the index thread (which does not hold this object) stops.
        weakref.finalize(self, self._index.stop, False)
        _OPEN.add(self)

    @property
    def indexed(self) -> threading.Event:
        """Set once lookups of keys never stored stop reading the disk."""
        return self._index.ready

    def get(self, key: str) -> dict[str, Any] | None:
        pending = self._pending.get(key)
        if pending is not None:
            return pending
        if not self._index.may_hold(key):
            return None
        self._index.ensure_running()  # a no-op but in a forked child
        value = self._cache.get(key)
        return value if isinstance(value, dict) else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        if len(self._pending) >= _MAX_PENDING:
            # The disk is not keeping up: a cache may drop an entry, memory must stay bounded.
            if not self._dropping:
                logger.warning(
                    "exact cache writes are %d behind; dropping new entries", _MAX_PENDING
                )
            self._dropping = True
            return
        self._dropping = False
        # The generation before the add: a rebuild published in between makes the writer
        # add the key again (a rebuild sets the filter first, then the generation).
        generation = self._index.generation
        self._index.add(key)
        with self._lock:
            self._pending[key] = value
        self._buffer.put((key, value, generation))
        if self._writer is None:
            with self._lock:
                if self._writer is None:
                    self._index.ensure_running()
                    self._writer = threading.Thread(
                        target=self._write_loop, name="llmrouter-cache", daemon=True
                    )
                    self._writer.start()

    def flush(self) -> None:
        if self._writer is not None:
            self._buffer.flush()

    def _after_fork(self) -> None:
        """In a forked child no thread of the parent runs: start afresh, lazily."""
        self._lock = threading.Lock()
        self._buffer = RowBuffer()
        self._pending = {}  # the parent writes what it had pending
        self._writer = None
        self._index.after_fork()

    def _write_loop(self) -> None:
        while True:
            batch, markers = self._buffer.take()
            if batch:
                self._store(batch)
                index = self._index
                for key, _, generation in batch:
                    if generation != index.generation:  # put before this filter was built
                        index.add(key)
                with self._lock:  # a newer answer put meanwhile stays pending
                    for key, value, _ in batch:
                        if self._pending.get(key) is value:
                            del self._pending[key]
            if self._buffer.settle(markers):
                return

    def _store(self, batch: list[tuple[str, dict[str, Any], int]]) -> None:
        tag = self._index.tag  # the index skips this process's rows when it catches up
        try:
            with self._cache.transact():
                set_many(self._cache, [(key, value) for key, value, _ in batch], self.ttl_s, tag)
        except Exception as exc:  # a full disk must not stop later writes
            logger.warning("exact cache write failed, %d entries dropped: %s", len(batch), exc)

    def clear(self) -> None:
        self.flush()
        self._cache.clear()
        self._index.filter = None  # read the disk until the index has rebuilt

    def __len__(self) -> int:
        self.flush()
        return len(self._cache)

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            self._buffer.stop().done.wait()
            writer.join()
        self._index.stop()
        self._index.cull()  # a short-lived process culls here, not after 30 s
        self._cache.close()


def _after_fork_in_child() -> None:
    for cache in list(_OPEN):
        cache._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
