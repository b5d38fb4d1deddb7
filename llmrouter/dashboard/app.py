"""The dashboard as a bare ASGI app: three static files and one JSON endpoint.

Mounted by the sidecar at ``/dashboard`` (or run alone: ``python -m llmrouter.dashboard``).
The static files hold no data and are public; ``data.json`` is checked with the sidecar's
API keys when it has any. A browser passes the key in the URL *fragment*
(``/dashboard#key=...``), which browsers never send to servers or write to logs; the page's
script sends it as a bearer token.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from ..policy.schema import BudgetConfig
from .data import dashboard_data

__all__ = ["DashboardApp"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Check = Callable[[str | None, str | None], object]  # (authorization, x-api-key); raises

_STATIC = {
    "": ("index.html", "text/html; charset=utf-8"),
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
_DAY = 86_400.0


def _load_static() -> dict[str, tuple[bytes, str]]:
    """Read the page's files once, at start (never per request)."""
    folder = resources.files(__package__) / "static"
    return {path: ((folder / name).read_bytes(), kind) for path, (name, kind) in _STATIC.items()}


class DashboardApp:
    """``ledger`` is any ledger with ``query`` (the Router's, or one opened from a policy)."""

    def __init__(
        self,
        ledger: Any,
        budgets: Sequence[BudgetConfig] = (),
        check: Check | None = None,
        prefix: str = "/dashboard",
        default_days: float = 30.0,
    ) -> None:
        self.ledger = ledger
        self.budgets = list(budgets)
        self.check = check
        self.prefix = prefix.rstrip("/")
        self.default_days = default_days
        self._static = _load_static()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"]
                await send({"type": f"{kind}.complete"})
                if kind == "lifespan.shutdown":
                    return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if self.prefix and path.startswith(self.prefix):
            path = path[len(self.prefix) :]
        if scope["method"] not in ("GET", "HEAD"):
            await _reply(send, 405, b'{"error": {"message": "the dashboard takes GET"}}')
            return
        static = self._static.get(path)
        if static is not None:
            if path == "" and self.prefix:  # /dashboard -> /dashboard/ so relative URLs work
                await _reply(send, 308, b"", headers=[(b"location", f"{self.prefix}/".encode())])
                return
            await _reply(send, 200, static[0], static[1])
            return
        if path != "/data.json":
            await _reply(send, 404, b'{"error": {"message": "no such dashboard file"}}')
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if self.check is not None:
            try:
                self.check(headers.get("authorization"), headers.get("x-api-key"))
            except Exception as exc:
                reason = str(getattr(exc, "message", "unauthorized"))
                body = json.dumps({"error": {"message": reason, "code": "invalid_api_key"}})
                await _reply(send, 401, body.encode())
                return
        try:
            since, until = self._window(scope.get("query_string", b"").decode("latin-1"))
        except ValueError as exc:
            await _reply(send, 400, json.dumps({"error": {"message": str(exc)}}).encode())
            return
        # Reports read the ledger (and flush its queue): off the event loop.
        data = await asyncio.to_thread(dashboard_data, self.ledger, self.budgets, since, until)
        await _reply(send, 200, json.dumps(data).encode(), "application/json")

    def _window(self, query: str) -> tuple[float | None, float | None]:
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        try:
            since = float(params["since"]) if "since" in params else None
            until = float(params["until"]) if "until" in params else None
            days = float(params.get("days", self.default_days))
        except ValueError:
            raise ValueError("since and until are Unix times, days a number") from None
        if since is None and days > 0:
            since = (until if until is not None else time.time()) - days * _DAY
        return since, until


async def _reply(
    send: Send,
    status: int,
    body: bytes,
    content_type: str = "application/json",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    start = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *(headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})
