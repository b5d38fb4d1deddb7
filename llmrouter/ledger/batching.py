"""The ledger writers' buffer: rows in, batches out, without waking a thread per row.

``put`` is a deque append (no lock, no notification), so recording a call costs the
request path about a microsecond. The writer thread wakes every ``linger_s`` (or at once
when ``flush()``/``close()`` asks) and commits everything buffered in one transaction: one
commit per batch instead of one per row, and no thread switch per request.
``flush()`` puts a marker behind the rows it must see committed and waits for it.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

__all__ = ["LINGER_S", "MAX_BATCH", "RowBuffer"]

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
