"""The exact cache: the same request to the same model gets the stored answer, for $0.

The key hashes everything that can change the output, so two requests share
an entry only when the upstream call would have been identical.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["ExactCache", "cache_key"]

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
    """diskcache on local disk, with a TTL; safe across threads and processes."""

    def __init__(self, path: str | Path, ttl_s: float | None, max_size_mb: int = 512) -> None:
        import diskcache

        Path(path).mkdir(parents=True, exist_ok=True)
        self._cache = diskcache.Cache(str(path), size_limit=max_size_mb * 1024 * 1024)
        self.ttl_s = ttl_s

    def get(self, key: str) -> dict[str, Any] | None:
        value = self._cache.get(key)
        return value if isinstance(value, dict) else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._cache.set(key, value, expire=self.ttl_s)

    def clear(self) -> None:
        self._cache.clear()

    def __len__(self) -> int:
        return len(self._cache)

    def close(self) -> None:
        self._cache.close()
