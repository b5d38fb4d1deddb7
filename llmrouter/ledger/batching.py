"""What every ledger writer shares: records go into a :class:`RowBuffer` and one thread
commits them in batches, one transaction per batch instead of one per row.

The request path only appends the :class:`CallRecord` it was given; turning records into
column values happens in the writer, a batch at a time. That work is the same either way,
but done in a tight loop over a batch it costs a fraction of what it costs spread over
requests, each of which finds the code and data it needs cold in the CPU caches.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from ..write_behind import LINGER_S, MAX_BATCH, Marker, RowBuffer
from .record import CallRecord

__all__ = ["LEDGER_LINGER_S", "LINGER_S", "MAX_BATCH", "BatchedLedger", "RowBuffer"]

log = logging.getLogger("llmrouter.ledger")

# How long a row may wait for others before the writer commits them (``flush()`` and
# ``close()`` do not wait). Each commit costs the writer thread a wake-up, a transaction
# and the pages it rewrites: SQLite pays ~47k instructions a row in batches of 27, ~40k in
# batches of 135 (what 50 ms gathers at 2,700 requests/s). The price: a ``kill -9`` loses
# at most this much of the rows (``ledger.sync: true`` loses none).
LEDGER_LINGER_S = 0.05

Row = tuple[Any, ...]


class BatchedLedger(ABC):
    """What every ledger shares: records go into a :class:`RowBuffer` and one writer thread
    commits them in batches; ``sync=True`` commits each row before ``record`` returns.

    A subclass says how a record becomes values, how one row is committed at once, and
    how the writer thread commits batches (a context giving a ``write(records)`` callable,
    so a connection can live as long as the thread).
    """

    #: errors a failed batch raises: logged, never allowed to stop the writer
    write_errors: tuple[type[BaseException], ...] = ()

    def __init__(self, *, sync: bool) -> None:
        self.sync = sync
        self._buffer = RowBuffer(linger_s=LEDGER_LINGER_S)
        self._put = self._buffer.put
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        self._closed = False

    @abstractmethod
    def _values(self, record: CallRecord) -> Row: ...

    @abstractmethod
    def _write_now(self, values: Row) -> None: ...

    @abstractmethod
    def _batch_writer(self) -> AbstractContextManager[Callable[[list[CallRecord]], None]]: ...

    def _release(self) -> None:  # noqa: B027 - optional hook, most ledgers hold nothing
        """After the writer stopped: free what the ledger holds (connections)."""

    def record(self, record: CallRecord) -> None:
        """Queue one call's row (or, with ``sync``, commit it now). The ledger takes the
        record over: it is read when its batch is written, so it must not change after."""
        if self._closed:
            raise RuntimeError("the ledger is closed")
        if self.sync:
            self._write_now(self._values(record))
            return
        if self._writer is None:
            self._ensure_writer()
        self._put(record)

    def flush(self) -> None:
        """Block until every queued row is committed."""
        if self._writer is not None:
            self._buffer.flush()

    def close(self) -> None:
        """Commit what is queued, stop the writer, release connections; idempotent."""
        if self._closed:
            return
        self._closed = True  # first: a record() racing with close() fails, it is not lost
        if self._writer is not None:
            self._buffer.stop()
            self._writer.join()
            self._writer = None
        self._release()

    def _ensure_writer(self) -> None:
        if self._writer is not None:
            return
        with self._writer_lock:
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_loop, name="llmrouter-ledger", daemon=True
                )
                self._writer.start()

    def _write_loop(self) -> None:
        with self._batch_writer() as write:
            for rows, markers in self._batches():
                try:
                    if rows:
                        write(rows)
                except self.write_errors:  # keep writing later rows; flush() must not hang
                    log.exception("ledger: a batch of %d rows could not be written", len(rows))
                finally:
                    stop = self._buffer.settle(markers)
                if stop:
                    return

    def _rows(self, records: list[CallRecord]) -> list[Row]:
        """(Writer) the records' values; a record that cannot be converted (a value of a
        type the database cannot take) is logged and left out, the others are written."""
        values = self._values
        try:
            return [values(record) for record in records]
        except (TypeError, ValueError):
            rows = []
            for record in records:
                try:
                    rows.append(values(record))
                except (TypeError, ValueError):
                    log.exception("ledger: row %s cannot be stored; dropped", record.request_id)
            return rows

    def _batches(self) -> Iterator[tuple[list[CallRecord], list[Marker]]]:
        while True:
            yield self._buffer.take()
