"""Budget counters in integer nano-dollars: check-and-add across several counters atomically.

Integers, not floats, so that reserving and settling millions of tiny amounts never
drifts. ``reserve`` adds ``amount`` to every counter unless a hard limit would be
crossed, in which case nothing changes; soft limits never refuse.
"""

from __future__ import annotations

import logging
import queue
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import LLMRouterError

__all__ = [
    "NANOS",
    "BudgetUnavailable",
    "Counters",
    "LocalCounters",
    "RedisCounters",
    "ReserveResult",
]

log = logging.getLogger("llmrouter.budgets")

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


# KEYS: the counters. ARGV[1]: amount; ARGV[1+i]: limit of KEYS[i] (-1: no hard limit);
# ARGV[1+n+i]: TTL in seconds of KEYS[i] (0: none). Returns {refused index or 0, values...}.
_RESERVE = """
local n = #KEYS
local amount = tonumber(ARGV[1])
local current = {}
for i = 1, n do
  current[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
end
for i = 1, n do
  local limit = tonumber(ARGV[1 + i])
  if limit >= 0 and current[i] + amount > limit then
    local out = {i}
    for j = 1, n do out[j + 1] = current[j] end
    return out
  end
end
local out = {0}
for i = 1, n do
  out[i + 1] = redis.call('INCRBY', KEYS[i], amount)
  local ttl = tonumber(ARGV[1 + n + i])
  if ttl > 0 and redis.call('TTL', KEYS[i]) < 0 then
    redis.call('EXPIRE', KEYS[i], ttl)
  end
end
return out
"""


class RedisCounters:
    """Counters shared by replicas: one Lua script checks and reserves atomically (one round
    trip); settlements go through a background thread, off the request path.

    A settlement can only lower a counter towards the true spend (the reservation was the
    worst case), so applying it a moment later never lets a hard limit be crossed.
    """

    def __init__(self, client: Any, url: str | None = None) -> None:
        self._client = client
        self._script = client.register_script(_RESERVE)
        self._url = url  # for the asyncio client of each event loop (areserve)
        # One asyncio client per event loop; weak keys, so a finished loop's client goes too.
        self._async: weakref.WeakKeyDictionary[Any, tuple[Any, Any]] = weakref.WeakKeyDictionary()
        self._pending: queue.Queue[tuple[tuple[str, ...], int] | None] = queue.Queue()
        self._thread = threading.Thread(
            target=self._settle_loop, name="llmrouter-budget-settle", daemon=True
        )
        self._thread.start()

    def reserve(
        self, keys: Sequence[str], amount: int, limits: Sequence[int | None], ttls: Sequence[int]
    ) -> ReserveResult:
        args = [amount, *(-1 if limit is None else limit for limit in limits), *ttls]
        try:
            out = [int(v) for v in self._script(keys=list(keys), args=args)]
        except Exception as exc:  # redis.RedisError, without importing redis here
            log.error("budgets: Redis unreachable, refusing the call: %s", exc)
            raise BudgetUnavailable(
                "budget counters are unavailable (Redis unreachable); the call was not made"
            ) from None
        refused = out[0] - 1 if out[0] else None
        return ReserveResult(refused, tuple(out[1:]))

    async def areserve(
        self, keys: Sequence[str], amount: int, limits: Sequence[int | None], ttls: Sequence[int]
    ) -> ReserveResult:
        """The same atomic script over redis.asyncio: the event loop keeps serving other
        requests during the round trip (one client per event loop, made on first use)."""
        if self._url is None:
            return self.reserve(keys, amount, limits, ttls)
        import asyncio

        loop = asyncio.get_running_loop()
        made = self._async.get(loop)
        if made is None:
            import redis.asyncio

            client = redis.asyncio.Redis.from_url(
                self._url, socket_timeout=5, socket_connect_timeout=5
            )
            made = self._async[loop] = (client, client.register_script(_RESERVE))
        args = [amount, *(-1 if limit is None else limit for limit in limits), *ttls]
        try:
            out = [int(v) for v in await made[1](keys=list(keys), args=args)]
        except Exception as exc:
            log.error("budgets: Redis unreachable, refusing the call: %s", exc)
            raise BudgetUnavailable(
                "budget counters are unavailable (Redis unreachable); the call was not made"
            ) from None
        refused = out[0] - 1 if out[0] else None
        return ReserveResult(refused, tuple(out[1:]))

    def adjust(self, keys: Sequence[str], delta: int) -> None:
        if delta != 0:
            self._pending.put((tuple(keys), delta))

    def flush(self) -> None:
        """Wait until every settlement is applied (tests, shutdown)."""
        self._pending.join()

    def values(self, keys: Sequence[str]) -> list[int]:
        self.flush()
        found = self._client.mget(list(keys)) if keys else []
        return [int(v) if v is not None else 0 for v in found]

    def close(self) -> None:
        self._pending.put(None)
        self._thread.join(timeout=10)

    def _settle_loop(self) -> None:
        while True:
            item = self._pending.get()
            batch = [item]
            while len(batch) < 256:
                try:
                    batch.append(self._pending.get_nowait())
                except queue.Empty:
                    break
            try:
                pipe = self._client.pipeline(transaction=False)
                for entry in batch:
                    if entry is not None:
                        keys, delta = entry
                        for key in keys:
                            pipe.incrby(key, delta)
                pipe.execute()
            except Exception:  # Redis down: counters stay at the (higher) reserved amount
                log.exception("budgets: could not settle %d reservations in Redis", len(batch))
            finally:
                for _ in batch:
                    self._pending.task_done()
            if any(entry is None for entry in batch):
                return
