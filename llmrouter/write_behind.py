"""Write-behind for the request path: items in, batches out, without waking a thread per item.

``put`` is the deque's own ``append`` (no Python frame, no lock, no notification), so the
request path pays a fraction of a microsecond. The writer thread wakes every ``linger_s``
(or at once when ``flush()`` or ``stop()`` asks) and handles everything buffered as one
batch: one transaction per batch instead of one per item, and no thread switch per
request (a thread woken per request takes the GIL whenever the request thread releases
it). Used by the ledgers, the exact cache and the Redis budget settlements. ``flush()``
puts a marker behind the items it must see handled and waits for it.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["LINGER_S", "MAX_BATCH", "Marker", "RowBuffer"]

LINGER_S = 0.02
MAX_BATCH = 500


class Marker:
    """A place in the buffer: ``done`` is set once everything before it is handled."""

    __slots__ = ("done", "stop")

    def __init__(self, stop: bool = False) -> None:
        self.done = threading.Event()
        self.stop = stop


class RowBuffer:
    """Items from any thread in, batches out to one writer thread."""

    def __init__(self, linger_s: float = LINGER_S, max_rows: int = MAX_BATCH) -> None:
        self.linger_s = linger_s
        self.max_rows = max_rows
        self._items: deque[Any] = deque()
        self._wake = threading.Event()
        #: add an item (any thread): the deque's C ``append``, not a Python method around it
        self.put: Callable[[Any], None] = self._items.append

    def flush(self) -> None:
        """Return once every row put before this call is committed (or failed, logged)."""
        marker = Marker()
        self._items.append(marker)
        self._wake.set()
        marker.done.wait()

    def stop(self) -> Marker:
        """Ask the writer to commit what is left and exit; wait on the returned marker."""
        marker = Marker(stop=True)
        self._items.append(marker)
        self._wake.set()
        return marker

    def take(self) -> tuple[list[Any], list[Marker]]:
        """(Writer) the next batch of rows, and the markers reached with it."""
        if len(self._items) < self.max_rows:
            self._wake.wait(self.linger_s)
        self._wake.clear()
        rows: list[Any] = []
        markers: list[Marker] = []
        while len(rows) < self.max_rows:
            try:
                item = self._items.popleft()
            except IndexError:
                break
            if isinstance(item, Marker):
                markers.append(item)
                if item.stop:
                    break
            else:
                rows.append(item)
        if len(rows) >= self.max_rows:
            self._wake.set()  # more are waiting (perhaps a flush marker): no lingering
        return rows, markers

    @staticmethod
    def settle(markers: list[Marker]) -> bool:
        """(Writer) after committing a batch: release its markers; True if told to stop."""
        stop = False
        for marker in markers:
            marker.done.set()
            stop = stop or marker.stop
        return stop
