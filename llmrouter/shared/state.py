"""Build the shared pieces once per Router, from the policy."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..policy.schema import Policy

if TYPE_CHECKING:
    from ..budgets import Budgets
    from .cache import RedisExactCache
    from .conversations import SharedConversationMemory
    from .health import SharedCircuitBreaker
    from .latency import SharedLatencyTracker

__all__ = ["CONVERSATIONS_KEPT", "SharedState", "open_budgets", "open_shared_state"]

# Conversations each replica keeps in memory (LRU); the shared ones live in Redis.
CONVERSATIONS_KEPT = 10_000


@dataclass
class SharedState:
    client: Any
    prefix: str
    replica: str  # this replica's id in Redis (latency estimates, budget leases)
    cache: RedisExactCache | None
    health: SharedCircuitBreaker
    latency: SharedLatencyTracker
    conversations: SharedConversationMemory

    def close(self) -> None:
        self.latency.stop()
        self.conversations.close()
        if self.cache is not None:
            self.cache.close()
        self.client.close()


def _client(url: str) -> Any:
    import redis  # only when a policy asks for shared state

    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def open_shared_state(policy: Policy) -> SharedState | None:
    """The Redis-backed cache, breakers and latency of a policy; None without ``redis_url``."""
    config = policy.shared_state
    if config.redis_url is None:
        return None
    from .cache import RedisExactCache
    from .conversations import SharedConversationMemory
    from .health import SharedCircuitBreaker
    from .latency import SharedLatencyTracker

    client = _client(config.redis_url)
    client.ping()  # fail at start, not on the first request
    prefix = config.key_prefix
    breaker = policy.fallback.circuit_breaker
    replica = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    cache = policy.cache
    return SharedState(
        client=client,
        prefix=prefix,
        replica=replica,
        cache=RedisExactCache(client, prefix, cache.ttl_s) if cache.enabled else None,
        health=SharedCircuitBreaker(
            client,
            prefix,
            [b.name for b in policy.backends],
            breaker.failure_threshold,
            breaker.reset_after_s,
            refresh_s=config.breaker_refresh_s,
        ),
        latency=SharedLatencyTracker(
            client, prefix, replica, [b.name for b in policy.backends], config.latency_sync_s
        ),
        conversations=SharedConversationMemory(
            client, prefix, config.conversation_ttl_s, CONVERSATIONS_KEPT
        ),
    )


def open_budgets(policy: Policy, shared: SharedState | None) -> Budgets | None:
    """The policy's budgets on Redis counters when shared, else in-process ones."""
    if not policy.budgets:
        return None
    from ..budgets import Budgets, LocalCounters

    if shared is None:  # in-process counters; redis is not even imported
        return Budgets(policy.budgets, LocalCounters(), policy.shared_state.key_prefix)
    from ..budgets.redis_counters import RedisCounters

    config = policy.shared_state
    counters = RedisCounters(
        shared.client, config.redis_url, leases=config.budget_leases, replica=shared.replica
    )
    return Budgets(policy.budgets, counters, shared.prefix)
