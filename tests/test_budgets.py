"""Budgets: reserve the worst case, settle to the actual cost, refuse (hard) or warn (soft);
per API key, user, tag and overall; per day, month or in total. In-process counters here;
Redis-shared ones in test_budgets_redis.py."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from canned_upstream import CannedUpstream

from llmrouter import BudgetExceeded, Router
from llmrouter.budgets import Budgets, LocalCounters, worst_case_usd
from llmrouter.budgets.counters import NANOS
from llmrouter.policy.schema import BackendConfig, BudgetConfig, Price

# The canned upstream reports 12 prompt + 5 completion tokens: at $1/M in and $2/M out,
# every call costs exactly $0.000022.
CALL_COST = (12 * 1.0 + 5 * 2.0) / 1e6


@pytest.fixture(scope="module")
def upstream() -> Iterator[CannedUpstream]:
    server = CannedUpstream().start()
    yield server
    server.stop()


def make_router(
    tmp_path: Path,
    base_url: str,
    budgets: list[dict[str, Any]],
    **extra: Any,
) -> Router:
    policy: dict[str, Any] = {
        "backends": [
            {
                "name": "b",
                "base_url": base_url,
                "model": "m",
                "price": {"input_per_million": 1.0, "output_per_million": 2.0},
                "context_window": 4096,
                "max_output_tokens": 64,
            }
        ],
        "cache": {"enabled": False},
        "ledger": {"url": f"sqlite:///{tmp_path / 'ledger.db'}"},
        "budgets": budgets,
        **extra,
    }
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    return Router(path)


HELLO = [{"role": "user", "content": "hello"}]


def test_worst_case_uses_max_tokens_else_the_backend_limits() -> None:
    backend = BackendConfig(
        name="b",
        base_url="http://127.0.0.1:1/v1",
        model="m",
        price=Price(input_per_million=1.0, output_per_million=2.0),
        context_window=1000,
        max_output_tokens=300,
    )
    prompt = 100
    padded = 100 * 1.1 + 16
    assert worst_case_usd(prompt, {"max_tokens": 50}, [backend]) == pytest.approx(
        (padded + 50 * 2) / 1e6
    )
    assert worst_case_usd(prompt, {}, [backend]) == pytest.approx((padded + 300 * 2) / 1e6)
    assert worst_case_usd(prompt, {"max_tokens": 50, "n": 3}, [backend]) == pytest.approx(
        (padded + 150 * 2) / 1e6
    )
    backend.max_output_tokens = None  # then what is left of the context window
    assert worst_case_usd(prompt, {}, [backend]) == pytest.approx((padded + 900 * 2) / 1e6)
    pricier = backend.model_copy(
        update={"price": Price(input_per_million=10.0, output_per_million=20.0)}
    )
    assert worst_case_usd(prompt, {"max_tokens": 50}, [backend, pricier]) == pytest.approx(
        (padded * 10 + 50 * 20) / 1e6
    )


def test_hard_budget_refuses_and_the_refusal_is_recorded(
    tmp_path: Path, upstream: CannedUpstream
) -> None:
    # Room for exactly three worst cases of max_tokens=5 (~$0.0000455 each).
    router = make_router(tmp_path, upstream.base_url, [{"limit_usd": 0.00015, "period": "day"}])
    answered, refused = 0, 0
    for _ in range(10):
        try:
            router.complete(HELLO, max_tokens=5)
            answered += 1
        except BudgetExceeded as exc:
            refused += 1
            assert exc.status_code == 429
            assert "would be exceeded" in exc.message
    assert router.ledger is not None and router.budgets is not None
    rows = router.ledger.rows()
    spent = router.budgets.spent(router.policy.budgets[0])
    router.close()
    assert answered + refused == 10 == len(rows)
    assert refused > 0
    # Settled spend is the actual cost; refusals cost nothing and are marked.
    assert spent == pytest.approx(answered * CALL_COST, abs=1e-9)
    assert sum(r["cost_usd"] for r in rows) <= 0.00015
    refusals = [r for r in rows if r["error_kind"] == "budget_exceeded"]
    assert len(refusals) == refused
    assert all(r["outcome"] == "error" and r["cost_usd"] == 0 for r in refusals)


def test_concurrent_calls_never_cross_a_hard_budget(
    tmp_path: Path, upstream: CannedUpstream
) -> None:
    limit = 40 * CALL_COST
    router = make_router(tmp_path, upstream.base_url, [{"limit_usd": limit, "period": "total"}])

    async def one() -> bool:
        try:
            await router.acomplete(HELLO, max_tokens=5)
            return True
        except BudgetExceeded:
            return False

    async def many() -> list[bool]:
        return await asyncio.gather(*(one() for _ in range(200)))

    outcomes = asyncio.run(many())
    assert router.ledger is not None
    rows = router.ledger.rows()
    router.close()
    assert len(rows) == 200
    assert sum(r["cost_usd"] for r in rows) <= limit + 1e-12
    assert sum(outcomes) == len([r for r in rows if r["outcome"] == "ok"])
    assert 0 < sum(outcomes) <= 40


def test_soft_budget_warns_once_over_and_still_answers(
    tmp_path: Path, upstream: CannedUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    router = make_router(
        tmp_path,
        upstream.base_url,
        [{"name": "team", "limit_usd": 2.5 * CALL_COST, "mode": "soft", "period": "month"}],
    )
    warnings = []
    with caplog.at_level(logging.WARNING, logger="llmrouter.budgets"):
        for _ in range(4):
            completion = router.complete(HELLO, max_tokens=1)
            warnings.append(completion.router.budget_warning)
    router.close()
    # max_tokens=1 keeps the reservation close to the real cost; the third call crosses.
    assert warnings[0] is None
    assert all(w is not None and w.startswith("team:") for w in warnings[2:])
    assert sum("soft budget over its limit" in r.message for r in caplog.records) == 1


def test_scopes_key_user_tag_and_match(tmp_path: Path, upstream: CannedUpstream) -> None:
    router = make_router(
        tmp_path,
        upstream.base_url,
        [
            {"name": "per-user", "scope": "user", "limit_usd": 1.5 * CALL_COST, "period": "day"},
            {"name": "tag-x", "scope": "tag", "match": "x", "limit_usd": 1.0, "period": "day"},
            {"name": "key-a", "scope": "key", "match": "KEY_A", "limit_usd": 1e-9},
        ],
    )
    router.complete(HELLO, max_tokens=1, user="alice")
    with pytest.raises(BudgetExceeded, match="user alice"):
        router.complete(HELLO, max_tokens=1, user="alice")
    router.complete(HELLO, max_tokens=1, user="bob")  # bob has his own limit
    router.complete(HELLO, max_tokens=1)  # no user: user budgets do not apply
    with pytest.raises(BudgetExceeded, match="key KEY_A"):
        router.complete(HELLO, max_tokens=1, api_key_id="KEY_A")
    router.complete(HELLO, max_tokens=1, api_key_id="KEY_B", tags=["x", "y"])
    assert router.budgets is not None and router.ledger is not None
    tag_budget = router.policy.budgets[1]
    assert router.budgets.spent(tag_budget, "x") == pytest.approx(CALL_COST, abs=1e-9)
    rows = router.ledger.rows()
    router.close()
    assert [r["api_key_id"] for r in rows][-2:] == ["KEY_A", "KEY_B"]


def test_periods_roll_over_by_utc_day_and_month() -> None:
    now = [1_767_225_599.0]  # 2025-12-31T23:59:59Z
    budgets = Budgets(
        [BudgetConfig(limit_usd=1.0, period="day"), BudgetConfig(limit_usd=1.5, period="month")],
        LocalCounters(),
        clock=lambda: now[0],
    )
    budgets.reserve(0.9)
    with pytest.raises(BudgetExceeded):
        budgets.reserve(0.2)
    now[0] += 2  # a new day and a new month
    hold = budgets.reserve(0.9)
    assert hold is not None
    budgets.settle(hold, 0.5)
    assert budgets.spent(budgets.configs[0]) == pytest.approx(0.5)


def test_refused_reservation_changes_nothing() -> None:
    budgets = Budgets(
        [BudgetConfig(name="small", limit_usd=1.0), BudgetConfig(name="big", limit_usd=10.0)],
        LocalCounters(),
    )
    with pytest.raises(BudgetExceeded):
        budgets.reserve(2.0)
    assert budgets.spent(budgets.configs[1]) == 0.0


def test_reserve_is_atomic_across_threads() -> None:
    budgets = Budgets([BudgetConfig(limit_usd=1.0, period="total")], LocalCounters())
    granted = []

    def worker() -> None:
        for _ in range(100):
            try:
                if budgets.reserve(0.01) is not None:
                    granted.append(1)
            except BudgetExceeded:
                pass

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 100


def test_reserve_and_settle_from_many_threads_add_up_exactly() -> None:
    # In process, holds settle on the counters they reserved on (no key lookups): every
    # reservation is given back and every actual cost stays, to the nano-dollar.
    budgets = Budgets(
        [
            BudgetConfig(name="all", limit_usd=100.0, period="total"),
            BudgetConfig(name="users", scope="user", limit_usd=100.0, period="total", mode="soft"),
        ],
        LocalCounters(),
    )

    def worker(user: str) -> None:
        for _ in range(500):
            hold = budgets.reserve(0.01, user=user)
            assert hold is not None and hold.warning is None
            budgets.settle(hold, 0.000004)

    threads = [threading.Thread(target=worker, args=(f"u{k}",)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert budgets.spent(budgets.configs[0]) == 2000 * 4_000 / NANOS
    assert budgets.spent(budgets.configs[1], "u1") == 500 * 4_000 / NANOS


def test_in_process_budgets_say_they_never_wait() -> None:
    assert Budgets([BudgetConfig(limit_usd=1.0)], LocalCounters()).local


def test_a_hold_settles_on_the_period_it_reserved_in() -> None:
    now = [1_767_225_599.5]  # the last second of 2025-12-31 (UTC)
    budgets = Budgets(
        [BudgetConfig(limit_usd=1.0, period="day")], LocalCounters(), clock=lambda: now[0]
    )
    hold = asyncio.run(budgets.areserve(0.5))
    assert hold is not None
    now[0] += 1  # the next day: its counter starts at 0
    budgets.settle(hold, 0.25)
    assert budgets.spent(budgets.configs[0], now=now[0] - 1) == pytest.approx(0.25)
    assert budgets.spent(budgets.configs[0]) == 0.0


def test_policy_rejects_bad_budgets(tmp_path: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        BudgetConfig(limit_usd=0)
    with pytest.raises(ValidationError):
        BudgetConfig(scope="global", match="x", limit_usd=1)
    with pytest.raises(ValidationError):
        BudgetConfig(limit_usd=1, period="week")  # type: ignore[arg-type]


async def test_a_call_cancelled_while_reserving_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that disconnects while its reservation is in flight still leaves a row."""
    router = make_router(
        tmp_path,
        "http://127.0.0.1:9/v1",  # never reached
        [{"name": "cap", "scope": "global", "limit_usd": 1.0}],
    )
    assert router.budgets is not None
    reserving = asyncio.Event()

    async def slow_reserve(*args: Any, **kwargs: Any) -> Any:
        reserving.set()
        await asyncio.sleep(30)

    monkeypatch.setattr(router.budgets, "areserve", slow_reserve)
    # As with Redis counters: the router awaits the reservation (local ones never wait).
    monkeypatch.setattr(router.budgets, "local", False)
    task = asyncio.ensure_future(router.acomplete(HELLO))
    await reserving.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert router.ledger is not None
    (row,) = router.ledger.rows()
    assert row["outcome"] == "cancelled"
    router.close()
