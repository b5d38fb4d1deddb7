"""Which budgets a call falls under, its worst-case cost, and reserve-then-settle."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..errors import BudgetExceeded
from ..policy.schema import BackendConfig, BudgetConfig
from .counters import NANOS, Cell, Counters, LocalCounters, ReserveResult
from .leases import Pools

__all__ = ["Budgets", "Hold", "worst_case_usd"]

log = logging.getLogger("llmrouter.budgets")

_ceil = math.ceil
_TTL_S = {"day": 3 * 86_400, "month": 40 * 86_400, "total": 0}
_APPLIED_CACHE_SIZE = 4096  # distinct callers (key, user, tags) remembered per second
# The router counts prompt tokens with tiktoken; a provider's tokenizer may count a few
# more, so the worst case pads the estimate rather than risk under-reserving.
_PROMPT_MARGIN_PERCENT = 10
_PROMPT_OVERHEAD = 16


def worst_case_usd(
    prompt_tokens: int, params: Mapping[str, Any], backends: Sequence[BackendConfig]
) -> float:
    """The most a call can cost on any backend it may reach (the choice or a fallback).

    Output is ``max_tokens`` (× ``n``) when the caller set it, else the backend's maximum
    output, else what is left of its context window. Runs on every reserved call, so the
    backends' fields are read from the models' ``__dict__`` (where pydantic keeps them): a
    pydantic attribute read costs about ten times a dict lookup.
    """
    margin = -(-prompt_tokens * _PROMPT_MARGIN_PERCENT // 100)  # ceiling, in integers
    prompt = prompt_tokens + margin + _PROMPT_OVERHEAD
    asked = None
    choices = 1
    if params:  # most calls set none of these
        asked = params.get("max_tokens") or params.get("max_completion_tokens")
        if not isinstance(asked, int) or asked <= 0:
            asked = None
        n = params.get("n")
        if isinstance(n, int) and n > 1:
            choices = n
    worst = 0.0
    for backend in backends:
        try:
            fields = backend.__dict__
            rates = fields["price"].__dict__
            window = fields["context_window"]
            limit = fields["max_output_tokens"]
            input_rate = rates["input_per_million"]
            write_rate = rates["cache_write_per_million"]
            output_rate = rates["output_per_million"]
            reasoning_rate = rates["reasoning_per_million"]
        except (AttributeError, KeyError):  # no price yet (resolved_price says so), or
            price = backend.resolved_price  # a model that keeps its fields elsewhere
            window = backend.context_window
            limit = backend.max_output_tokens
            input_rate = price.input_per_million
            write_rate = price.cache_write_per_million
            output_rate = price.output_per_million
            reasoning_rate = price.reasoning_per_million
        if asked is not None:
            output = asked
        elif window:
            room = window - prompt_tokens if window > prompt_tokens else 1
            output = room if limit is None or limit > room else limit
        else:
            output = 4096 if limit is None else limit
        if write_rate is not None and write_rate > input_rate:
            input_rate = write_rate
        if reasoning_rate is not None and reasoning_rate > output_rate:
            output_rate = reasoning_rate
        cost = (prompt * input_rate + output * choices * output_rate) / 1_000_000
        if cost > worst:
            worst = cost
    return worst


@dataclass(slots=True)
class Hold:
    """A reservation: which counters, how much, and any soft-limit warning for the caller."""

    keys: tuple[str, ...]
    reserved: int  # nano-dollars
    warning: str | None = None
    cells: tuple[Cell, ...] | None = None  # in-process counters: settled on directly


def _nanos(usd: float) -> int:
    return math.ceil(usd * NANOS - 1e-6) if usd > 0 else 0


class Budgets:
    """Enforces a policy's budgets with the given counters (local or Redis)."""

    def __init__(
        self,
        configs: Sequence[BudgetConfig],
        counters: Counters,
        prefix: str = "llmrouter",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.configs = list(configs)
        self.counters = counters
        # In-process counters: reserve and settle on their cells, no key lookups per call.
        self._local = counters if isinstance(counters, LocalCounters) else None
        #: In-process counters: :meth:`reserve` never waits, so an async caller can call it
        #: directly instead of awaiting :meth:`areserve` (two coroutines less per call). An
        #: attribute, not a property: the router reads it on every call.
        self.local = self._local is not None
        # Leased shared counters: calls take from this replica's pools (their cells).
        self._pools: Pools | None = getattr(counters, "pools", None)
        if self._local is not None:
            self._local_lock = self._local.lock
        elif self._pools is not None:
            self._local_lock = self._pools.lock
        else:
            self._local_lock = threading.Lock()
        self.prefix = prefix
        self._clock = clock
        self._warned: dict[str, float] = {}
        self._buckets: dict[str, tuple[int, str]] = {}  # period -> (second, bucket): no
        # date formatting per call
        self._warned_lock = threading.Lock()
        self._applied_cache: dict[
            tuple[str | None, str | None, tuple[str, ...]], tuple[int, _Applied | None]
        ] = {}

    # --- which counters ---------------------------------------------------------------------------

    def _bucket(self, period: str, now: float) -> str:
        second = int(now)
        cached = self._buckets.get(period)
        if cached is not None and cached[0] == second:
            return cached[1]
        bucket = self._format_bucket(period, second)
        self._buckets[period] = (second, bucket)
        return bucket

    @staticmethod
    def _format_bucket(period: str, now: float) -> str:
        moment = datetime.fromtimestamp(now, tz=timezone.utc)
        if period == "day":
            return moment.strftime("%Y-%m-%d")
        if period == "month":
            return moment.strftime("%Y-%m")
        return "all"

    def applicable(
        self, api_key_id: str | None, user: str | None, tags: Sequence[str], now: float
    ) -> list[tuple[BudgetConfig, str, str]]:
        """(budget, the scope value it applies to, counter key) for one call."""
        found = []
        for config in self.configs:
            if config.scope == "global":
                values: Sequence[str] = ["*"]
            elif config.scope == "key":
                values = [api_key_id] if api_key_id else []
            elif config.scope == "user":
                values = [user] if user else []
            else:
                values = list(dict.fromkeys(tags))
            for value in values:
                if config.match is not None and value != config.match:
                    continue
                key = self.key(config, value, now)
                found.append((config, value, key))
        return found

    def key(self, config: BudgetConfig, value: str, now: float) -> str:
        bucket = self._bucket(config.period, now)
        return f"{self.prefix}:budget:{config.label}:{value}:{bucket}"

    # --- reserve and settle -----------------------------------------------------------------------

    def _applied(
        self, api_key_id: str | None, user: str | None, tags: Sequence[str]
    ) -> _Applied | None:
        """The counters this caller's calls fall under, ready to send: computed once per
        caller (key, user, tags) and second, not on every call."""
        now = self._clock()
        second = int(now)
        ident = (api_key_id, user, tuple(tags) if tags else ())
        cached = self._applied_cache.get(ident)
        if cached is not None and cached[0] == second:
            return cached[1]
        found = self.applicable(api_key_id, user, tags, now)
        applied = _Applied.of(found, self._local, self._pools) if found else None
        if len(self._applied_cache) >= _APPLIED_CACHE_SIZE:
            self._applied_cache.clear()
        self._applied_cache[ident] = (second, applied)
        return applied

    def reserve(
        self,
        worst_case: float,
        *,
        api_key_id: str | None = None,
        user: str | None = None,
        tags: Sequence[str] = (),
    ) -> Hold | None:
        """Reserve ``worst_case`` dollars on every applicable budget, or raise
        :class:`BudgetExceeded` (a hard one would be crossed; nothing is reserved).

        Runs on every call: the usual case (the caller's budgets known this second, in
        process, no soft budget, room left) is written out here, without further calls."""
        cached = self._applied_cache.get((api_key_id, user, tuple(tags) if tags else ()))
        if cached is not None and cached[0] == int(self._clock()):
            applied = cached[1]
        else:
            applied = self._applied(api_key_id, user, tags)
        if applied is None:
            return None
        amount = _ceil(worst_case * NANOS - 1e-6) if worst_case > 0 else 0  # _nanos
        cells = applied.cells
        if cells is not None:
            if not applied.pooled:
                if not applied.has_soft:
                    with self._local_lock:
                        for cell, limit in applied.hard:
                            if cell[0] + amount > limit:
                                break
                        else:
                            for cell in cells:
                                cell[0] += amount
                            return Hold(applied.keys, amount, None, cells)
                return self._reserve_local(applied, amount, worst_case)
            hold = self._take(applied, amount, worst_case)
            if hold is not None:
                return hold
        result = self.counters.reserve(applied.keys, amount, applied.limits, applied.ttls)
        return self._conclude(applied, amount, worst_case, result)

    async def areserve(
        self,
        worst_case: float,
        *,
        api_key_id: str | None = None,
        user: str | None = None,
        tags: Sequence[str] = (),
    ) -> Hold | None:
        """:meth:`reserve` without blocking the event loop on a Redis round trip. With
        leases, the usual case (the pools hold the call, no soft budget) is written out
        here: no round trip and no further calls."""
        cached = self._applied_cache.get((api_key_id, user, tuple(tags) if tags else ()))
        if cached is not None and cached[0] == int(self._clock()):
            applied = cached[1]
        else:
            applied = self._applied(api_key_id, user, tags)
        if applied is None:
            return None
        amount = _ceil(worst_case * NANOS - 1e-6) if worst_case > 0 else 0  # _nanos
        cells = applied.cells
        if cells is not None:  # in process, or from this replica's pools
            if not applied.pooled:
                return self._reserve_local(applied, amount, worst_case)
            hold = self._take(applied, amount, worst_case)
            if hold is not None:
                return hold
        result = await self.counters.areserve(applied.keys, amount, applied.limits, applied.ttls)
        return self._conclude(applied, amount, worst_case, result)

    def _reserve_local(self, applied: _Applied, amount: int, worst_case: float) -> Hold:
        """Reserve on in-process cells: one lock, a comparison per hard budget, an addition
        per budget (written out flat: this runs on every call)."""
        cells = applied.cells
        assert cells is not None
        refused = over_soft = False
        with self._local_lock:
            for cell, limit in applied.hard:
                if cell[0] + amount > limit:
                    refused = True
                    break
            else:
                for cell in cells:
                    cell[0] += amount
                for cell, limit in applied.soft_cells:  # a warning only once over
                    if cell[0] > limit:
                        over_soft = True
                        break
            if refused or over_soft:
                values = tuple(cell[0] for cell in cells)  # as the check saw them
        if not refused and not over_soft:  # the usual case
            return Hold(applied.keys, amount, None, cells)
        index = None
        if refused:
            limits = applied.limits
            index = next(i for i in applied.hard_index if values[i] + amount > limits[i])  # type: ignore[operator]
        hold = self._conclude(applied, amount, worst_case, ReserveResult(index, values))
        hold.cells = cells
        return hold

    def _take(self, applied: _Applied, amount: int, worst_case: float) -> Hold | None:
        """Take the call's worst case from this replica's pools (leased shared counters):
        no round trip. None when a hard counter's pool is short: the call reserves on its
        own, and the pools grow at the next refill."""
        cells = applied.cells
        assert cells is not None and self._pools is not None
        over_soft = False
        with self._local_lock:
            for cell in applied.pool_hard:
                if cell[0] + amount > cell[1]:
                    break
            else:
                for cell in cells:
                    cell[0] += amount
                for cell in applied.pool_soft:
                    if cell[0] > cell[1]:  # past the room under a soft limit
                        over_soft = True
                        break
                else:
                    return Hold(applied.keys, amount, None, cells)
                # each counter's value as this replica reckons it (soft ones are read)
                values = [
                    soft - cell[1] + cell[0] if soft is not None else 0
                    for cell, soft in zip(cells, applied.soft, strict=True)
                ]
        if not over_soft:
            self._pools.missed(applied.keys, amount)
            return None
        return Hold(applied.keys, amount, self._soft_warnings(applied, values), cells)

    def _conclude(
        self, applied: _Applied, amount: int, worst_case: float, result: ReserveResult
    ) -> Hold:
        if result.refused is not None:
            config, value, _ = applied.found[result.refused]
            used = result.values[result.refused] / NANOS
            raise BudgetExceeded(
                f"budget {config.label!r} ({_describe(config, value)}) would be exceeded: "
                f"${used:.6f} of ${config.limit_usd:.6f} is spent or reserved and this call "
                f"may cost up to ${worst_case:.6f}"
            )
        warning = self._soft_warnings(applied, result.values) if applied.has_soft else None
        return Hold(applied.keys, amount, warning)

    def _soft_warnings(self, applied: _Applied, values: Sequence[int]) -> str | None:
        warnings = []
        for (config, value, key), soft, after in zip(
            applied.found, applied.soft, values, strict=True
        ):
            if soft is not None and after > soft:
                warnings.append(
                    f"{config.label}: ${after / NANOS:.6f} of ${config.limit_usd:.6f} "
                    f"({_describe(config, value)})"
                )
                self._log_once(key, warnings[-1])
        return "; ".join(warnings) if warnings else None

    def settle(self, hold: Hold, actual_usd: float) -> None:
        """Replace the reservation by the actual cost (0 for a call that failed unbilled)."""
        actual = _ceil(actual_usd * NANOS - 1e-6) if actual_usd > 0 else 0  # _nanos
        delta = actual - hold.reserved
        cells = hold.cells
        if cells is None:
            self.counters.adjust(hold.keys, delta)
        elif delta:
            with self._local_lock:
                for cell in cells:
                    cell[0] += delta

    def _log_once(self, key: str, message: str) -> None:
        """A soft budget over its limit logs a line, at most once a minute per counter."""
        now = time.monotonic()
        with self._warned_lock:
            last = self._warned.get(key)
            if last is not None and now - last < 60:
                return
            self._warned[key] = now
        log.warning("soft budget over its limit: %s", message)

    # --- reading ----------------------------------------------------------------------------------

    def spent(self, config: BudgetConfig, value: str = "*", now: float | None = None) -> float:
        """Dollars counted (spent plus in-flight reservations) on one budget's current period."""
        key = self.key(config, value, self._clock() if now is None else now)
        return self.counters.values([key])[0] / NANOS

    def close(self) -> None:
        self.counters.close()


@dataclass(frozen=True, slots=True)
class _Applied:
    """The budgets a caller's calls fall under, in the form the counters take."""

    found: list[tuple[BudgetConfig, str, str]]  # (budget, scope value, counter key)
    keys: tuple[str, ...]
    limits: list[int | None]  # hard limits in nano-dollars (None: soft)
    ttls: list[int]
    soft: list[int | None]  # soft limits in nano-dollars (None: hard)
    has_soft: bool
    cells: tuple[Cell, ...] | None  # in-process counters: the keys' cells
    hard: tuple[tuple[Cell, int], ...]  # (cell, limit) of each hard budget, in process
    soft_cells: tuple[tuple[Cell, int], ...]  # (cell, limit) of each soft budget, in process
    pooled: bool  # ``cells`` are this replica's pools of leased shared counters
    pool_hard: tuple[Cell, ...]  # the pools of the hard budgets
    pool_soft: tuple[Cell, ...]  # the cells of the soft budgets (increases not sent yet)
    hard_index: tuple[int, ...]  # where each of ``hard`` is in ``found``

    @classmethod
    def of(
        cls,
        found: list[tuple[BudgetConfig, str, str]],
        local: LocalCounters | None = None,
        pools: Pools | None = None,
    ) -> _Applied:
        hard = [c.mode == "hard" for c, _, _ in found]
        limits = [_nanos(c.limit_usd) for c, _, _ in found]
        keys = tuple(key for _, _, key in found)
        ttls = [_TTL_S[c.period] for c, _, _ in found]
        hard_index = tuple(i for i, h in enumerate(hard) if h)
        common: dict[str, Any] = {
            "found": found,
            "keys": keys,
            "limits": [limit if h else None for limit, h in zip(limits, hard, strict=True)],
            "ttls": ttls,
            "soft": [None if h else limit for limit, h in zip(limits, hard, strict=True)],
            "has_soft": not all(hard),
            "hard_index": hard_index,
        }
        pool_cells = pools.cells(keys, limits, hard, ttls) if pools is not None else None
        if pool_cells is not None:
            return cls(
                **common,
                cells=pool_cells,
                hard=(),
                soft_cells=(),
                pooled=True,
                pool_hard=tuple(pool_cells[i] for i in hard_index),
                pool_soft=tuple(c for c, h in zip(pool_cells, hard, strict=True) if not h),
            )
        cells = local.cells(keys) if local is not None else None
        return cls(
            **common,
            cells=cells,
            hard=tuple((cells[i], limits[i]) for i in hard_index) if cells is not None else (),
            soft_cells=tuple(
                (cell, limit) for cell, limit, h in zip(cells, limits, hard, strict=True) if not h
            )
            if cells is not None
            else (),
            pooled=False,
            pool_hard=(),
            pool_soft=(),
        )


def _describe(config: BudgetConfig, value: str) -> str:
    period = {"day": "per day", "month": "per month", "total": "in total"}[config.period]
    if config.scope == "global":
        return f"all calls, {period}"
    return f"{config.scope} {value}, {period}"
