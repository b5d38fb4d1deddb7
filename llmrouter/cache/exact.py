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

    Writes go to one writer thread, so a miss does not pay for a SQLite write on the
    request path; until written, an entry is served from a small in-memory map of
    pending writes. The writer wakes every ``LINGER_S`` and stores what is pending in
    one transaction: waking per entry made the request thread wait for the GIL each
    time it released it (tiktoken does, on every request). ``flush()`` waits for what
    was put before it; ``close()`` flushes first.
    """

    LINGER_S = 0.02

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
        self._lock = threading.Lock()
        self._written = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._put_count = 0  # puts so far
        self._done_count = 0  # puts whose batch the writer has finished
        self._stopping = False
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
            self._put_count += 1
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_loop, name="llmrouter-cache", daemon=True
                )
                self._writer.start()

    def flush(self) -> None:
        with self._written:
            if self._writer is None:
                return
            target = self._put_count
            self._wake.set()
            while (
                self._done_count < target and self._writer is not None and self._writer.is_alive()
            ):
                self._written.wait(timeout=1.0)

    def _write_loop(self) -> None:
        while True:
            self._wake.wait(self.LINGER_S)
            self._wake.clear()
            with self._lock:
                batch = dict(self._pending)
                covered = self._put_count
                stopping = self._stopping
            if batch:
                self._store(batch)
            with self._written:
                for key, value in batch.items():
                    if self._pending.get(key) is value:
                        del self._pending[key]
                self._done_count = covered
                self._written.notify_all()
            if stopping:
                return

    def _store(self, batch: dict[str, dict[str, Any]]) -> None:
        try:
            with self._cache.transact():
                for key, value in batch.items():
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
        writer = self._writer
        if writer is not None:
            with self._lock:
                self._stopping = True
            self._wake.set()
            writer.join()
            with self._written:
                self._writer = None
                self._written.notify_all()
        self._cache.close()
