"""Budget leases: a replica draws blocks of budget from Redis and spends them locally.

One atomic Lua reserve per request costs the sidecar about a sixth of its per-request CPU
(the round trip on the event loop). With leases, a replica keeps a *pool* per counter:
budget already added to the Redis counter (so every replica's limit checks count it) that
this replica has not spent yet. A call whose worst case fits in the pools of all its hard
counters takes it from them in memory; a background thread refills pools before they run
dry, one pipelined round trip every ``SETTLE_S`` for all counters together.

Two levels, so that a replica that dies strands as little as possible and never makes a
hard limit crossable:

- the **pool** is already in the counter (``{key}``): spendable in memory at once, never
  given back by anyone but its replica (on refill, shrink or shutdown). A crashed
  replica's pool stays counted until the period ends, as an in-flight reservation does.
- the **lease** is the budget a replica holds *in reserve* for its next refills, in the
  hash ``{key}:lease`` (field: replica id, value: ``amount:expires_ms``). Every limit
  check counts the live leases of all replicas; no replica can spend a lease before a
  refill has moved it into the counter. A lease not renewed within ``LEASE_TTL_S`` (its
  replica died) is deleted by the next script that reads the hash: reclaimed.

Hard guarantee: a refill or a per-request reserve moves budget into the counter only
while ``counter + live leases ≤ limit``, and a replica spends only what is in its pools,
so total spend ≤ limit, whatever replicas die or how the calls interleave (as long as each
call costs at most its worst case, exactly as without leases).

Pools and leases are sized from demand (a miss doubles the target; a pool that stays
mostly unused halves it) and capped at ``1/ROOM_SHARE`` of the room left under the limit,
so near the limit they shrink, and below ``MIN_CALLS`` calls' worth they are dropped:
calls then reserve one by one, exactly as without leases.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .counters import Cell

__all__ = ["LEASE_SCRIPT", "LEASE_SHA", "LEASE_TTL_S", "Pool", "Pools", "lease_key"]

log = logging.getLogger("llmrouter.budgets")

LEASE_TTL_S = 10.0  # a lease its replica stopped renewing is reclaimed after this
ROOM_SHARE = 16  # a replica's pool and lease together hold at most 1/16 of the room left
MIN_CALLS = 4  # a pool smaller than this many calls' worst case is not worth keeping
_START_CALLS = 16  # a first pool holds this many of the call that asked for it
_IDLE_SHRINK = 20  # sync rounds (~1 s) of little use before a pool is halved
_LARGEST_DECAY = 100  # sync rounds (~5 s) without a miss that large: ``Pool.largest`` halves
_FORGET_S = 600.0  # a counter untouched this long is given back and forgotten
_CLOSED = -(1 << 62)  # the threshold of a pool that takes nothing (the replica closed)

# KEYS: per counter i, its counter (2i-1) and its lease hash (2i). ARGV[1]: this replica's
# id; ARGV[2]: lease TTL in ms; ARGV[3]: '1' for all-or-nothing (a call's reserve); then
# per counter five numbers: limit (-1: soft), want (to add to the counter; negative gives
# back), must (added whatever the limit: spent beyond the pool), lease (to hold afterwards;
# -1: keep what is held, within the room), counter TTL in s (0: none).
# Per counter, the room is limit - counter - other replicas' live leases: this replica's
# lease is part of it. Returns {0 or refused index, then per counter: added, lease held,
# counter + all live leases}; a refusal changes nothing.
LEASE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local me, ttl, strict = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1'
local n = #KEYS / 2
local base, others, mine, limit, add = {}, {}, {}, {}, {}
for i = 1, n do
  local a = 3 + (i - 1) * 5
  limit[i] = tonumber(ARGV[a + 1])
  local want, must = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  base[i] = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')
  local total, own = 0, 0
  if limit[i] >= 0 then
    local all = redis.call('HGETALL', KEYS[2 * i])
    for j = 1, #all, 2 do
      local amount, expires = string.match(all[j + 1], '^(%d+):(%d+)$')
      if amount == nil or tonumber(expires) <= now then
        redis.call('HDEL', KEYS[2 * i], all[j])
      elseif all[j] == me then
        own = tonumber(amount)
      else
        total = total + tonumber(amount)
      end
    end
  end
  others[i], mine[i] = total, own
  local g = want
  if limit[i] >= 0 and want > 0 then
    local room = limit[i] - base[i] - total
    if g > room then g = room end
    if g < 0 then g = 0 end
  end
  if must > 0 and g < must then g = must end
  if strict and g < want then
    local out = {i}
    for j = 1, i do out[#out + 1] = base[j] + others[j] + mine[j] end
    for j = i + 1, n do out[#out + 1] = 0 end
    return out
  end
  add[i] = g
end
local out = {0}
for i = 1, n do
  local a = 3 + (i - 1) * 5
  local key, hash = KEYS[2 * i - 1], KEYS[2 * i]
  if add[i] ~= 0 then
    base[i] = redis.call('INCRBY', key, add[i])
    local keep = tonumber(ARGV[a + 5])
    if keep > 0 and redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, keep) end
  end
  local lease = 0
  if limit[i] >= 0 then
    lease = tonumber(ARGV[a + 4])
    if lease < 0 then lease = mine[i] end
    local room = limit[i] - base[i] - others[i]
    if lease > room then lease = room end
    if lease > 0 then
      redis.call('HSET', hash, me, string.format('%d:%d', lease, now + ttl))
      redis.call('PEXPIRE', hash, ttl)
    else
      lease = 0
      if mine[i] > 0 then redis.call('HDEL', hash, me) end
    end
  end
  out[#out + 1] = add[i]
  out[#out + 1] = lease
  out[#out + 1] = base[i] + others[i] + lease
end
return out
"""
LEASE_SHA = hashlib.sha1(LEASE_SCRIPT.encode()).hexdigest()


def lease_key(key: str) -> str:
    return f"{key}:lease"


@dataclass(eq=False)
class Pool:
    """One counter as this replica sees it. ``cell[0]`` is what this replica owes the
    counter: a call adds its reservation, a settlement the difference, a refill subtracts
    what it moved in. So for a hard counter ``-cell[0]`` is the pool (negative: spent
    beyond it, to be added whatever the limit); for a soft one it is the increase not sent
    yet. ``cell[1]``: a hard pool takes a call while ``cell[0] + amount <= cell[1]`` (0, or
    ``_CLOSED``); a soft counter warns once ``cell[0] > cell[1]`` (its room under the soft
    limit as last seen)."""

    key: str
    limit: int  # nano-dollars
    hard: bool
    ttl: int  # the counter's expiry in s (0: none)
    cell: Cell = field(default_factory=lambda: [0, 0])
    target: int = 0  # the pool to keep (hard); 0: calls reserve one by one
    lease: int = 0  # held in reserve in Redis
    largest: int = 0  # the largest call that found the pool short (decays without misses)
    missed: bool = False
    calm: int = 0  # sync rounds since a miss nearly as large as ``largest``
    quiet: int = 0  # sync rounds the pool was barely used
    after_refill: int = 0  # cell[0] right after the last refill
    renewed: float = 0.0
    touched: float = field(default_factory=time.monotonic)
    seen: int = 0  # counter + live leases, as the last script or INCRBY saw it


class Pools:
    """This replica's pools, by counter key; the request path reads and changes their cells
    under ``lock``; :meth:`sync` (the settling thread) refills, sends and renews."""

    def __init__(self, replica: str, ttl_s: float = LEASE_TTL_S) -> None:
        self.replica = replica
        self.ttl_s = ttl_s  # leases not renewed within this are reclaimed
        self.lock = threading.Lock()
        self._pools: dict[str, Pool] = {}

    def cells(
        self,
        keys: Sequence[str],
        limits: Sequence[int],
        hard: Sequence[bool],
        ttls: Sequence[int],
    ) -> tuple[Cell, ...]:
        """The cells of ``keys`` (registered when new), for the request path."""
        now = time.monotonic()
        found = []
        with self.lock:
            for key, limit, is_hard, ttl in zip(keys, limits, hard, ttls, strict=True):
                pool = self._pools.get(key)
                if pool is None:
                    pool = self._pools[key] = Pool(key, limit, is_hard, ttl)
                    if not is_hard:
                        pool.cell[1] = limit  # until the first sync reads the counter
                pool.touched = now
                found.append(pool.cell)
        return tuple(found)

    def missed(self, keys: Sequence[str], amount: int) -> None:
        """A call found a pool too small (it reserves on its own): grow them next sync."""
        with self.lock:
            for key in keys:
                pool = self._pools.get(key)
                if pool is not None and pool.hard:
                    pool.missed = True
                    if amount > pool.largest:
                        pool.largest = amount
                    if amount * 2 > pool.largest:
                        pool.calm = 0  # as large as the largest, nearly: no decay yet

    def owed(self, key: str) -> int:
        """What this replica owes ``key`` (see :class:`Pool`): added to the counter's value
        gives the replica's best reading of the spend."""
        pool = self._pools.get(key)
        return pool.cell[0] if pool is not None else 0

    # --- the settling thread --------------------------------------------------------------------

    def plan(self, closing: bool = False) -> list[tuple[Pool, int, int, int]]:
        """What to send in this round, as (pool, want, must, lease) for :data:`LEASE_SCRIPT`:
        soft counters' increases, hard pools' refills, shrinks, renewals and debts (and on
        closing, or for a counter long untouched, everything given back)."""
        now = time.monotonic()
        scripts: list[tuple[Pool, int, int, int]] = []
        with self.lock:
            for key, pool in list(self._pools.items()):
                owed = pool.cell[0]
                forget = closing or now - pool.touched > _FORGET_S
                if not pool.hard:
                    if owed or not pool.renewed:  # an increase, or a first read
                        scripts.append((pool, owed, owed, 0))
                        pool.renewed = now
                    if forget:
                        del self._pools[key]
                    continue
                if forget:
                    pool.cell[1] = _CLOSED  # no more calls from the pool
                    pool.target = 0
                    if owed < 0:
                        pool.cell[0] = 0  # given back (as below: never twice)
                    if owed or pool.lease:
                        scripts.append((pool, owed, max(owed, 0), 0))
                    del self._pools[key]
                    continue
                self._size(pool)
                balance = -owed
                want = 0
                # refill when half empty; give the excess back when the target shrank
                if (pool.target and balance < pool.target // 2) or balance > pool.target:
                    want = pool.target - balance
                if owed > 0 and want < owed:
                    want = owed
                renew = pool.lease > 0 and now - pool.renewed > self.ttl_s / 3
                if want < 0:
                    # A give-back leaves the pool now, under the lock: calls cannot spend it
                    # while the script is in flight, and whatever becomes of the script (run,
                    # failed, or run with its reply lost) it is never given back twice. If
                    # the script did not run, it stays counted in Redis: the refusing side.
                    pool.cell[0] -= want
                if want or renew or pool.lease > pool.target or pool.lease < pool.target // 2:
                    scripts.append((pool, want, max(owed, 0), pool.target))
                    pool.renewed = now
        return scripts

    def _size(self, pool: Pool) -> None:
        """A miss doubles the pool; a pool barely used for a second is halved; never more
        than a share of the room left, never less than a few calls."""
        used = pool.cell[0] - pool.after_refill
        # One large call must not keep the pool small (or dropped) for good: ``largest``
        # halves every ``_LARGEST_DECAY`` rounds without a miss nearly as large (such a call
        # that comes again misses, reserves alone and sets it back).
        pool.calm += 1
        if pool.calm >= _LARGEST_DECAY:
            pool.largest //= 2
            pool.calm = 0
        if pool.missed:
            pool.target = max(pool.target * 2, pool.largest * _START_CALLS)
            pool.missed = False
            pool.quiet = 0
        elif pool.target and used < pool.target // 8:
            pool.quiet += 1
            if pool.quiet >= _IDLE_SHRINK:
                pool.target //= 2
                pool.quiet = 0
        else:
            pool.quiet = 0
        room = pool.limit - pool.seen + pool.lease - pool.cell[0]  # ours included
        cap = max(room, 0) // ROOM_SHARE // 2  # the pool, and as much again leased
        if pool.target > cap:
            pool.target = cap
        if pool.target < pool.largest * MIN_CALLS:
            pool.target = 0

    def applied(self, scripts: list[tuple[Pool, int, int, int]], reply: Sequence[Any]) -> None:
        """Take what the script moved into each counter off its cell (calls kept adding to
        the cells meanwhile), and note what it saw. A hard pool's give-back already left its
        cell in :meth:`plan`."""
        with self.lock:
            for index, (pool, want, _, _) in enumerate(scripts):
                at = 1 + 3 * index
                added, lease, seen = int(reply[at]), int(reply[at + 1]), int(reply[at + 2])
                if pool.hard and want < 0:
                    added -= want  # a give-back (want < 0) is added in full: now 0
                pool.cell[0] -= added
                pool.lease = lease
                pool.seen = seen
                if pool.hard:
                    pool.after_refill = pool.cell[0]
                else:
                    pool.cell[1] = pool.limit - seen  # room under the soft limit
