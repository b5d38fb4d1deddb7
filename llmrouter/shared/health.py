"""Circuit breakers whose state every replica sees: one replica's failures open the circuit
for all of them, and only one replica sends the half-open trial.

Each replica keeps a local copy of all breaker states and refreshes it from Redis at most
every ``refresh_s`` seconds (one pipelined round trip for all backends), so routing, which
asks about every backend on every request, does not pay a round trip per question. A
failure or a recovery is written through at once. If Redis is unreachable, the local copy
keeps working as a per-replica breaker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..routing.health import CircuitBreaker

__all__ = ["SharedCircuitBreaker"]

log = logging.getLogger("llmrouter.shared")

# KEYS[1]: the breaker hash. ARGV: threshold, now. Returns {failures, opened_at}.
_FAILURE = """
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local opened = tonumber(redis.call('HGET', KEYS[1], 'opened_at') or '0')
if opened > 0 or failures >= tonumber(ARGV[1]) then
  opened = tonumber(ARGV[2])
  redis.call('HSET', KEYS[1], 'opened_at', ARGV[2])
  redis.call('DEL', KEYS[2])
end
return {failures, tostring(opened)}
"""


class SharedCircuitBreaker(CircuitBreaker):
    def __init__(
        self,
        client: Any,
        prefix: str,
        backends: Sequence[str],
        failure_threshold: int = 5,
        reset_after_s: float = 30.0,
        refresh_s: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # Wall-clock time, not monotonic: replicas compare each other's timestamps.
        super().__init__(failure_threshold, reset_after_s, clock)
        self._client = client
        self._prefix = f"{prefix}:breaker:"
        self._backends = list(backends)
        self.refresh_s = refresh_s
        self._snapshot: dict[str, tuple[int, float, bool]] = {}  # failures, opened_at, trial
        self._refreshed = -1e18
        self._refresh_lock = threading.Lock()
        self._failure = client.register_script(_FAILURE)

    def _key(self, backend: str) -> str:
        return self._prefix + backend

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._refreshed < self.refresh_s:
            return
        if not self._refresh_lock.acquire(blocking=False):
            return  # another thread is refreshing; use the current copy
        try:
            pipe = self._client.pipeline(transaction=False)
            for name in self._backends:
                pipe.hmget(self._key(name), "failures", "opened_at")
                pipe.exists(self._key(name) + ":trial")
            replies = pipe.execute()
            snapshot = {}
            for index, name in enumerate(self._backends):
                failures, opened = replies[2 * index]
                snapshot[name] = (
                    int(failures or 0),
                    float(opened or 0),
                    bool(replies[2 * index + 1]),
                )
            self._snapshot = snapshot
            self._refreshed = now
        except Exception as exc:  # Redis down: keep routing on what we know
            self._refreshed = now
            log.warning("shared breaker state unavailable (%s); using the local copy", exc)
        finally:
            self._refresh_lock.release()

    def _entry(self, backend: str) -> tuple[int, float, bool]:
        self._refresh()
        return self._snapshot.get(backend, (0, 0.0, False))

    def state(self, backend: str) -> str:
        _, opened, _ = self._entry(backend)
        if not opened:
            return "closed"
        return "half-open" if self._clock() - opened >= self.reset_after_s else "open"

    def allows(self, backend: str) -> bool:
        _, opened, trial = self._entry(backend)
        if not opened:
            return True
        return self._clock() - opened >= self.reset_after_s and not trial

    def begin(self, backend: str) -> None:
        """Claim the half-open trial for this replica (SET NX), so only one is sent."""
        _, opened, _ = self._entry(backend)
        if not opened:
            return
        try:
            ttl = max(int(self.reset_after_s), 1)
            self._client.set(self._key(backend) + ":trial", "1", nx=True, ex=ttl)
            failures, opened, _ = self._snapshot.get(backend, (0, opened, False))
            self._snapshot = {**self._snapshot, backend: (failures, opened, True)}
        except Exception as exc:
            log.warning("shared breaker: could not claim the trial (%s)", exc)

    def record_success(self, backend: str) -> None:
        failures, opened, _ = self._entry(backend)
        if not failures and not opened:
            return  # nothing to reset: no round trip on the common path
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.hset(self._key(backend), mapping={"failures": 0, "opened_at": 0})
            pipe.delete(self._key(backend) + ":trial")
            pipe.execute()
        except Exception as exc:
            log.warning("shared breaker: could not record a success (%s)", exc)
        self._snapshot = {**self._snapshot, backend: (0, 0.0, False)}

    def record_failure(self, backend: str) -> None:
        key = self._key(backend)
        try:
            failures, opened = self._failure(
                keys=[key, key + ":trial"], args=[self.failure_threshold, self._clock()]
            )
            entry = (int(failures), float(opened), False)
        except Exception as exc:
            log.warning("shared breaker: could not record a failure (%s)", exc)
            current, opened_at, _ = self._snapshot.get(backend, (0, 0.0, False))
            current += 1
            if opened_at or current >= self.failure_threshold:
                opened_at = self._clock()
            entry = (current, opened_at, False)
        self._snapshot = {**self._snapshot, backend: entry}
