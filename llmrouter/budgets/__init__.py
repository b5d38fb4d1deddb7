"""Budgets: spending limits per API key, user, tag or overall, enforced before each call.

A call first reserves its worst-case cost on every budget it falls under (atomically:
all or none); after the call the reservation is settled to the actual cost. Counters
live in this process, or in Redis when replicas share state.
"""

from __future__ import annotations

from .counters import BudgetUnavailable, LocalCounters, RedisCounters
from .enforcer import Budgets, Hold, worst_case_usd

__all__ = [
    "BudgetUnavailable",
    "Budgets",
    "Hold",
    "LocalCounters",
    "RedisCounters",
    "worst_case_usd",
]
