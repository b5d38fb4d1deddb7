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
    "Cell",
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


Cell = list[int]  # one counter's value, boxed so a caller can hold on to it


class LocalCounters:
    """Counters in this process, under one lock (TTLs are irrelevant: keys carry the period).

    Each counter is a one-element list (a *cell*): :class:`~.enforcer.Budgets` looks the
    cells of a caller's budgets up once a second and then reserves and settles on them
    directly (:meth:`reserve_cells`), with no key lookups per call.
    """

    def __init__(self) -> None:
        self._cells: dict[str, Cell] = {}
        self.lock = threading.Lock()  # guards every cell's value

    def cells(self, keys: Sequence[str]) -> tuple[Cell, ...]:
        """The cells of ``keys`` (made at 0 when new), for :meth:`reserve_cells`."""
        with self.lock:
            return tuple(self._cells.setdefault(key, [0]) for key in keys)

    def reserve_cells(
        self, cells: Sequence[Cell], amount: int, hard: Sequence[tuple[Cell, int]]
    ) -> int | None:
        """Add ``amount`` to every cell unless a hard ``(cell, limit)`` would go over its
        limit; returns that one's index in ``hard`` (and changes nothing), else None."""
        with self.lock:
            for index, (cell, limit) in enumerate(hard):
                if cell[0] + amount > limit:
                    return index
            for cell in cells:
                cell[0] += amount
            return None

    def adjust_cells(self, cells: Sequence[Cell], delta: int) -> None:
        if delta:
            with self.lock:
                for cell in cells:
                    cell[0] += delta

    def reserve(
        self, keys: Sequence[str], amount: int, limits: Sequence[int | None], ttls: Sequence[int]
    ) -> ReserveResult:
        cells = self.cells(keys)
        with self.lock:
            current = tuple(cell[0] for cell in cells)
            for index, (value, limit) in enumerate(zip(current, limits, strict=True)):
                if limit is not None and value + amount > limit:
                    return ReserveResult(index, current)
            for cell in cells:
                cell[0] += amount
            return ReserveResult(None, tuple(v + amount for v in current))

    async def areserve(
        self, keys: Sequence[str], amount: int, limits: Sequence[int | None], ttls: Sequence[int]
    ) -> ReserveResult:
        return self.reserve(keys, amount, limits, ttls)  # a lock held for microseconds

    def adjust(self, keys: Sequence[str], delta: int) -> None:
        if delta:
            self.adjust_cells(self.cells(keys), delta)

    def values(self, keys: Sequence[str]) -> list[int]:
        with self.lock:
            return [self._cells[k][0] if k in self._cells else 0 for k in keys]

    def close(self) -> None:
        pass
