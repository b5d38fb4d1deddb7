"""The PostgreSQL ledger: same guarantees as SQLite, shared by replicas, idempotent retries,
and reports that agree with SQLite's row for row."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from services import fresh_database

from llmrouter.ledger import CallRecord, SQLiteLedger, open_ledger, spend_report
from llmrouter.ledger.postgres import PostgresLedger
from llmrouter.ledger.report import group_rows
from llmrouter.policy.schema import LedgerConfig

DAY = 86_400.0
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def record(i: int, **overrides: object) -> CallRecord:
    fields: dict[str, object] = {
        "ts": T0 + (i % 3) * DAY + i,
        "request_id": f"req_{i}",
        "backend": ("small", "large")[i % 2],
        "provider_model": "m",
        "prompt_tokens": 10 + i,
        "completion_tokens": 5,
        "cached_tokens": 0,
        "usage_source": "provider",
        "cost_usd": 0.001 * (i % 5 + 1),
        "baseline_cost_usd": 0.01,
        "latency_ms": 1.0 + i,
        "ttft_ms": None,
        "cache": "hit" if i % 7 == 0 else "miss",
        "complexity": 0.1,
        "decision_reason": "test",
        "outcome": "ok" if i % 11 else "error",
        "user": ("alice", "bob", None)[i % 3],
        "api_key_id": ("TEAM_A_KEY", "TEAM_B_KEY")[i % 2],
        "tags": [["a", "b"], ["b"], []][i % 3],
        "stream": bool(i % 2),
        "compression_saved_usd": 0.0001 if i % 4 == 0 else 0.0,
    }
    fields.update(overrides)
    return CallRecord(**fields)  # type: ignore[arg-type]


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


def test_open_ledger_chooses_postgres_by_url(pg_url: str) -> None:
    ledger = open_ledger(LedgerConfig(url=pg_url))
    assert isinstance(ledger, PostgresLedger)
    ledger.close()
    other = open_ledger(LedgerConfig(url=pg_url.replace("postgresql://", "postgres://", 1)))
    assert isinstance(other, PostgresLedger)
    other.close()


def test_migrations_are_versioned_and_run_once(pg_url: str) -> None:
    first = PostgresLedger(pg_url)
    first.record(record(1))
    first.close()
    second = PostgresLedger(pg_url)  # reopening must neither fail nor wipe rows
    assert len(second.rows()) == 1
    second.close()
    with psycopg.connect(pg_url) as connection:
        versions = connection.execute("SELECT version FROM llmrouter_schema_version").fetchall()
    assert versions == [(1,), (2,)]


def test_concurrent_replicas_migrate_safely(pg_url: str) -> None:
    errors: list[BaseException] = []
    ledgers: list[PostgresLedger] = []

    def open_one() -> None:
        try:
            ledgers.append(PostgresLedger(pg_url))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for ledger in ledgers:
        ledger.close()


def test_an_index_cleanup_never_waits_long_behind_a_running_query(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Schema version 2 only drops an index, which needs the calls table to itself: while a
    long query reads the table, replicas starting (several at once) skip it after the lock
    timeout instead of hanging (with every other replica's INSERT queued behind them), and
    the next start after the query ends applies it."""
    from llmrouter.ledger import postgres

    monkeypatch.setattr(postgres, "_CLEANUP_LOCK_TIMEOUT", "200ms")
    with psycopg.connect(pg_url, autocommit=True) as connection:  # a version-1 ledger
        connection.execute(postgres._MIGRATIONS[0])
        connection.execute("CREATE TABLE llmrouter_schema_version (version INTEGER PRIMARY KEY)")
        connection.execute("INSERT INTO llmrouter_schema_version VALUES (1)")
    report = psycopg.connect(pg_url)  # a report in progress: its transaction reads calls
    report.execute("SELECT count(*) FROM calls").fetchone()
    ledgers: list[PostgresLedger] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            ledger = PostgresLedger(pg_url, sync=True)
            ledger.record(record(threading.get_ident() % 1_000_000))  # committed on return
            ledgers.append(ledger)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=start, daemon=True) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        assert not errors
        assert len(ledgers) == 3  # all started and wrote while the report ran
    finally:
        report.rollback()
        report.close()

    def state() -> tuple[list[tuple[int]], object]:
        with psycopg.connect(pg_url) as connection:
            versions = connection.execute(
                "SELECT version FROM llmrouter_schema_version ORDER BY version"
            ).fetchall()
            (index,) = connection.execute("SELECT to_regclass('calls_backend_ts')").fetchone()
        return versions, index

    assert state() == ([(1,)], "calls_backend_ts")  # skipped, not recorded
    for ledger in ledgers:
        ledger.close()
    PostgresLedger(pg_url).close()  # the next start, the report over: applied
    assert state() == ([(1,), (2,)], None)


def test_rows_round_trip_with_their_types(pg_url: str) -> None:
    ledger = PostgresLedger(pg_url)
    ledger.record(record(1))
    rows = ledger.rows()
    ledger.close()
    assert len(rows) == 1
    row = rows[0]
    assert row["tags"] == ["b"]
    assert row["stream"] is True
    assert row["user"] == "bob"
    assert row["api_key_id"] == "TEAM_B_KEY"
    assert row["cost_usd"] == pytest.approx(0.002)


def test_close_flushes_every_row_from_many_threads(pg_url: str) -> None:
    ledger = PostgresLedger(pg_url)

    def write(start: int) -> None:
        for i in range(start, start + 500):
            ledger.record(record(i))

    threads = [threading.Thread(target=write, args=(k * 10_000,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ledger.close()
    reopened = PostgresLedger(pg_url)
    rows = reopened.rows()
    reopened.close()
    assert len(rows) == 2000
    assert len({r["request_id"] for r in rows}) == 2000


def test_a_retried_batch_never_duplicates(pg_url: str) -> None:
    ledger = PostgresLedger(pg_url)
    for i in range(100):
        ledger.record(record(i))
    ledger.flush()
    for i in range(50, 150):  # the same request ids again, as a retry after a crash would
        ledger.record(record(i))
    ledger.close()
    with psycopg.connect(pg_url) as connection:
        count = connection.execute("SELECT COUNT(*), COUNT(DISTINCT request_id) FROM calls")
        assert count.fetchone() == (150, 150)


def test_a_duplicate_inside_one_batch_keeps_the_rest_of_it(pg_url: str) -> None:
    # Queued together, these reach one COPY, which a duplicate fails as a whole: the batch
    # must then go in row by row, skipping only the duplicate.
    ledger = PostgresLedger(pg_url)
    for i in (1, 2, 2, 3):
        ledger.record(record(i))
    ledger.close()
    reopened = PostgresLedger(pg_url)
    rows = reopened.rows()
    reopened.close()
    assert sorted(r["request_id"] for r in rows) == ["req_1", "req_2", "req_3"]
    assert [r["tags"] for r in sorted(rows, key=lambda r: r["request_id"])] == [
        ["b"],
        [],
        ["a", "b"],
    ]


def test_batch_values_round_trip_exactly(pg_url: str, caplog: pytest.LogCaptureFixture) -> None:
    # Batches travel as JSON: every float must come back bit for bit, ints and texts as is.
    import logging
    import random

    caplog.set_level(logging.INFO, logger="llmrouter.ledger")
    rng = random.Random(7)
    ledger = PostgresLedger(pg_url)
    sent = []
    for i in range(300):
        item = record(
            i,
            ts=T0 + rng.random() * 1e7,
            cost_usd=rng.random() * 10 ** rng.randint(-12, 2),
            latency_ms=rng.random() * 1e4,
            ttft_ms=rng.choice([None, rng.random()]),
            complexity=rng.choice([None, rng.random()]),
            user=rng.choice([None, 'quote " back\\slash ünï ✓', "x"]),
            tokens_before_compression=rng.choice([None, 2**31 - 1]),
        )
        sent.append(item)
        ledger.record(item)
    rows = ledger.rows()
    ledger.close()
    assert len(rows) == 300
    for row, item in zip(rows, sent, strict=True):
        for column in ("ts", "cost_usd", "latency_ms", "ttft_ms", "complexity", "user"):
            assert row[column] == getattr(item, column), column
        assert row["tokens_before_compression"] == item.tokens_before_compression
        assert row["tags"] == item.tags and row["stream"] is item.stream
    assert "row values" not in caplog.text  # all of it went as JSON


def test_values_json_cannot_carry_are_stored_as_they_are(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NaN (JSON has no NaN) and a float subclass JSON encoders refuse: the batch goes in as
    # row values instead, nothing lost or changed.
    import logging
    import math

    import numpy as np

    caplog.set_level(logging.INFO, logger="llmrouter.ledger")
    ledger = PostgresLedger(pg_url)
    ledger.record(record(1, ttft_ms=float("nan")))
    ledger.record(record(2, complexity=np.float64(0.25)))
    ledger.record(record(3))
    rows = ledger.rows()
    ledger.close()
    assert [r["request_id"] for r in rows] == ["req_1", "req_2", "req_3"]
    assert math.isnan(rows[0]["ttft_ms"])
    assert rows[1]["complexity"] == 0.25
    assert "written as row values" in caplog.text


def test_writer_reconnects_after_the_connection_is_killed(pg_url: str) -> None:
    ledger = PostgresLedger(pg_url)
    for i in range(50):
        ledger.record(record(i))
    ledger.flush()
    database = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )
    for i in range(50, 120):
        ledger.record(record(i))
    ledger.close()
    reopened = PostgresLedger(pg_url)
    assert len(reopened.rows()) == 120
    reopened.close()


def test_sync_mode_commits_before_returning(pg_url: str) -> None:
    ledger = PostgresLedger(pg_url, sync=True)
    ledger.record(record(1))
    with psycopg.connect(pg_url) as connection:
        assert connection.execute("SELECT COUNT(*) FROM calls").fetchone() == (1,)
    ledger.close()


def _both(pg_url: str, tmp_path: Path, n: int = 60) -> tuple[SQLiteLedger, PostgresLedger]:
    lite, pg = SQLiteLedger(tmp_path / "l.db"), PostgresLedger(pg_url)
    for i in range(n):
        lite.record(record(i))
        pg.record(record(i))
    lite.flush()
    pg.flush()
    return lite, pg


def _canonical(rows: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return [tuple(round(v, 9) if isinstance(v, float) else v for v in row.values()) for row in rows]


@pytest.mark.parametrize("group", ["backend", "day", "user", "tag", "key", "outcome"])
def test_reports_agree_with_sqlite(pg_url: str, tmp_path: Path, group: str) -> None:
    lite, pg = _both(pg_url, tmp_path)
    try:
        assert _canonical(group_rows(pg, group)) == _canonical(group_rows(lite, group))
        window = (T0 + DAY, T0 + 2 * DAY)
        assert _canonical(group_rows(pg, group, *window)) == _canonical(
            group_rows(lite, group, *window)
        )
    finally:
        lite.close()
        pg.close()


def test_report_totals_and_savings_sources(pg_url: str, tmp_path: Path) -> None:
    lite, pg = _both(pg_url, tmp_path)
    rows = lite.rows()
    try:
        report = spend_report(pg, by="tag")
        assert report.calls == 60
        assert report.cost_usd == pytest.approx(sum(r["cost_usd"] for r in rows))
        hits = [r for r in rows if r["cache"] == "hit"]
        assert report.cache_hits == len(hits)
        assert report.cache_saved_usd == pytest.approx(sum(r["baseline_cost_usd"] for r in hits))
        assert report.compression_saved_usd == pytest.approx(
            sum(r["compression_saved_usd"] for r in rows)
        )
        assert report.routing_saved_usd == pytest.approx(
            report.saved_usd - report.cache_saved_usd - report.compression_saved_usd
        )
        tags = {g["key"]: g["calls"] for g in report.groups}
        assert tags == {"a": 20, "b": 40}
        assert [d["key"] for d in report.by_day] == ["2026-01-01", "2026-01-02", "2026-01-03"]
    finally:
        lite.close()
        pg.close()


def test_cli_spend_by_key_as_csv(pg_url: str, tmp_path: Path) -> None:
    ledger = PostgresLedger(pg_url)
    for i in range(10):
        ledger.record(record(i))
    ledger.close()
    policy = {
        "backends": [
            {
                "name": "small",
                "base_url": "http://127.0.0.1:9/v1",
                "model": "m",
                "price": {"input_per_million": 1, "output_per_million": 2},
                "context_window": 4096,
            }
        ],
        "cache": {"enabled": False},
        "ledger": {"url": pg_url},
    }
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    out = subprocess.run(
        [sys.executable, "-m", "llmrouter", "spend", "--policy", str(path), "--by", "key", "--csv"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    table = list(csv.DictReader(io.StringIO(out)))
    assert [row["key"] for row in table] == ["TEAM_A_KEY", "TEAM_B_KEY", "total"]
    assert [int(row["calls"]) for row in table] == [5, 5, 10]
    total = sum(0.001 * (i % 5 + 1) for i in range(10))
    assert float(table[-1]["cost_usd"]) == pytest.approx(total)


def test_every_float_column_that_json_cannot_carry_is_caught() -> None:
    # The JSON batch checks finiteness by summing the float columns, written out by hand:
    # a NaN or an infinity in any of them (and only those) must send the batch as values.
    from llmrouter.ledger.postgres import _FLOAT_COLUMNS, _finite

    assert _finite([record(1), record(2)])
    for column in _FLOAT_COLUMNS:
        for bad in (float("nan"), float("inf"), float("-inf")):
            item = record(3)
            setattr(item, column, bad)
            assert not _finite([record(1), item]), column
