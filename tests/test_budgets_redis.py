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
    spent = a.budgets.spent(a.policy.budgets[0])
    a.close()
    b.close()
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
    with pytest.raises(BudgetUnavailable) as refused:
        router.complete(HELLO, max_tokens=5)
    assert refused.value.status_code == 503
    assert router.ledger is not None
    rows = router.ledger.rows()
    router.close()
    other.close()
    assert [(r["outcome"], r["error_kind"]) for r in rows] == [("error", "budget_unavailable")]
