"""Shared state through Redis: the exact cache, circuit breakers and latency estimates that
two replicas see alike."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from canned_upstream import CannedUpstream
from services import fresh_redis
from test_budgets import HELLO, make_router

from llmrouter.shared.cache import RedisExactCache
from llmrouter.shared.health import SharedCircuitBreaker
from llmrouter.shared.latency import SharedLatencyTracker


@pytest.fixture
def shared() -> Iterator[tuple[str, str]]:
    with fresh_redis() as pair:
        yield pair


@pytest.fixture
def client(shared: tuple[str, str]) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(shared[0])
    yield connection
    connection.close()


def test_a_cached_answer_is_a_hit_on_the_other_replica(
    tmp_path: Path, shared: tuple[str, str]
) -> None:
    upstream = CannedUpstream().start()
    url, prefix = shared
    routers = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        routers.append(
            make_router(
                folder,
                upstream.base_url,
                [],
                cache={"path": str(folder / "cache")},
                shared_state={"redis_url": url, "key_prefix": prefix},
            )
        )
    a, b = routers
    try:
        first = a.complete(HELLO)
        second = b.complete(HELLO)
        assert first.router.cache == "miss"
        assert second.router.cache == "hit"
        assert second.router.cost_usd == 0.0
        assert second.choices[0].message.content == first.choices[0].message.content
        assert upstream.app.calls == 1
        assert isinstance(a.cache, RedisExactCache) and len(a.cache) == 1
    finally:
        a.close()
        b.close()
        upstream.stop()


def test_cache_entries_carry_the_ttl(client: redis.Redis, shared: tuple[str, str]) -> None:
    cache = RedisExactCache(client, shared[1], ttl_s=60)
    cache.put("k", {"answer": 1})
    assert cache.get("k") == {"answer": 1}
    assert 0 < client.ttl(f"{shared[1]}:cache:k") <= 60
    assert cache.get("missing") is None
    cache.clear()
    assert len(cache) == 0


def _breakers(client: redis.Redis, prefix: str, clock: list[float]) -> list[SharedCircuitBreaker]:
    return [
        SharedCircuitBreaker(
            client, prefix, ["x", "y"], 3, reset_after_s=10, refresh_s=0, clock=lambda: clock[0]
        )
        for _ in range(2)
    ]


def test_failures_on_one_replica_open_the_circuit_for_both(
    client: redis.Redis, shared: tuple[str, str]
) -> None:
    now = [1000.0]
    a, b = _breakers(client, shared[1], now)
    a.record_failure("x")
    b.record_failure("x")
    assert a.allows("x") and b.state("x") == "closed"
    b.record_failure("x")  # the third consecutive failure, counted across replicas
    assert a.state("x") == "open" and not a.allows("x")
    assert not b.allows("x")
    assert a.allows("y")  # other backends are untouched
    now[0] += 11
    assert a.state("x") == "half-open"
    assert a.allows("x") and b.allows("x")
    a.begin("x")  # replica a takes the one trial request
    assert not b.allows("x")
    a.record_success("x")
    assert b.state("x") == "closed" and b.allows("x")


def test_a_failed_trial_reopens_for_everyone(client: redis.Redis, shared: tuple[str, str]) -> None:
    now = [1000.0]
    a, b = _breakers(client, shared[1], now)
    for _ in range(3):
        a.record_failure("x")
    now[0] += 11
    b.begin("x")
    b.record_failure("x")
    assert a.state("x") == "open"


def test_local_copy_is_reused_within_the_refresh_interval(
    client: redis.Redis, shared: tuple[str, str]
) -> None:
    breaker = SharedCircuitBreaker(client, shared[1], ["x"], 1, 10, refresh_s=3600)
    assert breaker.allows("x")
    other = SharedCircuitBreaker(client, shared[1], ["x"], 1, 10, refresh_s=0)
    other.record_failure("x")
    assert breaker.allows("x")  # not yet refreshed: no round trip per routing question
    assert not other.allows("x")


def test_latency_estimates_are_pooled_across_replicas(
    client: redis.Redis, shared: tuple[str, str]
) -> None:
    a = SharedLatencyTracker(client, shared[1], "a", ["x"], sync_s=3600)
    b = SharedLatencyTracker(client, shared[1], "b", ["x"], sync_s=3600)
    try:
        a.observe("x", ttft_ms=100.0, total_ms=1100.0, completion_tokens=101)
        b.observe("x", ttft_ms=300.0, total_ms=1300.0, completion_tokens=101)
        a.sync()
        b.sync()
        a.sync()
        for tracker in (a, b):
            estimate = tracker.get("x")
            assert estimate is not None
            assert estimate.ttft_ms == pytest.approx(200.0)
            assert estimate.tokens_per_s == pytest.approx(101.0)
        own = a.own("x")
        assert own is not None and own.ttft_ms == pytest.approx(100.0)
    finally:
        a.stop()
        b.stop()


def test_shared_conversations_are_trusted_for_one_ttl(
    client: redis.Redis, shared: tuple[str, str]
) -> None:
    from llmrouter.shared.conversations import SharedConversationMemory

    _, prefix = shared
    start = int(time.time()) // 60 * 60 + 10  # wall-clock: Redis expires the window's hash
    now = [float(start)]
    a = SharedConversationMemory(client, prefix, 60, 100, clock=lambda: now[0])
    b = SharedConversationMemory(client, prefix, 60, 100, clock=lambda: now[0])
    asked = [{"role": "user", "content": "What is 2 + 2?"}]
    reply = {"role": "assistant", "content": "4"}
    follow_up = [*asked, reply, {"role": "user", "content": "And 3 + 3?"}]
    try:
        a.remember(asked, reply, "large")
        a.flush()
        (name,) = client.scan_iter(match=f"{prefix}:conv:*")
        window = start // 60
        assert name.decode() == f"{prefix}:conv:{window}"
        assert client.ttl(name) > 0  # expires one TTL after its window closes
        now[0] += 30
        assert b.backend_for(follow_up) == ("large", 1, 30.0, True)  # 1 message was cached
        c = SharedConversationMemory(client, prefix, 60, 100, clock=lambda: now[0])
        now[0] += 31  # 61 s old: still in Redis (the previous window), no longer trusted
        assert c.backend_for(follow_up) is None
        # ...nor by the replicas that hold it locally: they all agree.
        assert a.backend_for(follow_up) is None and b.backend_for(follow_up) is None
        # A malformed entry is ignored (logged), never an error.
        window = int(now[0]) // 60
        other = [*asked, {"role": "assistant", "content": "5"}, follow_up[-1]]
        from llmrouter.routing.conversations import _digest

        key = _digest(other[:2])
        client.hset(f"{prefix}:conv:{window}", key, b"large \xc2\xb2")
        assert c.backend_for(other) is None
        c.close()
    finally:
        a.close()
        b.close()


def test_shared_conversations_fall_back_to_the_local_memory_without_redis(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from llmrouter.shared.conversations import SharedConversationMemory

    down = redis.Redis(host="127.0.0.1", port=9, retry=Retry(NoBackoff(), 0))
    memory = SharedConversationMemory(down, "x", 60, 100)
    asked = [{"role": "user", "content": "Hi"}]
    reply = {"role": "assistant", "content": "Hello"}
    try:
        memory.remember(asked, reply, "small")
        memory.flush()
        turn = [*asked, reply, {"role": "user", "content": "Bye"}]
        assert memory.backend_for(turn)[:2] == ("small", 1)  # type: ignore[index]
        for text in ("?", "!", "."):  # three conversations Redis would have to be asked about
            other = [*asked, {"role": "assistant", "content": text}, turn[-1]]
            assert memory.backend_for(other) is None
    finally:
        memory.close()
    memory.flush()  # after close: returns at once
    memory.remember(asked, {"role": "assistant", "content": "Later"}, "small")  # local only
    assert "not shared" in caplog.text
    assert caplog.text.count("unavailable") == 1  # logged once a minute, not per request
