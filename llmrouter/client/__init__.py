"""Drop-in OpenAI clients routed in-process: ``from llmrouter import OpenAI, AsyncOpenAI``.

Imported only on first use (it pulls in the ``openai`` package).
"""

from __future__ import annotations

from .openai import AsyncOpenAI, OpenAI
from .transport import AsyncRouterTransport, RouterTransport

__all__ = ["AsyncOpenAI", "AsyncRouterTransport", "OpenAI", "RouterTransport"]
