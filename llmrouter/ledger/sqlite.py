"""The embedded spend ledger: SQLite in WAL mode, written off the request path.

Rows go into a buffer; one writer thread inserts them in batches. ``flush()``
waits until everything queued is on disk, and ``close()`` flushes, so a clean
shutdown never loses a row. ``sync=True`` commits before ``record`` returns.
"""

from __future__ import annotations

import json
import logging
import operator
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .batching import BatchedLedger
from .record import COLUMNS, CallRecord

__all__ = ["SQLiteLedger"]

log = logging.getLogger("llmrouter.ledger")


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
    # No query filters on a backend: reports group by it over a time window, which the ts
    # index serves (SQLite used this index instead, scanning all of it for any window),
    # and keeping a fourth B-tree cost every row ~5k instructions (~12%) to write.
    """
    DROP INDEX IF EXISTS calls_backend_ts;
    """,
)

_TAGS = COLUMNS.index("tags")
_BEFORE_TAGS = operator.attrgetter(*COLUMNS[:_TAGS])  # one C call for many columns
_AFTER_TAGS = operator.attrgetter(*COLUMNS[_TAGS + 1 :])
# Rows per INSERT statement in the batch writer: one statement for many rows costs SQLite
# less than a statement per row (and releases the GIL once, not once per row); 32 x 26
# parameters stays under the 999 that SQLite before 3.32 allowed. A remainder goes in
# binary pieces: each size is a prepared statement the connection keeps (a 32-row one is
# ~100 KB of VDBE program), so six sizes hold ~0.4 MB where one per size 1-32 held ~3 MB.
_CHUNK_SIZES = (32, 16, 8, 4, 2, 1)
# Binding None or a bool costs sqlite3 ~15x an int, float or str: it asks the adapter
# registry and raises and clears two AttributeErrors (formatted messages included) per
# value. So the batch writer binds no None and no bool: a missing text is sent as 0 and
# turned back into NULL by NULLIF(?, 0) (these columns hold text, never the integer 0); a
# missing number is sent as NaN, which SQLite stores as NULL (as it stores a NaN).
_NULLABLE_TEXT = ("error_kind", "fallback_from", "user", "api_key_id", "prompt")
_NULLABLE_NUMBER = ("ttft_ms", "complexity", "tokens_before_compression")
_NAN = float("nan")
# What a value SQLite cannot bind raises (the type, or an integer out of range).
_BAD_VALUE = (
    TypeError,
    ValueError,
    OverflowError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
)


def _use_wal(connection: sqlite3.Connection, attempts: int = 250) -> None:
    """Switch to WAL. Several processes opening a new file at once can find it locked here:
    SQLite answers busy at once for this pragma instead of waiting, so it is retried (the
    switch is stored in the file: once done, the pragma only reads it)."""
    for attempt in range(attempts):
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.02)


def _statements(script: str) -> list[str]:
    """A migration script's statements, whole (``sqlite3.complete_statement`` decides where
    one ends, so a ';' inside a string or a trigger body does not cut it)."""
    statements, pending = [], ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n\t;"):
                statements.append(pending)
            pending = ""
    return statements


class SQLiteLedger(BatchedLedger):
    dialect = "sqlite"
    write_errors = (sqlite3.Error,)

    def __init__(self, path: str | Path, *, sync: bool = False) -> None:
        super().__init__(sync=sync)
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate()
        self._insert = _insert_sql(1)
        self._inserts = {rows: _insert_sql(rows) for rows in _CHUNK_SIZES}

    # --- schema ----------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        _use_wal(connection)
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    def _migrate(self) -> None:
        """Apply the missing migrations in one write transaction: processes starting
        together (``--workers N``, replicas on one disk) take turns, and the later ones
        find the schema current (``executescript`` would commit first: no lock held)."""
        connection = self._connect()
        connection.isolation_level = None  # transactions are explicit here
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
            row = connection.execute("SELECT MAX(version) FROM schema_version").fetchone()
            current = row[0] or 0
            for version, script in enumerate(_MIGRATIONS[current:], start=current + 1):
                for statement in _statements(script):
                    connection.execute(statement)
                connection.execute("INSERT INTO schema_version VALUES (?)", (version,))
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        finally:
            connection.close()

    @property
    def schema_version(self) -> int:
        return len(_MIGRATIONS)

    # --- writing ---------------------------------------------------------------------------------

    def _values(self, record: CallRecord) -> tuple[Any, ...]:
        # attrgetter, not dataclasses.asdict (which deep-copies every field). ``stream`` is
        # a bool, which sqlite3 stores as the integer 0 or 1.
        tags = record.tags
        return (
            *_BEFORE_TAGS(record),
            json.dumps(tags) if tags else "[]",
            *_AFTER_TAGS(record),
        )

    def _write_now(self, values: tuple[Any, ...]) -> None:
        with self._connect() as connection:
            connection.execute(self._insert, values)
        connection.close()

    @contextmanager
    def _batch_writer(self) -> Iterator[Callable[[list[CallRecord]], None]]:
        connection = self._connect()
        # Rows append at the end of every index (time-ordered ids and timestamps): a small
        # page cache serves that, and keeps a long-running sidecar's memory flat.
        connection.execute("PRAGMA cache_size=-512")

        def write(records: list[CallRecord]) -> None:
            try:
                with connection:
                    for start, rows in _chunks(len(records)):
                        chunk = records[start : start + rows]
                        connection.execute(self._inserts[rows], _flat_values(chunk))
            except _BAD_VALUE:
                # A value SQLite cannot take (the batch was rolled back): row by row, so
                # only the rows that cannot be stored are lost, each logged.
                with connection:
                    for record in records:
                        try:
                            connection.execute(self._insert, self._values(record))
                        except _BAD_VALUE:
                            log.exception("ledger: row %s cannot be stored", record.request_id)

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


def _insert_sql(rows: int) -> str:
    one = ", ".join("NULLIF(?, 0)" if c in _NULLABLE_TEXT else "?" for c in COLUMNS)
    values = ", ".join([f"({one})"] * rows)
    return f"INSERT OR IGNORE INTO calls ({', '.join(COLUMNS)}) VALUES {values}"


def _chunks(count: int) -> Iterator[tuple[int, int]]:
    """(start, rows) pieces of a batch of ``count`` records, each a size in ``_CHUNK_SIZES``:
    full chunks, then the remainder in binary pieces (27 = 16 + 8 + 2 + 1)."""
    start = 0
    for rows in _CHUNK_SIZES:
        while count - start >= rows:
            yield start, rows
            start += rows


def _flat_values(records: list[CallRecord]) -> list[Any]:
    """The records' values, one after another, for a multi-row INSERT: tags as JSON, no
    None and no bool (see ``_NULLABLE_TEXT``). Written out column by column: a loop over
    columns, or slices of the flat list per column, costs several times as much."""
    flat: list[Any] = []
    add = flat.extend
    nan = _NAN
    for r in records:
        tags = r.tags
        add(
            (
                r.ts,
                r.request_id,
                r.backend,
                r.provider_model,
                r.prompt_tokens,
                r.completion_tokens,
                r.cached_tokens,
                r.usage_source,
                r.cost_usd,
                r.baseline_cost_usd,
                r.latency_ms,
                nan if r.ttft_ms is None else r.ttft_ms,
                r.cache,
                nan if r.complexity is None else r.complexity,
                r.decision_reason,
                r.outcome,
                0 if r.error_kind is None else r.error_kind,
                0 if r.fallback_from is None else r.fallback_from,
                r.attempts,
                0 if r.user is None else r.user,
                json.dumps(tags) if tags else "[]",
                1 if r.stream else 0,
                nan if r.tokens_before_compression is None else r.tokens_before_compression,
                r.compression_saved_usd,
                0 if r.api_key_id is None else r.api_key_id,
                0 if r.prompt is None else r.prompt,
            )
        )
    return flat


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
