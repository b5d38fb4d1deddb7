"""The floor under the sidecar: uvicorn + httptools + a bare ASGI app that forwards each body
to the upstream through the lean transport and returns its answer. No routing, auth, cache,
ledger or pricing: what a Python proxy on this stack costs before it does any work.

    taskset -c 0 env UPSTREAM=http://127.0.0.1:PORT python -m uvicorn floor_app:app \\
        --app-dir benchmarks/proxy_overhead --port 14100 --loop uvloop --http httptools \\
        --no-access-log
    taskset -c 1 wrk -t1 -c32 -d10s -s benchmarks/proxy_overhead/chat.lua http://127.0.0.1:14100
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx

from llmrouter.backends.http11 import LeanAsyncTransport

Message = MutableMapping[str, Any]

UPSTREAM = httpx.URL(os.environ.get("UPSTREAM", "http://127.0.0.1:8080") + "/v1/chat/completions")
TIMEOUTS = {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}
transport = LeanAsyncTransport(httpx.Limits(max_connections=256, max_keepalive_connections=64))


async def app(
    scope: Message,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    parts, more = [], True
    while more:
        message = await receive()
        parts.append(message.get("body", b""))
        more = message.get("more_body", False)
    request = httpx.Request(
        "POST",
        UPSTREAM,
        headers=[("content-type", "application/json")],
        content=b"".join(parts),
        extensions={"timeout": TIMEOUTS},
    )
    response = await transport.handle_async_request(request)
    content = await response.aread()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(content))]
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": content})
