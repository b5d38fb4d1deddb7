"""The embedded spend ledger: SQLite in WAL mode, written off the request path.

Rows go into a buffer; one writer thread inserts them in batches. ``flush()``
waits until everything queued is on disk, and ``close()`` flushes, so a clean
shutdown never loses a row. ``sync=True`` commits before ``record`` returns.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .batching import BatchedLedger
from .record import COLUMNS, CallRecord

__all__ = ["SQLiteLedger"]


_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE calls (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        request_id TEXT NOT NULL,
        backend TEXT NOT NULL,
        provider_model TEXT NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cached_tokens INTEGER NOT NULL DEFAULT 0,
        usage_source TEXT NOT NULL,
        cost_usd REAL NOT NULL,
        baseline_cost_usd REAL NOT NULL,
        latency_ms REAL NOT NULL,
        ttft_ms REAL,
        cache TEXT NOT NULL,
        complexity REAL,
        decision_reason TEXT NOT NULL,
        outcome TEXT NOT NULL,
        error_kind TEXT,
        fallback_from TEXT,
        attempts INTEGER NOT NULL DEFAULT 1,
        user TEXT,
        tags TEXT NOT NULL DEFAULT '[]',
        stream INTEGER NOT NULL DEFAULT 0,
        tokens_before_compression INTEGER,
        compression_saved_usd REAL NOT NULL DEFAULT 0,
        api_key_id TEXT,
        prompt TEXT
    );
    CREATE UNIQUE INDEX calls_request_id ON calls(request_id);
    CREATE INDEX calls_ts ON calls(ts);
    CREATE INDEX calls_backend_ts ON calls(backend, ts);
    """,
)

_TAGS, _STREAM = COLUMNS.index("tags"), COLUMNS.index("stream")


class SQLiteLedger(BatchedLedger):
    dialect = "sqlite"
    write_errors = (sqlite3.Error,)

    def __init__(self, path: str | Path, *, sync: bool = False) -> None:
        super().__init__(sync=sync)
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate()
        self._insert = (
            f"INSERT OR IGNORE INTO calls ({', '.join(COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in COLUMNS)})"
        )

    # --- schema ----------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    def _migrate(self) -> None:
        with self._connect() as connection:
            connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
            row = connection.execute("SELECT MAX(version) FROM schema_version").fetchone()
            current = row[0] or 0
            for version, script in enumerate(_MIGRATIONS[current:], start=current + 1):
                connection.executescript(script)
                connection.execute("INSERT INTO schema_version VALUES (?)", (version,))
        connection.close()

    @property
    def schema_version(self) -> int:
        return len(_MIGRATIONS)

    # --- writing ---------------------------------------------------------------------------------

    def _values(self, record: CallRecord) -> tuple[Any, ...]:
        # getattr, not dataclasses.asdict: asdict deep-copies every field (~50 µs a row).
        row = [getattr(record, column) for column in COLUMNS]
        row[_TAGS] = json.dumps(record.tags) if record.tags else "[]"
        row[_STREAM] = int(record.stream)
        return tuple(row)

    def _write_now(self, values: tuple[Any, ...]) -> None:
        with self._connect() as connection:
            connection.execute(self._insert, values)
        connection.close()

    @contextmanager
    def _batch_writer(self) -> Iterator[Callable[[list[tuple[Any, ...]]], None]]:
        connection = self._connect()
        # Rows append at the end of every index (time-ordered ids and timestamps): a small
        # page cache serves that, and keeps a long-running sidecar's memory flat.
        connection.execute("PRAGMA cache_size=-512")

        def write(rows: list[tuple[Any, ...]]) -> None:
            with connection:
                connection.executemany(self._insert, rows)

        try:
            yield write
        finally:
            connection.close()

    # --- reading ---------------------------------------------------------------------------------

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        connection = self._connect()
        connection.row_factory = sqlite3.Row
        try:
            yield connection
        finally:
            connection.close()

    def rows(self, since: float | None = None, until: float | None = None) -> list[dict[str, Any]]:
        self.flush()
        where, args = _window(since, until)
        with self._reader() as connection:
            cursor = connection.execute(f"SELECT * FROM calls {where} ORDER BY id", args)
            result = []
            for row in cursor:
                item = dict(row)
                item["tags"] = json.loads(item["tags"])
                item["stream"] = bool(item["stream"])
                result.append(item)
            return result

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Run a read-only aggregate query (used by reports)."""
        self.flush()
        with self._reader() as connection:
            return [dict(row) for row in connection.execute(sql, args)]


def _window(since: float | None, until: float | None) -> tuple[str, tuple[Any, ...]]:
    clauses = []
    args: list[Any] = []
    if since is not None:
        clauses.append("ts >= ?")
        args.append(since)
    if until is not None:
        clauses.append("ts < ?")
        args.append(until)
    return ("WHERE " + " AND ".join(clauses) if clauses else "", tuple(args))
