"""The sidecar: an OpenAI-compatible HTTP API in front of a Router (``llmrouter serve``).

Imported only when serving (it pulls in httpx and orjson; uvicorn when run).
"""

from __future__ import annotations

from .app import ServerApp
from .run import build_app, serve

__all__ = ["ServerApp", "build_app", "serve"]
