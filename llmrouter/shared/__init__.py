"""State shared by sidecar replicas through Redis: exact cache, circuit breakers, latency
estimates, budget counters and which backend each conversation is on. Used when the policy
sets ``shared_state.redis_url``; the ``redis`` client is imported only then.
"""

from __future__ import annotations

from .state import CONVERSATIONS_KEPT, SharedState, open_budgets, open_shared_state

__all__ = ["CONVERSATIONS_KEPT", "SharedState", "open_budgets", "open_shared_state"]
