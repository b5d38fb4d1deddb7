"""Starting the sidecar: safety checks, then uvicorn (httptools + uvloop when installed)."""

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
    import uvicorn

    loaded = load_policy(policy)
    check_bind(host, ApiKeys(loaded.server.api_keys_env), allow_unauthenticated)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "http": "httptools" if importlib.util.find_spec("httptools") else "h11",
        "lifespan": "on",
        "access_log": False,
        "log_level": log_level,
        "server_header": False,
        "timeout_graceful_shutdown": 10,
    }
    logging.getLogger("llmrouter").setLevel(log_level.upper())
    if workers > 1:
        if policy is not None:
            os.environ[_POLICY_ENV] = str(Path(policy).resolve())
        uvicorn.run("llmrouter.server.run:app_from_env", factory=True, workers=workers, **options)
        return
    uvicorn.run(ServerApp(Router(loaded)), **options)
