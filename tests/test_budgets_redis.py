"""Budgets shared by replicas through Redis: two Routers (as two sidecars would) draw on one
counter, and concurrent calls from both never cross a hard limit."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from canned_upstream import CannedUpstream
from services import fresh_redis
from test_budgets import CALL_COST, HELLO, make_router

from llmrouter import BudgetExceeded, Router
from llmrouter.budgets import Budgets, BudgetUnavailable, RedisCounters
from llmrouter.policy.schema import BudgetConfig


@pytest.fixture(scope="module")
def upstream() -> Iterator[CannedUpstream]:
    server = CannedUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def shared() -> Iterator[tuple[str, str]]:
    with fresh_redis() as pair:
        yield pair


def replicas(
    tmp_path: Path, base_url: str, shared: tuple[str, str], budgets: list[dict[str, Any]]
) -> tuple[Router, Router]:
    url, prefix = shared
    state = {"redis_url": url, "key_prefix": prefix}
    made = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        made.append(make_router(folder, base_url, budgets, shared_state=state))
    return made[0], made[1]


def test_two_replicas_share_one_hard_budget(
    tmp_path: Path, upstream: CannedUpstream, shared: tuple[str, str]
) -> None:
    limit = 30 * CALL_COST
    a, b = replicas(tmp_path, upstream.base_url, shared, [{"limit_usd": limit, "period": "day"}])

    async def one(router: Router) -> bool:
        try:
            await router.acomplete(HELLO, max_tokens=5)
            return True
        except BudgetExceeded:
            return False

    async def many() -> list[bool]:
        return await asyncio.gather(*(one((a, b)[i % 2]) for i in range(160)))

    outcomes = asyncio.run(many())
    assert a.ledger is not None and b.ledger is not None and a.budgets is not None
    rows = a.ledger.rows() + b.ledger.rows()
    b.close()  # applies b's buffered settlements (a's are flushed by reading)
    spent = a.budgets.spent(a.policy.budgets[0])
    a.close()
    assert len(rows) == 160
    answered = sum(outcomes)
    assert 0 < answered <= 30
    assert sum(r["cost_usd"] for r in rows) <= limit + 1e-12
    # The shared counter, once every settlement landed, is the summed actual cost.
    assert spent == pytest.approx(answered * CALL_COST, abs=1e-9)
    assert len([r for r in rows if r["error_kind"] == "budget_exceeded"]) == 160 - answered


def test_redis_reserve_is_atomic_across_many_clients(shared: tuple[str, str]) -> None:
    url, prefix = shared
    config = BudgetConfig(limit_usd=1.0, period="total")
    granted: list[int] = []

    def worker() -> None:
        client = redis.Redis.from_url(url)
        budgets = Budgets([config], RedisCounters(client), prefix)
        assert not budgets.local  # a reserve waits for Redis
        for _ in range(60):
            try:
                budgets.reserve(0.01)
                granted.append(1)
            except BudgetExceeded:
                pass
        budgets.close()
        client.close()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 100


def test_counters_expire_with_their_period(shared: tuple[str, str]) -> None:
    url, prefix = shared
    client = redis.Redis.from_url(url)
    budgets = Budgets(
        [
            BudgetConfig(name="d", limit_usd=1.0, period="day"),
            BudgetConfig(name="t", limit_usd=1, period="total"),
        ],
        RedisCounters(client),
        prefix,
    )
    hold = budgets.reserve(0.25)
    assert hold is not None
    day_key, total_key = hold.keys
    assert 0 < client.ttl(day_key) <= 3 * 86_400
    assert client.ttl(total_key) == -1  # "total" never expires
    budgets.settle(hold, 0.125)
    assert budgets.spent(budgets.configs[0]) == pytest.approx(0.125)
    budgets.close()
    client.close()


def test_unreachable_counters_refuse_the_call_and_record_it(
    tmp_path: Path, upstream: CannedUpstream, shared: tuple[str, str]
) -> None:
    router, other = replicas(tmp_path, upstream.base_url, shared, [{"limit_usd": 1.0}])
    assert router.budgets is not None
    counters = router.budgets.counters
    assert isinstance(counters, RedisCounters)

    def down(**_: object) -> None:
        raise redis.ConnectionError("Connection refused")

    counters._script = down  # type: ignore[assignment]
    counters._lease_script = down  # type: ignore[assignment]  # the reserve with leases
    with pytest.raises(BudgetUnavailable) as refused:
        router.complete(HELLO, max_tokens=5)
    assert refused.value.status_code == 503
    assert router.ledger is not None
    rows = router.ledger.rows()
    router.close()
    other.close()
    assert [(r["outcome"], r["error_kind"]) for r in rows] == [("error", "budget_unavailable")]


def _async_budgets(url: str, prefix: str, limit_usd: float) -> Budgets:
    """Budgets whose async reserve goes over the pipelined connection (a URL is given)."""
    client = redis.Redis.from_url(url)
    return Budgets(
        [BudgetConfig(limit_usd=limit_usd, period="total")], RedisCounters(client, url), prefix
    )


def test_async_reserves_on_two_replicas_never_cross_a_hard_limit(
    shared: tuple[str, str],
) -> None:
    url, prefix = shared
    replicas = [_async_budgets(url, prefix, 1.0) for _ in range(2)]

    async def one(budgets: Budgets) -> bool:
        try:
            return await budgets.areserve(0.01) is not None
        except BudgetExceeded:
            return False

    async def many() -> list[bool]:  # all in flight together: pipelined on each connection
        return await asyncio.gather(*(one(replicas[i % 2]) for i in range(300)))

    granted = asyncio.run(many())
    spent = replicas[0].spent(replicas[0].configs[0])
    for budgets in replicas:
        budgets.close()
    assert sum(granted) == 100
    assert spent == pytest.approx(1.0)


def test_a_reservation_whose_caller_was_cancelled_is_given_back(
    shared: tuple[str, str],
) -> None:
    url, prefix = shared
    budgets = _async_budgets(url, prefix, 1.0)

    async def cancelled() -> None:
        await budgets.areserve(0.01)  # connects, so the next reserve is queued at once
        task = asyncio.ensure_future(budgets.areserve(0.25))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await budgets.areserve(0.01)  # its reply arrives after the cancelled one's

    asyncio.run(cancelled())
    spent = budgets.spent(budgets.configs[0])
    budgets.close()
    assert spent == pytest.approx(0.02)


def test_async_reserve_survives_a_flushed_script_cache(shared: tuple[str, str]) -> None:
    url, prefix = shared
    budgets = _async_budgets(url, prefix, 1.0)
    admin = redis.Redis.from_url(url)

    async def twice() -> None:
        await budgets.areserve(0.25)
        admin.script_flush()  # as after a Redis restart or failover: EVALSHA says NOSCRIPT
        await budgets.areserve(0.25)

    asyncio.run(twice())
    spent = budgets.spent(budgets.configs[0])
    budgets.close()
    admin.close()
    assert spent == pytest.approx(0.5)


def test_async_reserve_refuses_when_redis_is_unreachable(shared: tuple[str, str]) -> None:
    url, prefix = shared
    client = redis.Redis.from_url(url)
    dead = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    budgets = Budgets([BudgetConfig(limit_usd=1.0)], RedisCounters(client, dead), prefix)
    with pytest.raises(BudgetUnavailable):
        asyncio.run(budgets.areserve(0.01))
    budgets.close()
    client.close()


def test_buffered_settlements_are_summed_and_applied_on_close(shared: tuple[str, str]) -> None:
    url, prefix = shared
    client = redis.Redis.from_url(url)
    budgets = Budgets(
        [BudgetConfig(name="g", limit_usd=10.0, period="total")],
        RedisCounters(client, settle_s=3600),  # only flush/close send them
        prefix,
    )
    holds = [budgets.reserve(0.05) for _ in range(40)]
    for hold in holds:
        assert hold is not None
        budgets.settle(hold, 0.01)
    key = holds[0].keys[0]  # type: ignore[union-attr]
    assert int(client.get(key) or 0) == 40 * 50_000_000  # still the reservations
    budgets.close()  # a clean shutdown applies every settlement
    assert int(client.get(key) or 0) == 40 * 10_000_000
    client.close()


def test_a_failed_settlement_keeps_its_increases_and_drops_its_decreases(
    shared: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An overshoot (a call dearer than its worst case) must reach Redis even if the first
    send fails; a refund may be lost, leaving the counter on the refusing side."""
    url, prefix = shared
    client = redis.Redis.from_url(url)
    counters = RedisCounters(client, settle_s=3600)
    real_pipeline = client.pipeline
    failures = [redis.ConnectionError("Redis went away")]

    def flaky_pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = real_pipeline(*args, **kwargs)
        if failures:
            error = failures.pop()

            def fail() -> None:
                raise error

            pipe.execute = fail
        return pipe

    monkeypatch.setattr(client, "pipeline", flaky_pipeline)
    up, down = f"{prefix}:up", f"{prefix}:down"
    client.set(up, 100)
    client.set(down, 100)
    counters.adjust([up], 30)
    counters.adjust([down], -30)
    counters.flush()  # this send fails
    assert [int(client.get(up) or 0), int(client.get(down) or 0)] == [100, 100]
    counters.flush()  # the kept increase goes out with the next batch
    assert [int(client.get(up) or 0), int(client.get(down) or 0)] == [130, 100]
    counters.close()
    client.close()
