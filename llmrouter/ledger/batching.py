"""What every ledger writer shares: rows go into a :class:`RowBuffer` and one thread
commits them in batches, one transaction per batch instead of one per row."""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from ..write_behind import LINGER_S, MAX_BATCH, Marker, RowBuffer
from .record import CallRecord

__all__ = ["LINGER_S", "MAX_BATCH", "BatchedLedger", "RowBuffer"]

log = logging.getLogger("llmrouter.ledger")

Row = tuple[Any, ...]


class BatchedLedger(ABC):
    """What every ledger shares: rows go into a :class:`RowBuffer` and one writer thread
    commits them in batches; ``sync=True`` commits each row before ``record`` returns.

    A subclass says how a row becomes values, how one row is committed at once, and
    how the writer thread commits batches (a context giving a ``write(rows)`` callable,
    so a connection can live as long as the thread).
    """

    #: errors a failed batch raises: logged, never allowed to stop the writer
    write_errors: tuple[type[BaseException], ...] = ()

    def __init__(self, *, sync: bool) -> None:
        self.sync = sync
        self._buffer = RowBuffer()
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        self._closed = False

    @abstractmethod
    def _values(self, record: CallRecord) -> Row: ...

    @abstractmethod
    def _write_now(self, values: Row) -> None: ...

    @abstractmethod
    def _batch_writer(self) -> AbstractContextManager[Callable[[list[Row]], None]]: ...

    def _release(self) -> None:  # noqa: B027 - optional hook, most ledgers hold nothing
        """After the writer stopped: free what the ledger holds (connections)."""

    def record(self, record: CallRecord) -> None:
        if self._closed:
            raise RuntimeError("the ledger is closed")
        values = self._values(record)
        if self.sync:
            self._write_now(values)
            return
        self._ensure_writer()
        self._buffer.put(values)

    def flush(self) -> None:
        """Block until every queued row is committed."""
        if self._writer is not None:
            self._buffer.flush()

    def close(self) -> None:
        """Commit what is queued, stop the writer, release connections; idempotent."""
        if self._closed:
            return
        if self._writer is not None:
            self._buffer.stop()
            self._writer.join()
            self._writer = None
        self._closed = True
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

    def _batches(self) -> Iterator[tuple[list[Row], list[Marker]]]:
        while True:
            yield self._buffer.take()
