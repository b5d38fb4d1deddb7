"""The SQLite ledger: batched writes lose nothing; reports add up."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from llmrouter.ledger import CallRecord, SQLiteLedger, spend_report


def record(i: int, backend: str = "small", cache: str = "miss") -> CallRecord:
    return CallRecord(
        ts=time.time(),
        request_id=f"req_{i}",
        backend=backend,
        provider_model="m",
        prompt_tokens=10,
        completion_tokens=5,
        cached_tokens=0,
        usage_source="provider",
        cost_usd=0.0 if cache == "hit" else 0.001,
        baseline_cost_usd=0.01,
        latency_ms=1.0,
        ttft_ms=None,
        cache=cache,
        complexity=0.1,
        decision_reason="test",
        outcome="ok",
        tags=["a", "b"],
    )


def test_rows_survive_close_from_many_threads(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")

    def write(start: int) -> None:
        for i in range(start, start + 250):
            ledger.record(record(i))

    threads = [threading.Thread(target=write, args=(k * 1000,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ledger.close()
    reopened = SQLiteLedger(tmp_path / "l.db")
    rows = reopened.rows()
    assert len(rows) == 1000
    assert len({r["request_id"] for r in rows}) == 1000
    assert rows[0]["tags"] == ["a", "b"]


def test_sync_mode_commits_before_returning(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db", sync=True)
    ledger.record(record(1))
    other = SQLiteLedger(tmp_path / "l.db")
    assert len(other.rows()) == 1


def test_duplicate_request_id_is_not_written_twice(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    ledger.record(record(1))
    ledger.record(record(1))
    assert len(ledger.rows()) == 1


def test_report_totals_and_savings(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    for i in range(3):
        ledger.record(record(i))
    ledger.record(record(10, backend="large", cache="hit"))
    report = spend_report(ledger)
    assert report.calls == 4 and report.cache_hits == 1
    assert report.cost_usd == pytest.approx(0.003)
    assert report.baseline_cost_usd == pytest.approx(0.04)
    assert report.cache_saved_usd == pytest.approx(0.01)
    assert report.routing_saved_usd == pytest.approx(0.04 - 0.003 - 0.01)
    assert {b["key"] for b in report.by_backend} == {"small", "large"}
    later = spend_report(ledger, since=time.time() + 60)
    assert later.calls == 0


def test_schema_is_versioned(tmp_path: Path) -> None:
    import sqlite3

    SQLiteLedger(tmp_path / "l.db")
    SQLiteLedger(tmp_path / "l.db")  # re-opening does not re-run migrations
    versions = sqlite3.connect(tmp_path / "l.db").execute("SELECT version FROM schema_version")
    assert [v for (v,) in versions] == [1, 2]


def test_a_version_1_ledger_is_migrated_in_place(tmp_path: Path) -> None:
    import sqlite3

    from llmrouter.ledger.sqlite import _MIGRATIONS

    db = tmp_path / "l.db"
    with sqlite3.connect(db) as connection:  # a ledger made by the first release
        connection.executescript(_MIGRATIONS[0])
        connection.execute("CREATE TABLE schema_version (version INTEGER)")
        connection.execute("INSERT INTO schema_version VALUES (1)")
    ledger = SQLiteLedger(db)
    ledger.record(record(1))
    rows = ledger.rows()
    ledger.close()
    with sqlite3.connect(db) as connection:
        versions = [v for (v,) in connection.execute("SELECT version FROM schema_version")]
        indexes = {
            n for (n,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
    assert versions == [1, 2]
    assert "calls_backend_ts" not in indexes and {"calls_request_id", "calls_ts"} <= indexes
    assert [r["request_id"] for r in rows] == ["req_1"]


def test_many_rows_in_one_batch_keep_their_order_values_and_skip_duplicates(
    tmp_path: Path,
) -> None:
    # More rows than one multi-row INSERT takes, a duplicate among them, tags and streams.
    ledger = SQLiteLedger(tmp_path / "l.db")
    ids = [*range(70), 5, *range(70, 100)]
    for i in ids:
        item = record(i)
        item.tags = [f"t{i}"] if i % 2 else []
        item.stream = bool(i % 3 == 0)
        item.cost_usd = 0.1 + i / 3
        ledger.record(item)
    rows = ledger.rows()
    ledger.close()
    assert [r["request_id"] for r in rows] == [f"req_{i}" for i in range(100)]
    assert [r["tags"] for r in rows] == [[f"t{i}"] if i % 2 else [] for i in range(100)]
    assert [r["stream"] for r in rows] == [i % 3 == 0 for i in range(100)]
    assert [r["cost_usd"] for r in rows] == [0.1 + i / 3 for i in range(100)]


def test_a_value_sqlite_cannot_store_loses_only_its_row(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    for i in range(10):
        item = record(i)
        if i == 4:
            item.user = {"not": "a string"}  # type: ignore[assignment]
        ledger.record(item)
    rows = ledger.rows()
    ledger.close()
    assert [r["request_id"] for r in rows] == [f"req_{i}" for i in range(10) if i != 4]
    assert "req_4 cannot be stored" in caplog.text


def test_missing_and_zero_values_round_trip(tmp_path: Path) -> None:
    # The batch writer sends no None: missing texts and numbers must still come back None,
    # and "0", 0 and 0.0 must stay what they were.
    ledger = SQLiteLedger(tmp_path / "l.db")
    given = []
    for i in range(40):
        item = record(i)
        if i % 2:
            item.error_kind, item.fallback_from, item.user = "0", "", "alice"
            item.api_key_id, item.prompt = "KEY", "0"
            item.ttft_ms, item.complexity, item.tokens_before_compression = 0.0, 0.0, 0
        else:
            item.complexity = None
        given.append(item)
        ledger.record(item)
    rows = ledger.rows()
    ledger.close()
    columns = (
        "error_kind",
        "fallback_from",
        "user",
        "api_key_id",
        "prompt",
        "ttft_ms",
        "complexity",
        "tokens_before_compression",
    )
    for row, item in zip(rows, given, strict=True):
        for column in columns:
            value = getattr(item, column)
            assert row[column] == value and type(row[column]) is type(value), column


def test_ledgers_opened_together_migrate_once(tmp_path: Path) -> None:
    """Workers (``--workers N``) open the same new ledger at once: one migrates, the
    others wait for it and find the schema current."""
    import sqlite3

    for trial in range(10):
        db = tmp_path / f"ledger{trial}.db"
        barrier = threading.Barrier(8)
        errors: list[BaseException] = []

        def open_ledger(
            db: Path = db,
            barrier: threading.Barrier = barrier,
            errors: list[BaseException] = errors,
        ) -> None:
            barrier.wait()
            try:
                SQLiteLedger(db).close()
            except BaseException as exc:  # collected: the assertion below reports it
                errors.append(exc)

        threads = [threading.Thread(target=open_ledger) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        with sqlite3.connect(db) as connection:
            versions = [v for (v,) in connection.execute("SELECT version FROM schema_version")]
        ledger = SQLiteLedger(db)
        assert versions == list(range(1, ledger.schema_version + 1))
        ledger.close()


def test_every_column_round_trips_in_its_place(tmp_path: Path) -> None:
    # The batch writer lays each row's values out column by column, written out by hand:
    # every field, each with a value no other field has, must come back in its column.
    ledger = SQLiteLedger(tmp_path / "l.db")
    item = CallRecord(
        ts=1.5,
        request_id="req_x",
        backend="b",
        provider_model="pm",
        prompt_tokens=2,
        completion_tokens=3,
        cached_tokens=4,
        usage_source="provider",
        cost_usd=5.5,
        baseline_cost_usd=6.5,
        latency_ms=7.5,
        ttft_ms=8.5,
        cache="miss",
        complexity=0.25,
        decision_reason="why",
        outcome="fallback",
        error_kind="timeout",
        fallback_from="a",
        attempts=9,
        user="u",
        tags=["t1", "t2"],
        stream=True,
        tokens_before_compression=10,
        compression_saved_usd=11.5,
        api_key_id="KEY",
        prompt="hello",
    )
    ledger.record(item)
    (row,) = ledger.rows()
    ledger.close()
    row.pop("id")
    assert row == item.as_row()
