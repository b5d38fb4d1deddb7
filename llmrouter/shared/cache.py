"""The exact cache in Redis, so every replica answers a repeated request for $0."""

from __future__ import annotations

import json
from typing import Any

from ..cache.exact import ExactCache

__all__ = ["RedisExactCache"]


class RedisExactCache(ExactCache):
    """Same interface as :class:`ExactCache` (the keys are the same hashes), values as JSON
    with the policy's TTL. One GET per lookup, one SET per stored answer."""

    def __init__(self, client: Any, prefix: str, ttl_s: float | None) -> None:
        # Deliberately not calling ExactCache.__init__: there is no local disk cache.
        self._client = client
        self._prefix = f"{prefix}:cache:"
        self.ttl_s = ttl_s

    def get(self, key: str) -> dict[str, Any] | None:
        raw = self._client.get(self._prefix + key)
        if raw is None:
            return None
        value = json.loads(raw)
        return value if isinstance(value, dict) else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        ttl = max(int(self.ttl_s), 1) if self.ttl_s is not None else None
        payload = json.dumps(value, separators=(",", ":"), default=str)
        self._client.set(self._prefix + key, payload, ex=ttl)

    def _keys(self) -> list[bytes]:
        return list(self._client.scan_iter(match=self._prefix + "*", count=1000))

    def clear(self) -> None:
        keys = self._keys()
        for start in range(0, len(keys), 1000):
            self._client.delete(*keys[start : start + 1000])

    def __len__(self) -> int:
        return len(self._keys())

    def close(self) -> None:
        pass  # the client belongs to SharedState
