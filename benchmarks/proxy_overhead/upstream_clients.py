"""What one upstream call costs the proxy's core, by HTTP client.

The sidecar's throughput on one core is bounded by the CPU each request burns;
the upstream call is the largest part of it. This measures, against the same
nginx canned completion (start it with ``run.py``'s config or any server that
answers ``POST /v1/chat/completions``), the CPU-bound cost per call of:

1. ``httpx.AsyncClient`` with its default transport (what the router uses now);
2. ``httpx.AsyncClient`` with a lean transport (asyncio protocol + httptools);
3. ``httpx.Request`` handed straight to that lean transport (no client layer);
4. the lean client alone, no httpx types at all.

Run pinned: ``taskset -c 0 python upstream_clients.py --url http://127.0.0.1:PORT``
with the upstream on the other core.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import httptools
import httpx
import orjson

BODY = {"model": "bench-model", "messages": [{"role": "user", "content": "Hello there"}]}


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; the response is parsed by httptools."""

    def __init__(self, pool: LeanPool) -> None:
        self.pool = pool
        self.transport: Any = None  # uvloop's transports are not asyncio.Transport subclasses
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes]] | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        assert waiter is not None
        waiter.set_result((self.parser.get_status_code(), self.headers, b"".join(self.body)))
        self.headers, self.body = [], []
        if self.parser.should_keep_alive():
            self.pool.idle.append(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("upstream closed the connection"))
        with contextlib.suppress(ValueError):
            self.pool.idle.remove(self)


class LeanPool:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: collections.deque[_Connection] = collections.deque()

    async def send(self, head: bytes, body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        loop = asyncio.get_running_loop()
        if self.idle:
            connection = self.idle.pop()
        else:
            _, connection = await loop.create_connection(
                lambda: _Connection(self), self.host, self.port
            )
        connection.waiter = loop.create_future()
        connection.transport.write(head + body)
        return await connection.waiter


class LeanTransport(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self.pools: dict[tuple[str, int], LeanPool] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        key = (url.host, url.port or 80)
        pool = self.pools.get(key) or self.pools.setdefault(key, LeanPool(*key))
        head = b"%s %s HTTP/1.1\r\n" % (request.method.encode(), url.raw_path)
        head += b"".join(k + b": " + v + b"\r\n" for k, v in request.headers.raw) + b"\r\n"
        status, headers, content = await pool.send(head, request.content)
        return httpx.Response(status, headers=headers, content=content)


async def measure(name: str, call: Callable[[], Awaitable[Any]], n: int) -> None:
    for _ in range(300):
        await call()
    started = time.perf_counter()
    for _ in range(n):
        await call()
    sequential = 1e6 * (time.perf_counter() - started) / n

    async def worker(count: int) -> None:
        for _ in range(count):
            await call()

    started = time.perf_counter()
    await asyncio.gather(*[worker(n // 32) for _ in range(32)])
    concurrent = 1e6 * (time.perf_counter() - started) / n
    print(
        f"{name:48s} sequential {sequential:7.1f} µs/call   "
        f"32 concurrent {concurrent:7.1f} µs/call (≈ {1e6 / concurrent:,.0f} calls/s/core)"
    )


async def main(url: str, n: int) -> None:
    endpoint = url.rstrip("/") + "/v1/chat/completions"
    parts = urlsplit(endpoint)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80

    default = httpx.AsyncClient(limits=httpx.Limits(max_connections=256))

    async def httpx_default() -> Any:
        response = await default.post(endpoint, json=BODY, timeout=60)
        return orjson.loads(response.content)

    shards = [httpx.AsyncClient(limits=httpx.Limits(max_connections=256)) for _ in range(8)]
    turn = [0]

    async def httpx_sharded() -> Any:
        turn[0] = (turn[0] + 1) % len(shards)
        response = await shards[turn[0]].post(endpoint, json=BODY, timeout=60)
        return orjson.loads(response.content)

    lean_client = httpx.AsyncClient(transport=LeanTransport())

    async def httpx_lean() -> Any:
        response = await lean_client.post(endpoint, content=orjson.dumps(BODY), timeout=60)
        return orjson.loads(response.content)

    transport = LeanTransport()
    base_headers = [(b"host", f"{host}:{port}".encode()), (b"content-type", b"application/json")]

    async def transport_only() -> Any:
        content = orjson.dumps(BODY)
        headers = [*base_headers, (b"content-length", str(len(content)).encode())]
        request = httpx.Request("POST", endpoint, headers=headers, content=content)
        response = await transport.handle_async_request(request)
        return orjson.loads(response.content)

    pool = LeanPool(host, port)
    path = (parts.path or "/").encode()

    async def bare() -> Any:
        content = orjson.dumps(BODY)
        head = b"POST %s HTTP/1.1\r\nhost: %s:%d\r\ncontent-type: application/json\r\n" % (
            path,
            host.encode(),
            port,
        ) + b"content-length: %d\r\n\r\n" % len(content)
        _, _, body = await pool.send(head, content)
        return orjson.loads(body)

    await measure("httpx.AsyncClient, default transport", httpx_default, n)
    await measure("8 httpx.AsyncClients, default transport, turns", httpx_sharded, n)
    await measure("httpx.AsyncClient, lean transport", httpx_lean, n)
    await measure("httpx.Request → lean transport (no client)", transport_only, n)
    await measure("lean client, no httpx", bare, n)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", required=True, help="upstream base URL, e.g. http://127.0.0.1:8080"
    )
    parser.add_argument("-n", type=int, default=5000)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(args.url, args.n))
