"""The ledger writers' buffer: rows in, batches out, without waking a thread per row.

``put`` is a deque append (no lock, no notification), so recording a call costs the
request path about a microsecond. The writer thread wakes every ``linger_s`` (or at once
when ``flush()``/``close()`` asks) and commits everything buffered in one transaction: one
commit per batch instead of one per row, and no thread switch per request.
``flush()`` puts a marker behind the rows it must see committed and waits for it.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from .record import CallRecord

__all__ = ["LINGER_S", "MAX_BATCH", "BatchedLedger", "RowBuffer"]

log = logging.getLogger("llmrouter.ledger")

LINGER_S = 0.02
MAX_BATCH = 500


class _Marker:
    __slots__ = ("done", "stop")

    def __init__(self, stop: bool = False) -> None:
        self.done = threading.Event()
        self.stop = stop


class RowBuffer:
    def __init__(self, linger_s: float = LINGER_S, max_rows: int = MAX_BATCH) -> None:
        self.linger_s = linger_s
        self.max_rows = max_rows
        self._items: deque[Any] = deque()
        self._wake = threading.Event()

    def put(self, row: Any) -> None:
        self._items.append(row)

    def flush(self) -> None:
        """Return once every row put before this call is committed (or failed, logged)."""
        marker = _Marker()
        self._items.append(marker)
        self._wake.set()
        marker.done.wait()

    def stop(self) -> _Marker:
        """Ask the writer to commit what is left and exit; wait on the returned marker."""
        marker = _Marker(stop=True)
        self._items.append(marker)
        self._wake.set()
        return marker

    def take(self) -> tuple[list[Any], list[_Marker]]:
        """(Writer) the next batch of rows, and the markers reached with it."""
        if len(self._items) < self.max_rows:
            self._wake.wait(self.linger_s)
        self._wake.clear()
        rows: list[Any] = []
        markers: list[_Marker] = []
        while len(rows) < self.max_rows:
            try:
                item = self._items.popleft()
            except IndexError:
                break
            if isinstance(item, _Marker):
                markers.append(item)
                if item.stop:
                    break
            else:
                rows.append(item)
        if len(rows) >= self.max_rows:
            self._wake.set()  # more are waiting (perhaps a flush marker): no lingering
        return rows, markers

    @staticmethod
    def settle(markers: list[_Marker]) -> bool:
        """(Writer) after committing a batch: release its markers; True if told to stop."""
        stop = False
        for marker in markers:
            marker.done.set()
            stop = stop or marker.stop
        return stop


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

    def _batches(self) -> Iterator[tuple[list[Row], list[_Marker]]]:
        while True:
            yield self._buffer.take()
