"""Budget counters in Redis, shared by sidecar replicas.

The reserve is one Lua script (check every hard limit, then add to every counter, or do
nothing), so concurrent calls on any number of replicas can never together cross a hard
limit. redis (and hiredis) are imported only when a policy sets ``shared_state.redis_url``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Sequence
from typing import Any

import hiredis
import redis.exceptions

from ..shared.pipelined import PipelinedRedis, RedisUnavailable, supports
from ..write_behind import RowBuffer
from .counters import BudgetUnavailable, Cell, ReserveResult
from .leases import LEASE_SCRIPT, LEASE_SHA, Pools, lease_key

__all__ = ["SETTLE_S", "RedisCounters"]

log = logging.getLogger("llmrouter.budgets")

SETTLE_S = 0.05  # how long a settlement may wait to be sent with others

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
_RESERVE_SHA = hashlib.sha1(_RESERVE.encode()).hexdigest()


class RedisCounters:
    """Counters shared by replicas: one Lua script checks and reserves atomically (one round
    trip); settlements are buffered and applied by a background thread, off the request path.

    A settlement nearly always lowers a counter towards the true spend (the reservation
    was the worst case), so applying it a moment later errs on the side of refusing. It
    raises the counter only when a call cost more than its worst case (the provider
    counted more tokens than the estimate allowed for); that overshoot reaches the other
    replicas with the next batch (at most ``settle_s`` plus one round trip later), and a
    batch Redis could not take keeps its increases for the next try (its decreases are
    dropped: the counters then err on the side of refusing). Settlements are summed per
    counter before they are sent, so a busy replica sends one INCRBY per counter every
    ``settle_s``, not one per call.

    ``client`` must not retry commands on its own: a script or INCRBY re-sent after a
    timeout may run twice (a pool given back twice could let a hard limit be crossed). In
    redis-py 8.1, ``redis.Redis.from_url`` (what :mod:`llmrouter.shared.state` uses) does
    not retry; ``redis.Redis(host=...)`` retries 10 times unless given
    ``retry=Retry(NoBackoff(), 0)``. A client that retries is logged at start.
    """

    def __init__(
        self,
        client: Any,
        url: str | None = None,
        settle_s: float = SETTLE_S,
        *,
        leases: bool = False,
        replica: str | None = None,
    ) -> None:
        self._client = client
        retry = client.get_retry() if hasattr(client, "get_retry") else None
        retries = getattr(retry, "get_retries", lambda: 0)()
        if retries:
            log.warning(
                "budgets: the Redis client retries commands (%d times): a budget script "
                "re-sent after a timeout may run twice; give it no retries",
                retries,
            )
        self._script = client.register_script(_RESERVE)
        self._lease_script = client.register_script(LEASE_SCRIPT)
        # With leases (see :mod:`.leases`), calls spend from in-memory pools refilled by
        # the settling thread, and reserve on their own only when a pool runs short.
        self.pools = Pools(replica or uuid.uuid4().hex) if leases else None
        self._sync_logged = 0.0  # when a failed refill was last logged
        self._url = url  # for the asyncio connection of each event loop (areserve)
        # One asyncio connection per event loop; weak keys, so a finished loop's goes too.
        self._async: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        # The last loop's connection, found without a WeakKeyDictionary lookup (a Python
        # method making a weak reference) per call.
        self._last: tuple[weakref.ref[Any], Any] | None = None
        # The script's limit and TTL arguments of each budget combination, made once.
        self._tails: dict[int, tuple[Sequence[int | None], Sequence[int], tuple[int, ...]]] = {}
        self._settlements = RowBuffer(linger_s=settle_s, max_rows=100_000)
        self._thread = threading.Thread(
            target=self._settle_loop, name="llmrouter-budget-settle", daemon=True
        )
        self._thread.start()

    def reserve(
        self, keys: Sequence[str], amount: int, limits: Sequence[int | None], ttls: Sequence[int]
    ) -> ReserveResult:
        try:
            if self.pools is not None:
                keys, args = self._lease_args(keys, amount, limits, ttls)
                return _lease_result(self._lease_script(keys=keys, args=args))
            out = self._script(keys=list(keys), args=_script_args(amount, limits, ttls))
        except _REDIS_ERRORS as exc:
            raise _unavailable(exc) from None
        return _result(out)

    def _lease_args(
        self, keys: Sequence[str], amount: int, limits: Sequence[int | None], ttls: Sequence[int]
    ) -> tuple[list[str], list[Any]]:
        """One call's reserve as :data:`~.leases.LEASE_SCRIPT` takes it: all or nothing,
        this replica's own lease counted as room it may use."""
        assert self.pools is not None
        script_keys: list[str] = []
        args: list[Any] = [self.pools.replica, int(self.pools.ttl_s * 1000), 1]
        for key, limit, ttl in zip(keys, limits, ttls, strict=True):
            script_keys += (key, lease_key(key))
            args += (-1 if limit is None else limit, amount, 0, -1, ttl)
        return script_keys, args

    async def areserve(
        self, keys: Sequence[str], amount: int, limits: Sequence[int | None], ttls: Sequence[int]
    ) -> ReserveResult:
        """The same atomic script, without blocking the event loop during the round trip:
        over a pipelined connection per event loop (:mod:`llmrouter.shared.pipelined`), or
        redis-py's asyncio client for URLs it does not handle (TLS)."""
        if self._url is None:
            return self.reserve(keys, amount, limits, ttls)
        connection = self._connection()
        if self.pools is not None:
            try:
                if isinstance(connection, PipelinedRedis):
                    out = await self._evalsha_lease(connection, keys, amount, limits, ttls)
                else:
                    script_keys, args = self._lease_args(keys, amount, limits, ttls)
                    out = await connection(keys=script_keys, args=args)
            except _REDIS_ERRORS as exc:
                raise _unavailable(exc) from None
            return _lease_result(out)
        tail = self._tails.get(id(limits))
        if tail is None or tail[0] is not limits or tail[1] is not ttls:
            tail = (limits, ttls, (*(-1 if limit is None else limit for limit in limits), *ttls))
            if len(self._tails) >= 4096:
                self._tails.clear()
            self._tails[id(limits)] = tail
        try:
            if isinstance(connection, PipelinedRedis):
                out = await self._evalsha(connection, keys, amount, tail[2])
            else:
                out = await connection(keys=list(keys), args=[amount, *tail[2]])
        except _REDIS_ERRORS as exc:
            raise _unavailable(exc) from None
        return _result(out)

    def _connection(self) -> Any:
        """This event loop's asyncio connection (made on first use)."""
        loop = asyncio.get_running_loop()
        last = self._last
        if last is not None and last[0]() is loop:
            return last[1]
        connection = self._async.get(loop)
        if connection is None:
            connection = self._connect_async()
        self._last = (weakref.ref(loop), connection)
        return connection

    async def _evalsha_lease(
        self,
        connection: PipelinedRedis,
        keys: Sequence[str],
        amount: int,
        limits: Sequence[int | None],
        ttls: Sequence[int],
    ) -> Any:
        script_keys, args = self._lease_args(keys, amount, limits, ttls)

        def orphan(reply: Any) -> None:
            """The caller went away while Redis reserved: give the reservation back."""
            if isinstance(reply, list) and reply and reply[0] == 0:
                self.adjust(keys, -amount)

        count = len(script_keys)
        reply = await connection.execute(
            "EVALSHA", LEASE_SHA, count, *script_keys, *args, orphan=orphan
        )
        if isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT"):
            reply = await connection.execute(
                "EVAL", LEASE_SCRIPT, count, *script_keys, *args, orphan=orphan
            )
        if isinstance(reply, hiredis.ReplyError):
            raise reply
        return reply

    def cells(
        self, keys: Sequence[str], limits: Sequence[int], hard: Sequence[bool], ttls: Sequence[int]
    ) -> tuple[Cell, ...] | None:
        """The pools' cells of a combination of counters (None without leases)."""
        if self.pools is None:
            return None
        return self.pools.cells(keys, limits, hard, ttls)

    async def _evalsha(
        self, connection: PipelinedRedis, keys: Sequence[str], amount: int, tail: tuple[int, ...]
    ) -> Any:
        def orphan(reply: Any) -> None:
            """The caller went away while Redis reserved: give the reservation back."""
            if isinstance(reply, list) and reply and reply[0] == 0:
                self.adjust(keys, -amount)

        reply = await connection.execute(
            "EVALSHA", _RESERVE_SHA, len(keys), *keys, amount, *tail, orphan=orphan
        )
        if isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT"):
            reply = await connection.execute(
                "EVAL", _RESERVE, len(keys), *keys, amount, *tail, orphan=orphan
            )
        if isinstance(reply, hiredis.ReplyError):
            raise reply
        return reply

    def _connect_async(self) -> Any:
        assert self._url is not None
        connection: Any
        if supports(self._url):
            connection = PipelinedRedis(self._url, timeout_s=5)
        else:
            import redis.asyncio

            client = redis.asyncio.Redis.from_url(
                self._url, socket_timeout=5, socket_connect_timeout=5
            )
            connection = client.register_script(_RESERVE if self.pools is None else LEASE_SCRIPT)
        self._async[asyncio.get_running_loop()] = connection
        return connection

    def adjust(self, keys: Sequence[str], delta: int) -> None:
        if delta != 0:
            # A tuple (what Budgets passes): the settling thread sums per keys tuple.
            self._settlements.put((keys if type(keys) is tuple else tuple(keys), delta))

    def flush(self) -> None:
        """Wait until every settlement made so far is applied (tests, reads, shutdown)."""
        self._settlements.flush()

    def values(self, keys: Sequence[str]) -> list[int]:
        """The counters as this replica knows them: Redis's values, less this replica's
        unspent pools, plus what it has not sent yet."""
        self.flush()
        found = self._client.mget(list(keys)) if keys else []
        values = [int(v) if v is not None else 0 for v in found]
        if self.pools is not None:
            values = [v + self.pools.owed(k) for k, v in zip(keys, values, strict=True)]
        return values

    def close(self) -> None:
        """Apply the settlements still buffered, give the pools and leases back, stop the
        thread, drop the connections."""
        if self._thread.is_alive():
            self._settlements.stop().done.wait(timeout=10)
            self._thread.join(timeout=10)
        if self.pools is not None:
            self._sync_pools(closing=True)
        for loop, connection in list(self._async.items()):
            if isinstance(connection, PipelinedRedis) and not loop.is_closed():
                loop.call_soon_threadsafe(connection.close)

    def _settle_loop(self) -> None:
        while True:
            entries, markers = self._settlements.take()
            try:
                if entries:
                    self._settle(entries)
                if self.pools is not None:
                    self._sync_pools()
            except Exception:  # a bug: logged, and the thread lives on (flush() must return)
                log.exception("budgets: %d settlements could not be applied", len(entries))
            if self._settlements.settle(markers):
                return

    def _settle(self, entries: list[tuple[Sequence[str], int]]) -> None:
        # Calls of one caller share one keys tuple: sum per tuple first (one dict update per
        # call), then per counter.
        by_keys: dict[Sequence[str], int] = {}
        for keys, delta in entries:
            by_keys[keys] = by_keys.get(keys, 0) + delta
        totals: dict[str, int] = {}
        for keys, delta in by_keys.items():
            for key in keys:
                totals[key] = totals.get(key, 0) + delta
        try:
            pipe = self._client.pipeline(transaction=False)
            for key, delta in totals.items():
                if delta:
                    pipe.incrby(key, delta)
            pipe.execute()
        except _REDIS_ERRORS as exc:
            # Some INCRBYs may have landed. Re-sending an increase can only over-count
            # (refusing early); losing one could let a hard limit be crossed. Decreases are
            # dropped: the counters stay at the higher, reserved amounts.
            increases = {key: delta for key, delta in totals.items() if delta > 0}
            for key, delta in increases.items():
                self._settlements.put(((key,), delta))
            log.error(
                "budgets: could not settle %d reservations in Redis (%s: %s); %d increases "
                "kept for the next try",
                len(entries),
                type(exc).__name__,
                exc,
                len(increases),
            )

    def _sync_pools(self, closing: bool = False) -> None:
        """(Settling thread) one script for every pool that needs a refill, a renewal or
        giving back, and every soft counter's increases: one round trip."""
        assert self.pools is not None
        scripts = self.pools.plan(closing)
        if not scripts:
            return
        keys: list[str] = []
        args: list[Any] = [self.pools.replica, int(self.pools.ttl_s * 1000), 0]
        for pool, want, must, lease in scripts:
            keys += (pool.key, lease_key(pool.key))
            args += (pool.limit if pool.hard else -1, want, must, lease, pool.ttl)
        try:
            reply = self._lease_script(keys=keys, args=args)
        except _REDIS_ERRORS as exc:
            # Taken as nothing moved, except for give-backs: the pools drain and calls then
            # reserve alone (refused while Redis is down). Had the script run and only its
            # reply been lost, a refill or a debt is added again next time (counters too
            # high: the refusing side), and a give-back is not sent again (it left its pool
            # in plan()): if the script did not run, the budget it returned stays counted in
            # Redis, also on the refusing side. Never sent twice, and never retried by the
            # client (see the class docstring): giving back twice could cross a hard limit.
            now = time.monotonic()
            if now - self._sync_logged >= 60:  # every 50 ms while Redis is down: once a minute
                self._sync_logged = now
                log.error(
                    "budgets: could not refill %d budget pools in Redis (%s: %s)",
                    len(scripts),
                    type(exc).__name__,
                    exc,
                )
            return
        self._sync_logged = 0.0
        self.pools.applied(scripts, reply)


def _lease_result(out: Any) -> ReserveResult:
    """A reserve's reply from the lease script: refused (the index, then the values) or
    granted (then per counter: added, lease, value)."""
    first = int(out[0])
    if first:
        return ReserveResult(first - 1, tuple(map(int, out[1:])))
    return ReserveResult(None, tuple(int(v) for v in out[3::3]))


def _script_args(amount: int, limits: Sequence[int | None], ttls: Sequence[int]) -> list[int]:
    return [amount, *(-1 if limit is None else limit for limit in limits), *ttls]


def _result(out: Any) -> ReserveResult:
    first = int(out[0])
    return ReserveResult(first - 1 if first else None, tuple(map(int, out[1:])))


# What a Redis call can fail with: connection loss or timeout (ours, redis-py's, the
# OS's) and error replies. Anything else is a bug and propagates as one.
_REDIS_ERRORS: tuple[type[Exception], ...] = (
    RedisUnavailable,
    hiredis.ReplyError,
    redis.exceptions.RedisError,
    OSError,
)


def _unavailable(exc: Exception) -> BudgetUnavailable:
    log.error("budgets: Redis failed (%s: %s), refusing the call", type(exc).__name__, exc)
    return BudgetUnavailable(
        "budget counters are unavailable (Redis failed; see the server log); the call was not made"
    )
