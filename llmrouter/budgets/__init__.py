"""Budgets: spending limits per API key, user, tag or overall, enforced before each call.

A call first reserves its worst-case cost on every budget it falls under (atomically:
all or none); after the call the reservation is settled to the actual cost. Counters
live in this process, or in Redis when replicas share state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .counters import BudgetUnavailable, LocalCounters
from .enforcer import Budgets, Hold, worst_case_usd

if TYPE_CHECKING:
    from .redis_counters import RedisCounters

__all__ = [
    "BudgetUnavailable",
    "Budgets",
    "Hold",
    "LocalCounters",
    "RedisCounters",
    "worst_case_usd",
]


def __getattr__(name: str) -> object:
    if name == "RedisCounters":  # redis and hiredis only when a policy shares state
        from .redis_counters import RedisCounters

        return RedisCounters
    raise AttributeError(f"module 'llmrouter.budgets' has no attribute {name!r}")
