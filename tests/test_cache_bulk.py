"""``set_many`` stores what ``Cache.set`` stores, row for row, and hands ``set`` what it cannot."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import diskcache
import pytest

from llmrouter.cache.bulk import set_many

COLUMNS = "key, raw, expire_time - store_time, access_count, tag, size, mode, filename, value"


def _cache(path: Path) -> diskcache.Cache:
    return diskcache.Cache(str(path), cull_limit=0)


def _rows(cache: diskcache.Cache) -> list[tuple[Any, ...]]:
    rows = cache._sql(f"SELECT {COLUMNS} FROM Cache ORDER BY key").fetchall()
    return [(*row[:2], round(row[2], 3), *row[3:]) for row in rows]


def _settings(cache: diskcache.Cache) -> dict[str, Any]:
    rows = cache._sql("SELECT key, value FROM Settings WHERE key IN ('count', 'size')")
    return dict(rows.fetchall())


def _answer(i: int, text: str = "hello") -> dict[str, Any]:
    return {"id": f"chatcmpl-{i}", "choices": [{"message": {"content": f"{text} {i}"}}]}


def test_new_keys_are_stored_as_set_stores_them(tmp_path: Path) -> None:
    items = [(f"key-{i:03d}", _answer(i)) for i in range(40)]
    by_set, by_many = _cache(tmp_path / "set"), _cache(tmp_path / "many")
    with by_set.transact():
        for key, value in items:
            by_set.set(key, value, expire=60, tag="t1")
    with by_many.transact():
        set_many(by_many, items, 60, "t1")
    assert _rows(by_many) == _rows(by_set)
    assert _settings(by_many) == _settings(by_set) == {"count": 40, "size": 0}
    assert by_many.get("key-007") == _answer(7)
    assert len(by_many) == 40
    by_set.close()
    by_many.close()


def test_present_keys_are_replaced_and_counted_once(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    cache.set("old", _answer(1, "stale"), expire=0.01, tag="other")
    cache.set("kept", _answer(2))
    time.sleep(0.05)  # "old" has expired; its row is still there (nothing culled)
    with cache.transact():
        set_many(cache, [("old", _answer(1, "fresh")), ("new", _answer(3))], 60, "t1")
    assert cache.get("old") == _answer(1, "fresh")
    assert cache.get("new") == _answer(3)
    assert cache.get("kept") == _answer(2)
    assert _settings(cache)["count"] == 3
    tags = dict(cache._sql("SELECT key, tag FROM Cache").fetchall())
    assert tags == {"old": "t1", "new": "t1", "kept": None}
    cache.close()


def test_the_last_value_of_a_repeated_key_wins(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    with cache.transact():
        set_many(cache, [("k", _answer(1)), ("j", _answer(2)), ("k", _answer(3))], None, None)
    assert cache.get("k") == _answer(3)
    assert len(cache) == 2
    expire = cache._sql("SELECT expire_time FROM Cache WHERE key = 'k'").fetchone()[0]
    assert expire is None
    cache.close()


def test_large_values_and_other_types_go_through_set(tmp_path: Path) -> None:
    cache = diskcache.Cache(str(tmp_path), cull_limit=0, disk_min_file_size=1024)
    big = _answer(1, "x" * 4000)  # pickled, over the 1 KiB file threshold: diskcache files it
    cache.set("big", _answer(0, "an older large answer " + "y" * 4000))
    old_file = cache._sql("SELECT filename FROM Cache WHERE key = 'big'").fetchone()[0]
    assert old_file is not None
    with cache.transact():
        set_many(cache, [("big", big), ("text", "plain"), ("small", _answer(2))], 60, "t")  # type: ignore[list-item]
    assert cache.get("big") == big
    assert cache.get("text") == "plain"
    assert cache.get("small") == _answer(2)
    new_file = cache._sql("SELECT filename FROM Cache WHERE key = 'big'").fetchone()[0]
    assert new_file is not None and new_file != old_file
    assert not (tmp_path / old_file).exists()  # set cleaned up the replaced row's file
    assert (tmp_path / new_file).exists()
    cache.close()


def test_a_cache_without_the_connection_it_uses_gets_set(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, Any, Any, Any]] = []

    class Other:
        def set(self, key: str, value: Any, expire: Any = None, tag: Any = None) -> None:
            calls.append((key, value, expire, tag))

    set_many(Other(), [("a", {"x": 1}), ("b", {"x": 2}), ("a", {"x": 3})], 5.0, "t")
    assert calls == [("a", {"x": 3}, 5.0, "t"), ("b", {"x": 2}, 5.0, "t")]
