"""Latency estimates pooled across replicas.

Each replica learns from its own calls (the usual moving averages) and, every
``sync_s`` seconds on a background thread, publishes them to Redis and reads everyone
else's: routing then uses the sample-weighted mean of all replicas. No round trip is
made on the request path.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from ..routing.latency import LatencyEstimate, LatencyTracker

__all__ = ["SharedLatencyTracker"]

log = logging.getLogger("llmrouter.shared")

_STALE_S = 300  # a replica's published estimate expires when it stops publishing


class SharedLatencyTracker(LatencyTracker):
    def __init__(
        self,
        client: Any,
        prefix: str,
        replica: str,
        backends: Sequence[str],
        sync_s: float = 1.0,
        alpha: float = 0.2,
    ) -> None:
        super().__init__(alpha)
        self._client = client
        self._prefix = f"{prefix}:latency:"
        self._replica = replica
        self._backends = list(backends)
        self.sync_s = sync_s
        self._merged: dict[str, LatencyEstimate] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="llmrouter-latency-sync", daemon=True
        )
        self._thread.start()

    def get(self, backend: str) -> LatencyEstimate | None:
        merged = self._merged.get(backend)
        return merged if merged is not None else super().get(backend)

    def own(self, backend: str) -> LatencyEstimate | None:
        """This replica's estimate alone."""
        return super().get(backend)

    def sync(self) -> None:
        """Publish this replica's estimates and merge everyone's (one pipelined round trip)."""
        pipe = self._client.pipeline(transaction=False)
        for name in self._backends:
            mine = super().get(name)
            key = self._prefix + name
            if mine is not None:
                pipe.hset(key, self._replica, f"{mine.ttft_ms},{mine.tokens_per_s},{mine.samples}")
                pipe.expire(key, _STALE_S)
            pipe.hgetall(key)
        replies = pipe.execute()
        merged: dict[str, LatencyEstimate] = {}
        position = 0
        for name in self._backends:
            if super().get(name) is not None:
                position += 2
            values = replies[position]
            position += 1
            total = ttft = speed = 0.0
            for raw in values.values():
                first, rate, samples = (float(x) for x in raw.decode().split(","))
                weight = min(samples, 1000.0)
                total += weight
                ttft += weight * first
                speed += weight * rate
            if total > 0:
                merged[name] = LatencyEstimate(ttft / total, speed / total, int(total))
        self._merged = merged

    def _loop(self) -> None:
        while not self._stop.wait(self.sync_s):
            try:
                self.sync()
            except Exception as exc:
                log.warning("shared latency sync failed (%s); using local estimates", exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
