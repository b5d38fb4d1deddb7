"""The exact cache's index: which keys its diskcache directory holds, kept in memory.

A :class:`~llmrouter.cache.presence.KeyFilter` answers "certainly not stored" without a
disk read. A thread builds it from the SQLite table, then once a second adds the rows other
processes stored since (by diskcache's indexed ``store_time``, which every write sets: row
ids would miss rows that reuse the ids of deleted ones; this process's own rows carry its
``tag`` and are skipped, its writer added them already), rebuilds it when it fills up and
every five minutes, and culls expired entries and the size limit (on its first pass, then
every 30 s). Until the filter is built, or when it cannot be read, lookups read the disk.

The thread holds no reference to the cache that owns the index, so an owner dropped
without ``close()`` stops it; a forked child starts its own on first use.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from .presence import KeyFilter

__all__ = ["KeyIndex"]

logger = logging.getLogger("llmrouter")

_TICK_S = 1.0  # how often rows stored by other processes are read
_REBUILD_EVERY_S = 300.0  # a fresh filter sheds keys that expired or were evicted
_CULL_EVERY_S = 30.0  # expired entries and the size limit, off the write path
# A write's store_time is taken before its transaction commits (writers batch for ~20 ms):
# each look goes back this far before the newest time seen.
_OVERLAP_S = 0.5


class KeyIndex:
    def __init__(self, cache: Any, db_path: Path) -> None:
        self._cache = cache  # the diskcache.Cache (for culling)
        self._db_path = db_path
        self.filter: KeyFilter | None = None
        #: counts the filters built: a key added under an older one must be added again
        self.generation = 0
        #: the diskcache tag this process's writes carry (random: pids repeat across hosts)
        self.tag = _new_tag()
        self._newest = 0.0  # the latest store_time the filter has seen
        self.ready = threading.Event()  # set once the filter first covers the disk
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()
        self.ensure_running()

    def ensure_running(self) -> None:
        """Start the thread unless it runs (or ran: ``stop()`` is final)."""
        with self._starting:
            if self._thread is not None:
                return
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stop,), name="llmrouter-cache-index", daemon=True
            )
            self._thread.start()

    def may_hold(self, key: str) -> bool:
        known = self.filter
        return known is None or key in known

    def add(self, key: str) -> None:
        known = self.filter
        if known is not None:
            known.add(key)

    def stop(self, wait: bool = True) -> None:
        self._stop.set()
        thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()

    def after_fork(self) -> None:
        """In a forked child the thread is gone: read the disk until a new one has built a
        filter of the child's own."""
        self.filter = None
        self.generation += 1
        self.tag = _new_tag()  # the parent's rows are another process's now
        self._newest = 0.0
        self.ready = threading.Event()
        self._starting = threading.Lock()  # another thread may have held it at the fork
        self._thread = None

    # --- the thread ----------------------------------------------------------------------

    def _run(self, stop: threading.Event) -> None:
        connection: sqlite3.Connection | None = None
        built = last_cull = time.monotonic()
        first, failing = True, False
        while not stop.is_set():
            if first or time.monotonic() - last_cull >= _CULL_EVERY_S:
                last_cull = time.monotonic()
                self.cull()
            try:
                if connection is None:
                    connection = sqlite3.connect(self._db_path, check_same_thread=False)
                    connection.execute("PRAGMA query_only = 1")
                    # It scans, never revisits: a page cache would only hold memory (2 MB).
                    connection.execute("PRAGMA cache_size = -64")
                now = time.monotonic()
                known = self.filter
                if first or known is None or known.full or now - built >= _REBUILD_EVERY_S:
                    self._rebuild(connection)
                    built = now
                else:
                    self._catch_up(connection, known)
                self.ready.set()
                failing = False
            except (sqlite3.Error, OSError) as exc:
                self.filter = None
                if not failing:  # once per outage, not every second
                    logger.warning("exact cache index unavailable, lookups read the disk: %s", exc)
                failing = True
                if connection is not None:
                    connection.close()
                    connection = None
            first = False
            stop.wait(_TICK_S)
        if connection is not None:
            connection.close()

    def _rebuild(self, connection: sqlite3.Connection) -> None:
        (rows,) = connection.execute("SELECT COUNT(*) FROM Cache").fetchone()
        fresh = KeyFilter(rows + rows // 2)  # room to grow by half before the next rebuild
        newest = 0.0
        for key, stored in connection.execute("SELECT key, store_time FROM Cache"):
            if isinstance(key, str):
                fresh.add(key)
            if stored is not None and stored > newest:
                newest = stored
        self._newest = newest
        self.filter = fresh
        self.generation += 1
        # Rows stored while the filter was built (and puts made meanwhile, which went to the
        # old filter) are newer: add them now, this process's own too (the scan may have
        # missed a row its writer stored after the put saw the old generation).
        self._catch_up(connection, fresh, skip_own=False)

    def _catch_up(
        self, connection: sqlite3.Connection, known: KeyFilter, skip_own: bool = True
    ) -> None:
        """Add the rows other processes stored (or stored again) since the last look."""
        (newest,) = connection.execute("SELECT MAX(store_time) FROM Cache").fetchone()
        since = self._newest - _OVERLAP_S
        rows = (
            connection.execute(
                "SELECT key FROM Cache WHERE store_time >= ? AND tag IS NOT ?", (since, self.tag)
            )
            if skip_own
            else connection.execute("SELECT key FROM Cache WHERE store_time >= ?", (since,))
        ).fetchall()
        for (key,) in rows:
            if isinstance(key, str):
                known.add(key)
        if newest is not None and newest > self._newest:
            self._newest = newest

    def cull(self) -> None:
        """Remove expired entries and evict down to the size limit (diskcache's cull)."""
        try:
            self._cache.cull()
        except Exception as exc:  # a busy or full disk: try again next time
            logger.warning("exact cache cull failed: %s", exc)


def _new_tag() -> int:
    """A random 63-bit integer (SQLite's INTEGER), new in every process."""
    return int.from_bytes(os.urandom(8), "big") >> 1
