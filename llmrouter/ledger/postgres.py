"""The shared spend ledger: PostgreSQL, for several sidecar replicas writing one ledger.

Same interface and guarantees as :class:`SQLiteLedger`: rows are queued and one
writer thread inserts them in batches off the request path; ``flush()`` waits
for the queue, ``close()`` flushes, ``sync=True`` commits before ``record``
returns.

A batch goes to the server as one JSON array of rows (``orjson`` when installed, else
the standard library) in one ``INSERT … SELECT … FROM jsonb_array_elements(…) ON
CONFLICT (request_id) DO NOTHING``: one statement, so all of it or none commits; one
round trip; and the column values are parsed by the server, not adapted one by one
here (about a fifth of the client CPU of a ``COPY`` with ``write_row``). The statement
skips request ids already stored, so a batch retried after a lost connection (it may
have committed) never duplicates a row. A batch JSON cannot carry exactly (a NaN or
infinite float, a value of another type) is written with ``COPY`` instead, falling back
to ``INSERT … ON CONFLICT DO NOTHING`` row values when it is retried or meets a stored
``request_id``. Migrations are versioned and serialised across replicas with an
advisory lock. psycopg is imported here only, when a policy names a ``postgresql://``
ledger.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from .batching import BatchedLedger
from .record import COLUMNS, CallRecord

__all__ = ["PostgresLedger"]

log = logging.getLogger("llmrouter.ledger")

_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE calls (
        id BIGSERIAL PRIMARY KEY,
        ts DOUBLE PRECISION NOT NULL,
        request_id TEXT NOT NULL,
        backend TEXT NOT NULL,
        provider_model TEXT NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cached_tokens INTEGER NOT NULL DEFAULT 0,
        usage_source TEXT NOT NULL,
        cost_usd DOUBLE PRECISION NOT NULL,
        baseline_cost_usd DOUBLE PRECISION NOT NULL,
        latency_ms DOUBLE PRECISION NOT NULL,
        ttft_ms DOUBLE PRECISION,
        cache TEXT NOT NULL,
        complexity DOUBLE PRECISION,
        decision_reason TEXT NOT NULL,
        outcome TEXT NOT NULL,
        error_kind TEXT,
        fallback_from TEXT,
        attempts INTEGER NOT NULL DEFAULT 1,
        "user" TEXT,
        tags JSONB NOT NULL DEFAULT '[]'::jsonb,
        stream BOOLEAN NOT NULL DEFAULT FALSE,
        tokens_before_compression INTEGER,
        compression_saved_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
        api_key_id TEXT,
        prompt TEXT
    );
    CREATE UNIQUE INDEX calls_request_id ON calls(request_id);
    CREATE INDEX calls_ts ON calls(ts);
    CREATE INDEX calls_backend_ts ON calls(backend, ts);
    """,
    # As in SQLite: no query filters on a backend, and the index cost every insert.
    "DROP INDEX IF EXISTS calls_backend_ts;",
)

_MIGRATION_LOCK = 0x6C6C6D72  # "llmr": one migrating replica at a time

# Versions that only drop an index (a performance cleanup): DROP INDEX takes an ACCESS
# EXCLUSIVE lock on ``calls``, so it waits behind any running query on the table (a long
# report), and every other replica's INSERT queues behind it. Such a version waits at most
# ``_CLEANUP_LOCK_TIMEOUT`` for its lock; if it times out it is skipped, not recorded, and
# tried again at the next start (later versions wait for it).
_CLEANUPS = frozenset({2})
_CLEANUP_LOCK_TIMEOUT = "2s"
_cleanup_logged = False  # a skipped cleanup is logged once per process

# How a JSON row's element becomes a column value (text columns take ``->>`` as it is).
_CASTS = {
    "ts": "double precision",
    "prompt_tokens": "integer",
    "completion_tokens": "integer",
    "cached_tokens": "integer",
    "cost_usd": "double precision",
    "baseline_cost_usd": "double precision",
    "latency_ms": "double precision",
    "ttft_ms": "double precision",
    "complexity": "double precision",
    "attempts": "integer",
    "stream": "boolean",
    "tokens_before_compression": "integer",
    "compression_saved_usd": "double precision",
}
_FLOAT_COLUMNS = tuple(c for c, t in _CASTS.items() if t == "double precision")


def _quoted(column: str) -> str:
    return f'"{column}"'


def _element(index: int, column: str) -> str:
    if column == "tags":
        return f"r->{index}"  # already jsonb
    cast = _CASTS.get(column)
    return f"(r->>{index})::{cast}" if cast else f"r->>{index}"


def _row(r: CallRecord) -> tuple[Any, ...]:
    """A record's values in column order (written out: ``operator.attrgetter`` over 26
    slots costs about twice as much)."""
    return (
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
        r.ttft_ms,
        r.cache,
        r.complexity,
        r.decision_reason,
        r.outcome,
        r.error_kind,
        r.fallback_from,
        r.attempts,
        r.user,
        r.tags,
        r.stream,
        r.tokens_before_compression,
        r.compression_saved_usd,
        r.api_key_id,
        r.prompt,
    )


def _finite(records: list[CallRecord]) -> bool:
    """Whether every float column of the records is finite: their sum is (NaN and the
    infinities carry through a sum; a missing value counts as 0)."""
    total = 0.0
    for r in records:
        total += (
            r.ts
            + r.cost_usd
            + r.baseline_cost_usd
            + r.latency_ms
            + r.compression_saved_usd
            + (r.ttft_ms or 0.0)
            + (r.complexity or 0.0)
        )
    return math.isfinite(total)  # a false alarm (finite values summing past 1e308) only
    # sends the batch as row values


try:
    import orjson

    def _json_rows(records: list[CallRecord]) -> str:
        """The records as one JSON array of arrays. orjson writes NaN and infinities as
        null, so a batch with one is refused (ValueError) rather than stored wrong."""
        if not _finite(records):
            raise ValueError("a float that JSON cannot carry")
        return orjson.dumps(list(map(_row, records))).decode()

except ImportError:  # pragma: no cover - orjson ships with the server extra

    def _json_rows(records: list[CallRecord]) -> str:
        """The records as one JSON array of arrays (the standard library refuses NaN)."""
        return json.dumps(list(map(_row, records)), allow_nan=False, separators=(",", ":"))


class PostgresLedger(BatchedLedger):
    """One row per call in PostgreSQL; safe for many writers (processes and threads)."""

    dialect = "postgres"
    write_errors = (psycopg.Error,)

    def __init__(self, url: str, *, sync: bool = False, retry_s: float = 30.0) -> None:
        super().__init__(sync=sync)
        self.url = _normalise(url)
        self.retry_s = retry_s
        self._migrate()
        columns = ", ".join(_quoted(c) for c in COLUMNS)
        self._insert = (
            f"INSERT INTO calls ({columns}) VALUES ({', '.join('%s' for _ in COLUMNS)}) "
            "ON CONFLICT (request_id) DO NOTHING"
        )
        self._copy = f"COPY calls ({columns}) FROM STDIN"
        elements = ", ".join(_element(i, c) for i, c in enumerate(COLUMNS))
        self._insert_json = (
            f"INSERT INTO calls ({columns}) SELECT {elements} "
            "FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS batch(r, n) ORDER BY n "
            "ON CONFLICT (request_id) DO NOTHING"
        )
        self._idle: list[psycopg.Connection[Any]] = []  # for sync commits and reads
        self._idle_lock = threading.Lock()

    # --- schema ----------------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        # Autocommit: a lone COPY or INSERT commits without a BEGIN/COMMIT round trip;
        # multi-statement work opens an explicit transaction.
        return psycopg.connect(self.url, connect_timeout=10, autocommit=True)

    def _migrate(self) -> None:
        with self._connect() as connection, connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            connection.execute(
                "CREATE TABLE IF NOT EXISTS llmrouter_schema_version (version INTEGER PRIMARY KEY)"
            )
            row = connection.execute("SELECT MAX(version) FROM llmrouter_schema_version").fetchone()
            current = (row[0] if row else None) or 0
            for version, script in enumerate(_MIGRATIONS[current:], start=current + 1):
                if version not in _CLEANUPS:
                    connection.execute(script)
                elif not self._cleanup(connection, version, script):
                    break
                connection.execute("INSERT INTO llmrouter_schema_version VALUES (%s)", (version,))

    @staticmethod
    def _cleanup(connection: psycopg.Connection[Any], version: int, script: str) -> bool:
        """Run a cleanup version (see ``_CLEANUPS``) in a savepoint with a lock timeout; False
        (logged once per process, the transaction still usable) if its lock was not
        granted in time."""
        global _cleanup_logged
        (previous,) = connection.execute("SHOW lock_timeout").fetchone() or ("0",)
        try:
            with connection.transaction():  # a savepoint: a timeout undoes only this
                connection.execute(
                    "SELECT set_config('lock_timeout', %s, true)", (_CLEANUP_LOCK_TIMEOUT,)
                )
                connection.execute(script)
        except psycopg.errors.LockNotAvailable:
            if not _cleanup_logged:
                _cleanup_logged = True
                log.warning(
                    "ledger: PostgreSQL schema version %d (dropping an unused index) skipped: "
                    "another query held the calls table for %s; tried again at the next start",
                    version,
                    _CLEANUP_LOCK_TIMEOUT,
                )
            return False
        connection.execute("SELECT set_config('lock_timeout', %s, true)", (previous,))
        return True

    @property
    def schema_version(self) -> int:
        return len(_MIGRATIONS)

    @contextmanager
    def _borrow(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection from the small idle pool (made on demand, kept when healthy)."""
        with self._idle_lock:
            connection = self._idle.pop() if self._idle else None
        if connection is None or connection.closed:
            connection = self._connect()
        try:
            yield connection
        except psycopg.OperationalError:
            connection.close()
            raise
        with self._idle_lock:
            if len(self._idle) < 8 and not self._closed:
                self._idle.append(connection)
                return
        connection.close()

    # --- writing ---------------------------------------------------------------------------------

    def _write_now(self, values: tuple[Any, ...]) -> None:
        self._insert_with_retry([values], deadline=time.monotonic() + self.retry_s, copy=False)

    @contextmanager
    def _batch_writer(self) -> Iterator[Callable[[list[CallRecord]], None]]:
        yield self._write_batch

    def _write_batch(self, records: list[CallRecord]) -> None:
        """One batch: as JSON when it can carry the values exactly, else as row values."""
        deadline = time.monotonic() + self.retry_s
        try:
            payload = _json_rows(records)
        except (TypeError, ValueError) as exc:
            log.info("ledger: batch written as row values (%s)", exc)
        else:
            try:
                self._retrying(
                    lambda connection, _: connection.execute(self._insert_json, (payload,)),
                    len(records),
                    deadline,
                )
                return
            except psycopg.DataError as exc:  # a value PostgreSQL refuses in JSON (\u0000)
                log.warning("ledger: JSON batch refused (%s); writing it as row values", exc)
        self._insert_with_retry(self._rows(records), deadline)

    def _release(self) -> None:
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _values(self, record: CallRecord) -> tuple[Any, ...]:
        # getattr, not dataclasses.asdict: no deep copy.
        return tuple(
            Jsonb(list(record.tags)) if column == "tags" else getattr(record, column)
            for column in COLUMNS
        )

    def _insert_with_retry(
        self, rows: list[tuple[Any, ...]], deadline: float, copy: bool = True
    ) -> None:
        """Write row values atomically: ``COPY`` first, ``INSERT … ON CONFLICT DO NOTHING``
        once some rows may be stored already (a retry, or a duplicate ``request_id``)."""

        def attempt(connection: psycopg.Connection[Any], retried: bool) -> None:
            nonlocal copy
            if copy and not retried:
                try:
                    self._copy_rows(connection, rows)
                    return
                except psycopg.errors.UniqueViolation:
                    copy = False  # some rows are stored already: insert the others
            self._insert_rows(connection, rows)

        self._retrying(attempt, len(rows), deadline)

    def _retrying(
        self,
        attempt: Callable[[psycopg.Connection[Any], bool], object],
        count: int,
        deadline: float,
    ) -> None:
        """Run ``attempt(connection, retried)``; on a lost connection, reconnect and run it
        again (``retried``: the batch may have committed, so it must skip stored rows) until
        the deadline, then give up loudly."""
        delay = 0.05
        retried = False
        while True:
            try:
                with self._borrow() as connection:
                    attempt(connection, retried)
                return
            except psycopg.OperationalError as exc:
                retried = True
                if time.monotonic() + delay > deadline:
                    log.error("ledger: %d rows not written, PostgreSQL unreachable: %s", count, exc)
                    raise
                log.warning("ledger: PostgreSQL write failed (%s); retrying", exc)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _copy_rows(self, connection: psycopg.Connection[Any], rows: list[tuple[Any, ...]]) -> None:
        with connection.cursor() as cursor, cursor.copy(self._copy) as copy:
            for row in rows:
                copy.write_row(row)

    def _insert_rows(
        self, connection: psycopg.Connection[Any], rows: list[tuple[Any, ...]]
    ) -> None:
        if len(rows) == 1:  # one statement: atomic in autocommit, one round trip
            connection.execute(self._insert, rows[0])
            return
        with connection.transaction(), connection.cursor() as cursor:
            cursor.executemany(self._insert, rows)

    # --- reading ---------------------------------------------------------------------------------

    def rows(self, since: float | None = None, until: float | None = None) -> list[dict[str, Any]]:
        self.flush()
        clauses, args = [], []
        if since is not None:
            clauses.append("ts >= %s")
            args.append(since)
        if until is not None:
            clauses.append("ts < %s")
            args.append(until)
        where = "WHERE " + " AND ".join(clauses) if clauses else ""
        with self._borrow() as connection, connection.cursor(row_factory=dict_row) as cursor:
            cursor.execute(f"SELECT * FROM calls {where} ORDER BY id", args)
            result = [dict(row) for row in cursor]
            connection.rollback()
            return result

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Run a read-only query written with ``?`` placeholders (as reports write them)."""
        self.flush()
        text = sql.replace("%", "%%").replace("?", "%s")
        with self._borrow() as connection, connection.cursor(row_factory=dict_row) as cursor:
            cursor.execute(text, args)
            result = [dict(row) for row in cursor]
            connection.rollback()
            return result


def _normalise(url: str) -> str:
    """libpq accepts postgresql:// and postgres://; SQLAlchemy-style drivers are stripped."""
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url
