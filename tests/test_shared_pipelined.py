"""The lean asyncio Redis connection the budget reserve uses: concurrent callers on one
connection each get their own reply, errors come back as values, a dead or silent server
fails the waiting callers (never hangs them), and a cancelled caller's reply is handed to
its ``orphan`` callback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import hiredis
import pytest
import redis
from services import fresh_redis

from llmrouter.shared.pipelined import PipelinedRedis, RedisUnavailable, supports


@pytest.fixture
def shared() -> Iterator[tuple[str, str]]:
    with fresh_redis() as pair:
        yield pair


async def test_concurrent_commands_get_their_own_replies(shared: tuple[str, str]) -> None:
    url, prefix = shared
    connection = PipelinedRedis(url)
    replies = await asyncio.gather(
        *(connection.execute("INCRBY", f"{prefix}:n", i) for i in range(1, 201))
    )
    connection.close()
    # Redis ran them one by one, in order: each reply is the running total at its turn.
    assert replies == [i * (i + 1) // 2 for i in range(1, 201)]


async def test_an_error_reply_is_returned_not_raised(shared: tuple[str, str]) -> None:
    url, prefix = shared
    connection = PipelinedRedis(url)
    await connection.execute("SET", f"{prefix}:s", "text")
    reply = await connection.execute("INCRBY", f"{prefix}:s", 1)
    after = await connection.execute("GET", f"{prefix}:s")
    connection.close()
    assert isinstance(reply, hiredis.ReplyError)
    assert after == b"text"  # the connection is still usable


async def test_it_reconnects_after_the_server_closed_it(shared: tuple[str, str]) -> None:
    url, _ = shared
    connection = PipelinedRedis(url)
    client_id = await connection.execute("CLIENT", "ID")
    admin = redis.Redis.from_url(url)
    admin.client_kill_filter(_id=client_id)  # only this connection
    admin.close()
    with pytest.raises(RedisUnavailable):
        for _ in range(50):  # the close reaches us asynchronously
            await connection.execute("PING")
            await asyncio.sleep(0.01)
    assert await connection.execute("PING") == b"PONG"
    connection.close()


async def test_a_silent_server_times_out_the_waiting_callers() -> None:
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)  # reads everything, answers nothing

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    connection = PipelinedRedis(f"redis://127.0.0.1:{port}/0", timeout_s=0.2)
    results = await asyncio.gather(
        *(connection.execute("PING") for _ in range(3)), return_exceptions=True
    )
    server.close()
    assert all(isinstance(r, RedisUnavailable) for r in results)


async def test_an_unreachable_server_fails_at_once() -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    connection = PipelinedRedis(f"redis://127.0.0.1:{port}/0")
    with pytest.raises(RedisUnavailable):
        await connection.execute("PING")


async def test_a_cancelled_callers_reply_goes_to_its_orphan_callback(
    shared: tuple[str, str],
) -> None:
    url, prefix = shared
    connection = PipelinedRedis(url)
    await connection.execute("PING")
    orphaned: list[object] = []
    task = asyncio.ensure_future(
        connection.execute("INCRBY", f"{prefix}:o", 5, orphan=orphaned.append)
    )
    await asyncio.sleep(0)  # the command is queued for sending
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await connection.execute("GET", f"{prefix}:o") == b"5"  # Redis did run it
    connection.close()
    assert orphaned == [5]


async def test_a_caller_cancelled_in_the_turn_its_reply_arrived_hands_it_to_the_orphan(
    shared: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reply is already in the caller's future when the cancellation lands (a deadline or
    a client disconnect handled in the same loop turn): the orphan still gets it."""
    from llmrouter.shared import pipelined

    url, prefix = shared
    connection = PipelinedRedis(url)
    await connection.execute("PING")
    victims: list[asyncio.Future[object]] = []
    received = pipelined._Connection.data_received

    def cancel_right_after(self: pipelined._Connection, data: bytes) -> None:
        received(self, data)
        while victims:
            victims.pop().cancel()

    monkeypatch.setattr(pipelined._Connection, "data_received", cancel_right_after)
    orphaned: list[object] = []
    task = asyncio.ensure_future(
        connection.execute("INCRBY", f"{prefix}:late", 7, orphan=orphaned.append)
    )
    victims.append(task)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert orphaned == [7]
    connection.close()


async def test_the_url_selects_the_database(shared: tuple[str, str]) -> None:
    url, prefix = shared
    other = url.rsplit("/", 1)[0] + "/3"
    connection = PipelinedRedis(other)
    await connection.execute("SET", f"{prefix}:db", "three")
    connection.close()
    admin = redis.Redis.from_url(other)
    try:
        assert admin.get(f"{prefix}:db") == b"three"
    finally:
        admin.delete(f"{prefix}:db")
        admin.close()


def test_tls_urls_are_left_to_redis_py() -> None:
    assert supports("redis://h:1/0") and supports("unix:///tmp/r.sock")
    assert not supports("rediss://h:1/0")
    with pytest.raises(ValueError):
        PipelinedRedis("rediss://h:1/0")
