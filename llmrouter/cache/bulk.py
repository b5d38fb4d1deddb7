"""Many new entries into a diskcache ``Cache`` in one statement, as ``set`` would store them.

``Cache.set`` costs ~57 µs an entry even inside one transaction: per entry a SELECT for an
existing row, then an INSERT, and its Python around them (key and value conversion, a
nested transaction, the cull check). The exact cache stores a batch of answers at a time,
nearly all under keys never stored. ``set_many`` inserts the batch with one
``executemany`` of the INSERT ``set`` runs, skipping keys already present (diskcache's
triggers keep its count and size settings): ~24 µs an entry. What that cannot do as
``set`` does goes to ``set``: a key already present (its old row may own a file to clean
up; found only when the insert skipped some), a value diskcache would keep in a file
(≥ ``min_file_size`` pickled), a key or value of another type than ``str`` / ``dict``.

It writes diskcache's table layout (5.x: ``key, raw, store_time, expire_time,
access_time, access_count, tag, size, mode, filename, value``); the tests compare its rows
with ``set``'s, and a ``Cache`` without the connection attribute it uses gets ``set``.
"""

from __future__ import annotations

import pickle
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

__all__ = ["set_many"]

_INSERT = (
    "INSERT INTO Cache(key, raw, store_time, expire_time, access_time, access_count, tag,"
    " size, mode, filename, value) VALUES (?, 1, ?, ?, ?, 0, ?, 0, ?, NULL, ?)"
    " ON CONFLICT(key, raw) DO NOTHING"
)
_LOOKUP_CHUNK = 500  # keys per lookup query: under SQLite's oldest 999-parameter limit


def set_many(
    cache: Any,
    items: Iterable[tuple[str, dict[str, Any]]],
    expire: float | None,
    tag: str | int | None,
) -> None:
    """``cache.set(key, value, expire=expire, tag=tag)`` for every item, in order (the last
    value of a repeated key wins). Call it inside ``with cache.transact():``, so that no
    other process writes between the insert and the replacement of the keys it skipped."""
    latest = dict(items)
    connection = getattr(cache, "_con", None)
    if connection is None:  # not the diskcache this was written against
        for key, value in latest.items():
            cache.set(key, value, expire=expire, tag=tag)
        return
    from diskcache.core import MODE_PICKLE

    disk = cache.disk
    protocol, limit = disk.pickle_protocol, disk.min_file_size
    now = time.time()
    expire_time = None if expire is None else now + expire
    rows = []
    slow = []
    dumps, binary = pickle.dumps, sqlite3.Binary
    for key, value in latest.items():
        if type(key) is str and type(value) is dict:
            data = dumps(value, protocol=protocol)
            if len(data) < limit:
                rows.append((key, now, expire_time, now, tag, MODE_PICKLE, binary(data)))
                continue
        slow.append((key, value))
    if rows and connection.executemany(_INSERT, rows).rowcount != len(rows):
        # Some keys were present: ``set`` replaces their rows (and any file they own).
        skipped = _not_written(connection, [row[0] for row in rows], now)
        slow += [(key, latest[key]) for key in skipped]
    for key, value in slow:
        cache.set(key, value, expire=expire, tag=tag)


def _not_written(connection: sqlite3.Connection, keys: list[str], now: float) -> list[str]:
    """Which of ``keys`` (text keys: diskcache stores them raw) hold a row stored before
    ``now``: the ones the insert skipped."""
    found: list[str] = []
    for start in range(0, len(keys), _LOOKUP_CHUNK):
        chunk = keys[start : start + _LOOKUP_CHUNK]
        marks = ",".join("?" * len(chunk))
        query = f"SELECT key FROM Cache WHERE raw = 1 AND key IN ({marks}) AND store_time != ?"
        found += (row[0] for row in connection.execute(query, (*chunk, now)))
    return found
