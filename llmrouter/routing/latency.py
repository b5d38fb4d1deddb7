"""Moving estimates of each backend's speed, learned from real calls."""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["LatencyEstimate", "LatencyTracker"]


@dataclass(slots=True)
class LatencyEstimate:
    ttft_ms: float
    tokens_per_s: float
    samples: int

    def predict_ms(self, output_tokens: int) -> float:
        return self.ttft_ms + 1000.0 * output_tokens / max(self.tokens_per_s, 1e-3)


class LatencyTracker:
    """Exponentially weighted time to first token and output tokens per second."""

    def __init__(self, alpha: float = 0.2) -> None:
        self.alpha = alpha
        self._estimates: dict[str, LatencyEstimate] = {}
        self._lock = threading.Lock()

    def get(self, backend: str) -> LatencyEstimate | None:
        return self._estimates.get(backend)

    def observe(
        self, backend: str, ttft_ms: float, total_ms: float, completion_tokens: int
    ) -> None:
        generation_ms = max(total_ms - ttft_ms, 1.0)
        tokens_per_s = 1000.0 * completion_tokens / generation_ms if completion_tokens > 1 else None
        with self._lock:
            current = self._estimates.get(backend)
            if current is None:
                self._estimates[backend] = LatencyEstimate(
                    ttft_ms=ttft_ms, tokens_per_s=tokens_per_s or 50.0, samples=1
                )
                return
            a = self.alpha
            current.ttft_ms = (1 - a) * current.ttft_ms + a * ttft_ms
            if tokens_per_s is not None:
                current.tokens_per_s = (1 - a) * current.tokens_per_s + a * tokens_per_s
            current.samples += 1
