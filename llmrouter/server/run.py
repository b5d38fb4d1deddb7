"""Starting the sidecar: safety checks, then the native HTTP/1.1 server (``listen``), or
uvicorn when ``LLMROUTER_SERVER=uvicorn`` (the ASGI app is the same ``ServerApp``)."""

from __future__ import annotations

import importlib.util
import ipaddress
import logging
import os
from pathlib import Path
from typing import Any

from ..errors import InvalidRequest
from ..policy import Policy, load_policy
from ..router import Router
from .app import ServerApp
from .auth import ApiKeys

__all__ = ["app_from_env", "build_app", "check_bind", "serve"]

_POLICY_ENV = "LLMROUTER_POLICY"
_SERVER_ENV = "LLMROUTER_SERVER"  # "native" (default) or "uvicorn"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, keys: ApiKeys, allow_unauthenticated: bool) -> None:
    """Refuse to expose an unauthenticated sidecar beyond this machine unless told to."""
    if keys.enabled or allow_unauthenticated or is_loopback(host):
        return
    raise InvalidRequest(
        f"refusing to listen on {host} without API keys: anyone who can reach it could spend "
        "on your providers. Name keys in the policy (server.api_keys_env), bind 127.0.0.1, "
        "or pass --allow-unauthenticated if you really mean it"
    )


def build_app(policy: Policy | str | Path | None) -> ServerApp:
    return ServerApp(Router(policy))


def app_from_env() -> ServerApp:
    """The app factory each worker process calls (``--workers N``)."""
    return build_app(os.environ.get(_POLICY_ENV) or None)


def serve(
    policy: str | None,
    host: str = "127.0.0.1",
    port: int = 4000,
    workers: int = 1,
    allow_unauthenticated: bool = False,
    log_level: str = "info",
) -> None:
    loaded = load_policy(policy)
    check_bind(host, ApiKeys(loaded.server.api_keys_env), allow_unauthenticated)
    logging.getLogger("llmrouter").setLevel(log_level.upper())
    if os.environ.get(_SERVER_ENV, "native") == "uvicorn":
        _serve_uvicorn(policy, loaded, host, port, workers, log_level)
        return
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=log_level.upper())
    from . import listen

    server = loaded.server
    timeouts = listen.Timeouts(
        keep_alive_s=server.keep_alive_s,
        request_timeout_s=server.request_timeout_s,
        graceful_s=server.graceful_shutdown_s,
    )
    listen.run(lambda: ServerApp(Router(loaded)), host, port, workers, timeouts)


def _serve_uvicorn(
    policy: str | None, loaded: Policy, host: str, port: int, workers: int, log_level: str
) -> None:
    import uvicorn

    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "http": "httptools" if importlib.util.find_spec("httptools") else "h11",
        "lifespan": "on",
        "access_log": False,
        "log_level": log_level,
        "server_header": False,
        "timeout_graceful_shutdown": int(loaded.server.graceful_shutdown_s),
        "timeout_keep_alive": int(max(loaded.server.keep_alive_s, 1)),
    }
    if workers > 1:
        if policy is not None:
            os.environ[_POLICY_ENV] = str(Path(policy).resolve())
        uvicorn.run("llmrouter.server.run:app_from_env", factory=True, workers=workers, **options)
        return
    uvicorn.run(ServerApp(Router(loaded)), **options)
