"""Two ``llmrouter serve`` processes sharing PostgreSQL and Redis, under concurrent load:
every request leaves exactly one ledger row, costs add up, a shared hard budget holds, and
a replica killed with SIGKILL leaves no corrupt or duplicated rows while the other serves.
(The 10,000-request version is benchmarks/soak_replicas.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from replicas import Load, Replica, free_port, start_upstream, write_policy
from services import fresh_database, fresh_redis

KEY = "sk-test-replicas-0123456789"


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[str]:
    process, url = start_upstream(tmp_path / "upstream.log")
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def backing() -> Iterator[tuple[str, str, str]]:
    with fresh_database() as pg_url, fresh_redis() as (redis_url, prefix):
        yield pg_url, redis_url, prefix


def ledger_rows(pg_url: str) -> list[dict[str, object]]:
    with psycopg.connect(pg_url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT * FROM calls ORDER BY id")
        names = [d.name for d in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_two_replicas_500_requests_rows_costs_and_a_shared_budget(
    tmp_path: Path, upstream: str, backing: tuple[str, str, str]
) -> None:
    pg_url, redis_url, prefix = backing
    # Each call costs $0.000022 (small) or $0.000135 (large); the cap stops a good share.
    limit = 0.005
    policy = write_policy(
        tmp_path / "policy.yaml",
        upstream,
        pg_url,
        redis_url,
        prefix,
        budgets=[{"name": "team", "limit_usd": limit, "period": "day"}],
        keys_env=["TEAM_KEY"],
    )
    env = {"TEAM_KEY": KEY}
    replicas = [Replica(policy, free_port(), tmp_path / f"r{i}.log") for i in range(2)]
    for replica in replicas:
        replica.start(env)
    try:
        load = Load([r.url for r in replicas], 500, 16, headers={"Authorization": f"Bearer {KEY}"})
        asyncio.run(load.run())
    finally:
        for replica in replicas:
            replica.stop()  # clean shutdown: queued rows are flushed
    statuses = [r.status for r in load.results]
    assert len(statuses) == 500
    assert set(statuses) <= {200, 429}, statuses
    answered = [r for r in load.results if r.status == 200]
    refused = statuses.count(429)
    assert answered and refused, "the budget should both admit and refuse calls"
    assert {r.replica for r in answered} == {0, 1}

    rows = ledger_rows(pg_url)
    assert len(rows) == 500  # successes plus recorded refusals, exactly
    assert len({r["request_id"] for r in rows}) == 500
    ok = [r for r in rows if r["outcome"] in ("ok", "fallback")]
    assert len(ok) == len(answered)
    assert len([r for r in rows if r["error_kind"] == "budget_exceeded"]) == refused
    # The summed cost equals the per-call costs the clients were told, and the cap held.
    by_id = {r["request_id"]: r["cost_usd"] for r in rows}
    for result in answered:
        assert by_id[result.request_id] == pytest.approx(result.cost_usd, abs=1e-10)
    total = sum(float(r["cost_usd"]) for r in rows)  # type: ignore[arg-type]
    assert total == pytest.approx(sum(r.cost_usd or 0 for r in answered), abs=1e-9)
    assert total <= limit
    assert {r["api_key_id"] for r in rows} == {"TEAM_KEY"}  # the key's id, never the key
    assert all(KEY not in str(value) for row in rows for value in row.values())
    for log in tmp_path.glob("r*.log"):
        assert KEY not in log.read_text(errors="replace")


def test_kill_9_one_replica_under_load(
    tmp_path: Path, upstream: str, backing: tuple[str, str, str]
) -> None:
    pg_url, redis_url, prefix = backing
    policy = write_policy(tmp_path / "policy.yaml", upstream, pg_url, redis_url, prefix, sync=True)
    victim, survivor = (Replica(policy, free_port(), tmp_path / f"r{i}.log") for i in range(2))
    victim.start()
    survivor.start()
    try:
        load = Load([victim.url, survivor.url], 400, 16, retry_elsewhere=True)

        async def run_and_kill() -> None:
            task = asyncio.create_task(load.run())
            while len(load.results) < 100:
                await asyncio.sleep(0.005)
            victim.kill()
            await task

        asyncio.run(run_and_kill())
        # The survivor kept serving: every request was answered by someone.
        assert [r.status for r in load.results].count(200) == 400
        after_kill = load.results[150:]
        assert all(r.replica == 1 for r in after_kill[16:])  # once in-flight ones drained
        # The killed replica restarts on its port and serves again, sharing the same state.
        victim.start()
        again = Load([victim.url], 50, 8)
        asyncio.run(again.run())
        assert [r.status for r in again.results].count(200) == 50
    finally:
        victim.stop()
        survivor.stop()
    rows = ledger_rows(pg_url)
    ids = [r["request_id"] for r in rows]
    assert len(ids) == len(set(ids))  # no duplicated rows
    for row in rows:  # no corrupt rows: every required field is there and sane
        assert row["backend"] in ("small", "large")
        assert row["outcome"] in ("ok", "fallback", "error", "cancelled")
        assert float(row["cost_usd"]) >= 0 and int(row["prompt_tokens"]) > 0  # type: ignore[arg-type]
    # ledger.sync: every answered request's row was committed before its answer was sent.
    answered = {r.request_id for r in load.results + again.results if r.status == 200}
    assert answered <= set(ids)
    # At most the requests in flight at the kill have rows without an answer.
    assert len(set(ids) - answered) <= 16
