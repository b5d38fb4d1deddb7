"""Budget counters in integer nano-dollars: check-and-add across several counters atomically.

Integers, not floats, so that reserving and settling millions of tiny amounts never
drifts. ``reserve`` adds ``amount`` to every counter unless a hard limit would be
crossed, in which case nothing changes; soft limits never refuse. The Redis-backed
counters are in :mod:`.redis_counters` (imported only when a policy shares state).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ..errors import LLMRouterError

__all__ = [
    "NANOS",
    "BudgetUnavailable",
    "Counters",
    "LocalCounters",
    "ReserveResult",
]

NANOS = 1_000_000_000  # nano-dollars per dollar


class BudgetUnavailable(LLMRouterError):
    """The shared budget counters cannot be reached: refuse rather than spend unchecked."""

    status_code = 503
    error_type = "service_unavailable"
    code = "budget_unavailable"


@dataclass(frozen=True, slots=True)
class ReserveResult:
    refused: int | None  # index of the hard counter that would overflow, or None
    values: tuple[int, ...]  # each counter after the reservation (before it, if refused)


class Counters(Protocol):
    def reserve(
        self, keys: Sequence[str], amount: int, limits: Sequence[int | None], ttls: Sequence[int]
    ) -> ReserveResult: ...

    async def areserve(
        self, keys: Sequence[str], amount: int, limits: Sequence[int | None], ttls: Sequence[int]
    ) -> ReserveResult: ...

    def adjust(self, keys: Sequence[str], delta: int) -> None: ...

    def values(self, keys: Sequence[str]) -> list[int]: ...

    def close(self) -> None: ...


class LocalCounters:
    """Counters in this process, under one lock (TTLs are irrelevant: keys carry the period)."""

    def __init__(self) -> None:
        self._values: dict[str, int] = {}
        self._lock = threading.Lock()

    def reserve(
        self, keys: Sequence[str], amount: int, limits: Sequence[int | None], ttls: Sequence[int]
    ) -> ReserveResult:
        with self._lock:
            current = [self._values.get(k, 0) for k in keys]
            for index, (value, limit) in enumerate(zip(current, limits, strict=True)):
                if limit is not None and value + amount > limit:
                    return ReserveResult(index, tuple(current))
            for key in keys:
                self._values[key] = self._values.get(key, 0) + amount
            return ReserveResult(None, tuple(v + amount for v in current))

    async def areserve(
        self, keys: Sequence[str], amount: int, limits: Sequence[int | None], ttls: Sequence[int]
    ) -> ReserveResult:
        return self.reserve(keys, amount, limits, ttls)  # a lock held for microseconds

    def adjust(self, keys: Sequence[str], delta: int) -> None:
        if delta == 0:
            return
        with self._lock:
            for key in keys:
                self._values[key] = self._values.get(key, 0) + delta

    def values(self, keys: Sequence[str]) -> list[int]:
        with self._lock:
            return [self._values.get(k, 0) for k in keys]

    def close(self) -> None:
        pass
