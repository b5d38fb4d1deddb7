"""The exact cache: the same request to the same model gets the stored answer, for $0.

The key hashes everything that can change the output, so two requests share
an entry only when the upstream call would have been identical.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..write_behind import RowBuffer

__all__ = ["ExactCache", "cache_key"]

logger = logging.getLogger("llmrouter")

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
    """

    def __init__(self, path: str | Path, ttl_s: float | None, max_size_mb: int = 512) -> None:
        import diskcache

        Path(path).mkdir(parents=True, exist_ok=True)
        # A small page cache and no mmap: the cache's memory stays flat however large it grows.
        self._cache = diskcache.Cache(
            str(path),
            size_limit=max_size_mb * 1024 * 1024,
            sqlite_mmap_size=0,
            sqlite_cache_size=256,
        )
        self.ttl_s = ttl_s
        self._pending: dict[str, dict[str, Any]] = {}
        self._buffer = RowBuffer()
        self._lock = threading.Lock()
        self._writer: threading.Thread | None = None

    def get(self, key: str) -> dict[str, Any] | None:
        pending = self._pending.get(key)
        if pending is not None:
            return pending
        value = self._cache.get(key)
        return value if isinstance(value, dict) else None

    def put(self, key: str, value: dict[str, Any]) -> None:
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
        self._cache.close()
