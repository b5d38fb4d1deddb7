"""The exact cache's write-behind: answers are readable at once, stored in batches off the
request path, durable after flush() and close(), and a failing disk loses only that batch."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llmrouter.cache import exact
from llmrouter.cache.exact import ExactCache
from llmrouter.cache.presence import KeyFilter


def answer(n: int) -> dict[str, object]:
    return {"id": f"chatcmpl-{n}", "choices": [{"message": {"content": f"answer {n}"}}]}


def test_a_put_is_readable_before_it_is_written(tmp_path: Path) -> None:
    cache = ExactCache(tmp_path, ttl_s=None)
    cache.put("k", answer(1))
    assert cache.get("k") == answer(1)
    cache.close()


def test_flush_and_close_make_every_put_durable(tmp_path: Path) -> None:
    cache = ExactCache(tmp_path, ttl_s=None)
    for n in range(300):
        cache.put(f"k{n}", answer(n))
    cache.flush()
    assert cache._pending == {}  # all stored, none left in memory
    for n in range(300, 350):
        cache.put(f"k{n}", answer(n))
    cache.close()
    reopened = ExactCache(tmp_path, ttl_s=None)
    assert [reopened.get(f"k{n}") for n in range(350)] == [answer(n) for n in range(350)]
    assert len(reopened) == 350
    reopened.close()


def test_the_latest_put_of_a_key_wins(tmp_path: Path) -> None:
    cache = ExactCache(tmp_path, ttl_s=None)
    cache.put("k", answer(1))
    cache.put("k", answer(2))
    cache.flush()
    cache.put("k", answer(3))
    cache.close()
    reopened = ExactCache(tmp_path, ttl_s=None)
    assert reopened.get("k") == answer(3)
    reopened.close()


def test_puts_from_many_threads_all_land(tmp_path: Path) -> None:
    cache = ExactCache(tmp_path, ttl_s=None)

    def fill(start: int) -> None:
        for n in range(start, start + 100):
            cache.put(f"k{n}", answer(n))

    threads = [threading.Thread(target=fill, args=(start,)) for start in range(0, 800, 100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cache.flush()
    assert len(cache) == 800
    cache.close()


def test_a_failing_write_is_logged_and_later_writes_still_land(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cache = ExactCache(tmp_path, ttl_s=None)
    real_set_many = exact.set_many
    failing = {"on": True}

    def set_many_or_fail(*args: Any) -> None:
        if failing["on"]:
            raise OSError("No space left on device")
        real_set_many(*args)

    monkeypatch.setattr(exact, "set_many", set_many_or_fail)
    cache.put("lost", answer(1))
    cache.flush()
    assert "1 entries dropped: No space left on device" in caplog.text
    assert cache.get("lost") is None
    failing["on"] = False
    cache.put("kept", answer(2))
    cache.flush()
    assert cache._cache.get("kept") == answer(2)
    cache.close()


# --- the key filter: misses skip the disk, other processes' entries are still found ---------


def test_the_key_filter_never_forgets_a_key_and_rarely_claims_one() -> None:
    known = KeyFilter(expected_keys=20_000)
    stored = [f"{n:064x}" for n in range(20_000)]
    for key in stored:
        known.add(key)
    assert all(key in known for key in stored)
    claimed = sum(f"other-{n}" in known for n in range(20_000))
    assert claimed < 0.02 * 20_000
    assert not known.full
    for n in range(known.capacity):
        known.add(f"more-{n}")
    assert known.full


def wait_until(check: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def test_a_miss_does_not_read_the_disk_once_indexed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = ExactCache(tmp_path, ttl_s=None)
    cache.put("stored", answer(1))
    cache.flush()
    assert cache.indexed.wait(5)
    reads: list[str] = []
    real_get = cache._cache.get

    def counted(key: str, default: object = None) -> object:
        reads.append(key)
        return real_get(key, default)

    monkeypatch.setattr(cache._cache, "get", counted)
    assert [cache.get(f"new-{n}") for n in range(200)] == [None] * 200
    assert len(reads) <= 10  # only the filter's rare false positives go to disk
    assert cache.get("stored") == answer(1)
    assert reads[-1] == "stored"
    cache.close()


def test_entries_another_process_stores_are_found(tmp_path: Path) -> None:
    reader = ExactCache(tmp_path, ttl_s=None)
    assert reader.indexed.wait(5)
    writer = ExactCache(tmp_path, ttl_s=None)  # stands in for another worker on the same disk
    writer.put("from-elsewhere", answer(7))
    writer.flush()
    assert wait_until(lambda: reader.get("from-elsewhere") == answer(7))
    writer.close()
    reader.close()


def test_a_clear_elsewhere_then_new_entries_are_found(tmp_path: Path) -> None:
    reader = ExactCache(tmp_path, ttl_s=None)
    writer = ExactCache(tmp_path, ttl_s=None)
    for n in range(50):
        writer.put(f"old-{n}", answer(n))
    writer.flush()
    assert wait_until(lambda: reader.get("old-49") == answer(49))
    writer.clear()  # row ids start again from 1: below what the reader has seen
    writer.put("after-clear", answer(99))
    writer.flush()
    assert wait_until(lambda: reader.get("after-clear") == answer(99))
    assert reader.get("old-3") is None
    writer.close()
    reader.close()


def test_expired_entries_are_culled_by_the_index_thread(tmp_path: Path) -> None:
    cache = ExactCache(tmp_path, ttl_s=0.05)
    for n in range(20):
        cache.put(f"k{n}", answer(n))
    cache.flush()
    assert len(cache._cache) == 20
    time.sleep(0.1)
    assert cache.get("k1") is None  # expired: never served
    cache._index.cull()
    assert len(cache._cache) == 0
    cache.close()


def test_a_row_id_reused_after_a_clear_elsewhere_is_noticed(tmp_path: Path) -> None:
    """SQLite hands out max(rowid)+1: after a clear, new rows reuse ids the reader has seen."""
    reader = ExactCache(tmp_path, ttl_s=None)
    writer = ExactCache(tmp_path, ttl_s=None)
    for n in range(5):
        writer.put(f"before-{n}", answer(n))
    writer.flush()
    assert wait_until(lambda: reader.get("before-4") == answer(4))
    writer.clear()
    for n in range(5):  # exactly as many rows: the same ids, no id above what was seen
        writer.put(f"after-{n}", answer(10 + n))
    writer.flush()
    assert wait_until(lambda: all(reader.get(f"after-{n}") == answer(10 + n) for n in range(5)))
    writer.close()
    reader.close()


def test_entries_stored_into_reused_row_ids_are_found(tmp_path: Path) -> None:
    """Deleting the newest rows and storing again reuses their row ids, even with the same
    key in the last one: the index follows store times, not row ids."""
    reader = ExactCache(tmp_path, ttl_s=None)
    writer = ExactCache(tmp_path, ttl_s=None)
    for key in ("a", "b", "c"):
        writer.put(key, answer(1))
    writer.flush()
    assert wait_until(lambda: reader.get("c") == answer(1))
    writer._cache.delete("b")  # an eviction or expiry in the other process
    writer._cache.delete("c")
    writer.put("d", answer(4))
    writer.flush()
    writer.put("c", answer(3))
    writer.flush()
    assert wait_until(lambda: reader.get("d") == answer(4))
    writer.close()
    reader.close()


def test_catching_up_skips_the_rows_this_process_stored(tmp_path: Path) -> None:
    """Its writer put them in the filter already; another cache's rows are read."""
    mine = ExactCache(tmp_path, ttl_s=None)
    other = ExactCache(tmp_path, ttl_s=None)
    mine.put("mine", answer(1))
    other.put("other", answer(2))
    mine.flush()
    other.flush()
    fresh = KeyFilter()
    index = mine._index
    index._newest = 0.0
    connection = sqlite3.connect(index._db_path)
    index._catch_up(connection, fresh)
    connection.close()
    assert "other" in fresh and "mine" not in fresh
    assert index._newest > 0.0  # it still advances past its own rows
    mine.close()
    other.close()


def test_a_key_put_before_a_rebuild_is_added_to_the_new_filter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = ExactCache(tmp_path, ttl_s=None)
    assert cache.indexed.wait(5)
    store = cache._store

    def rebuilt_then_store(batch: list[tuple[str, dict[str, object], int]]) -> None:
        # A rebuild that read the disk after the put, before the answer was stored.
        cache._index.filter = KeyFilter()
        cache._index.generation += 1
        store(batch)  # type: ignore[arg-type]

    monkeypatch.setattr(cache, "_store", rebuilt_then_store)
    cache.put("pending", answer(1))
    cache.flush()
    assert cache._index.filter is not None and "pending" in cache._index.filter
    cache.close()


def test_an_answer_stored_while_the_filter_is_rebuilt_is_in_the_new_filter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Put and stored after the rebuild's scan began, before it published the filter: the
    scan cannot see the row and the writer saw no new generation; the rebuild's own
    catch-up must add it (it does not skip this process's rows)."""
    import llmrouter.cache.index as index_module

    cache = ExactCache(tmp_path, ttl_s=None)
    for n in range(5):
        cache.put(f"old-{n}", answer(n))
    cache.flush()
    assert cache.indexed.wait(5)
    index = cache._index
    index.stop()  # the rebuild is driven by hand below, as the thread runs it
    stored: list[bool] = []

    class FilterStoringMeanwhile(KeyFilter):
        def add(self, key: str) -> None:
            if not stored:  # the scan's first row: meanwhile an answer is put and written
                stored.append(True)
                writer = threading.Thread(
                    target=lambda: (cache.put("new", answer(9)), cache.flush())
                )
                writer.start()
                writer.join()
            super().add(key)

    monkeypatch.setattr(index_module, "KeyFilter", FilterStoringMeanwhile)
    connection = sqlite3.connect(index._db_path)
    index._rebuild(connection)
    connection.close()
    assert stored and cache._pending.get("new") is None  # on disk, no longer pending
    assert cache.get("new") == answer(9)
    cache.close()


def test_a_rebuild_published_during_a_put_gets_the_key_again(tmp_path: Path) -> None:
    """The put added the key to the old filter; the writer must add it to the new one."""
    cache = ExactCache(tmp_path, ttl_s=None)
    assert cache.indexed.wait(5)
    index = cache._index
    add = index.add

    def add_then_rebuild(key: str) -> None:
        add(key)  # into the filter being replaced
        index.filter = KeyFilter()
        index.generation += 1

    index.add = add_then_rebuild  # type: ignore[method-assign]
    cache.put("raced", answer(1))
    index.add = add  # type: ignore[method-assign]
    cache.flush()
    assert index.filter is not None and "raced" in index.filter
    cache.close()


def test_the_size_limit_holds_for_short_lived_processes(tmp_path: Path) -> None:
    big = {"id": "x", "text": "y" * 20_000}
    for run in range(4):  # each "process" stores ~2 MB and closes within a second
        cache = ExactCache(tmp_path, ttl_s=None, max_size_mb=1)
        for n in range(100):
            cache.put(f"run{run}-{n}", big)
        cache.close()
    reopened = ExactCache(tmp_path, ttl_s=None, max_size_mb=1)
    assert reopened._cache.volume() < 3 * 1024 * 1024
    reopened.close()


def test_a_cache_dropped_without_close_stops_its_index_thread(tmp_path: Path) -> None:
    import gc

    def index_threads() -> int:
        return sum(t.name == "llmrouter-cache-index" for t in threading.enumerate())

    baseline = index_threads()
    for n in range(5):
        ExactCache(tmp_path / str(n), ttl_s=None).get("k")
    gc.collect()
    assert wait_until(lambda: index_threads() == baseline)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_finds_entries_stored_after_the_fork(tmp_path: Path) -> None:
    cache = ExactCache(tmp_path, ttl_s=None)
    assert cache.indexed.wait(5)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: wait for the parent's store, then look it up
        os.close(write)
        os.read(read, 1)
        found = wait_until(lambda: cache.get("after-fork") == answer(5))
        cache.put("from-child", answer(6))
        cache.flush()
        os._exit(0 if found else 1)
    os.close(read)
    other = ExactCache(tmp_path, ttl_s=None)  # stands in for another process
    other.put("after-fork", answer(5))
    other.flush()
    os.write(write, b"x")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert wait_until(lambda: cache.get("from-child") == answer(6))
    other.close()
    cache.close()


def test_a_writer_that_falls_behind_drops_entries_instead_of_growing_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import llmrouter.cache.exact as exact

    monkeypatch.setattr(exact, "_MAX_PENDING", 50)
    cache = ExactCache(tmp_path, ttl_s=None)
    release = threading.Event()
    real_store = cache._store

    def stuck_store(batch: list[tuple[str, dict[str, object]]]) -> None:
        release.wait(10)  # a disk that stalls
        real_store(batch)

    monkeypatch.setattr(cache, "_store", stuck_store)
    for n in range(200):
        cache.put(f"k{n}", answer(n))
    assert len(cache._pending) == 50
    assert caplog.text.count("dropping new entries") == 1
    release.set()
    cache.flush()
    assert cache.get("k49") == answer(49) and cache.get("k50") is None
    cache.put("later", answer(7))  # caught up: stored again
    assert cache.get("later") == answer(7)
    cache.close()
