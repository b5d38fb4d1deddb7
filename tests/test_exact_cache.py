"""The exact cache's write-behind: answers are readable at once, stored in batches off the
request path, durable after flush() and close(), and a failing disk loses only that batch."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from llmrouter.cache.exact import ExactCache


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
    real_set = cache._cache.set
    failing = {"on": True}

    def set_or_fail(key: str, value: object, expire: float | None = None) -> bool:
        if failing["on"]:
            raise OSError("No space left on device")
        return bool(real_set(key, value, expire=expire))

    monkeypatch.setattr(cache._cache, "set", set_or_fail)
    cache.put("lost", answer(1))
    cache.flush()
    assert "1 entries dropped: No space left on device" in caplog.text
    assert cache.get("lost") is None
    failing["on"] = False
    cache.put("kept", answer(2))
    cache.flush()
    assert cache._cache.get("kept") == answer(2)
    cache.close()
