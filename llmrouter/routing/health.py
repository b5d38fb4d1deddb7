"""Per-backend circuit breakers: stop sending traffic to a backend that keeps failing."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["CircuitBreaker"]


@dataclass(slots=True)
class _State:
    failures: int = 0
    opened_at: float | None = None
    trial_in_flight: bool = False


class CircuitBreaker:
    """Closed → open after N consecutive failures → half-open after a pause → closed on success.

    In half-open state one trial request is let through; its outcome closes or
    re-opens the circuit.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self._clock = clock
        self._states: dict[str, _State] = {}
        self._lock = threading.Lock()

    def state(self, backend: str) -> str:
        entry = self._states.get(backend)
        if entry is None or entry.opened_at is None:
            return "closed"
        if self._clock() - entry.opened_at >= self.reset_after_s:
            return "half-open"
        return "open"

    def allows(self, backend: str) -> bool:
        """Whether a request may be sent now (routing asks; it does not reserve the trial)."""
        entry = self._states.get(backend)
        if entry is None or entry.opened_at is None:
            return True
        return self.state(backend) == "half-open" and not entry.trial_in_flight

    def begin(self, backend: str) -> None:
        """Mark the half-open trial as taken, so concurrent requests do not pile on."""
        with self._lock:
            entry = self._states.get(backend)
            if entry is not None and entry.opened_at is not None:
                entry.trial_in_flight = True

    def record_success(self, backend: str) -> None:
        with self._lock:
            entry = self._states.get(backend)
            if entry is not None:
                entry.failures = 0
                entry.opened_at = None
                entry.trial_in_flight = False

    def record_failure(self, backend: str) -> None:
        with self._lock:
            entry = self._states.setdefault(backend, _State())
            entry.failures += 1
            entry.trial_in_flight = False
            if entry.opened_at is not None or entry.failures >= self.failure_threshold:
                entry.opened_at = self._clock()
