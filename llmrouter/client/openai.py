"""``OpenAI`` and ``AsyncOpenAI``: the official SDK's clients, answered by an in-process Router.

They are the official classes (subclassed), so every resource, helper and
response object is the SDK's own; only the transport differs.
``model="auto"`` routes, a backend name pins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai

from ..policy import Policy
from ..router import Router
from .transport import AsyncRouterTransport, RouterTransport, http_module

__all__ = ["AsyncOpenAI", "OpenAI"]

_PLACEHOLDER_KEY = "llmrouter-in-process"  # the SDK wants a key; the Router uses the policy's
_BASE_URL = "http://llmrouter.in-process/v1"


def _router_of(http_client: Any) -> Router | None:
    router = getattr(getattr(http_client, "_transport", None), "router", None)
    return router if isinstance(router, Router) else None


def _check_foreign(http_client: Any) -> None:
    if http_client is not None and _router_of(http_client) is None:
        raise ValueError(
            "llmrouter's OpenAI client makes its own http_client (its transport is the Router); "
            "pass router= or policy= instead of http_client="
        )


def _resolve(
    policy: Policy | str | Path | None,
    router: Router | None,
    http_client: Any,
) -> tuple[Router, bool]:
    """The Router to use (given, carried by ``http_client``, or made from ``policy``) and
    whether this client owns it (and so closes it)."""
    _check_foreign(http_client)
    carried = _router_of(http_client)
    owned = router is None and carried is None
    return router or carried or Router(policy), owned


class OpenAI(openai.OpenAI):
    """``openai.OpenAI`` whose requests are routed in-process by ``router`` (or ``policy``)."""

    router: Router

    def __init__(
        self,
        *,
        policy: Policy | str | Path | None = None,
        router: Router | None = None,
        api_key: Any = None,
        base_url: Any = None,
        max_retries: int = 0,
        http_client: Any = None,
        **kwargs: Any,
    ) -> None:
        router, owned = _resolve(policy, router, http_client)
        if http_client is None:
            http_client = http_module().Client(transport=RouterTransport(router))
        # Retries and fallbacks are the Router's job, within its deadline.
        super().__init__(
            api_key=api_key or _PLACEHOLDER_KEY,
            base_url=base_url or _BASE_URL,
            max_retries=max_retries,
            http_client=http_client,
            **kwargs,
        )
        self.router = router
        self._owns_router = owned

    def close(self) -> None:
        super().close()
        if self._owns_router:
            self.router.close()


class AsyncOpenAI(openai.AsyncOpenAI):
    """``openai.AsyncOpenAI`` whose requests are routed in-process by ``router`` (or ``policy``)."""

    router: Router

    def __init__(
        self,
        *,
        policy: Policy | str | Path | None = None,
        router: Router | None = None,
        api_key: Any = None,
        base_url: Any = None,
        max_retries: int = 0,
        http_client: Any = None,
        **kwargs: Any,
    ) -> None:
        router, owned = _resolve(policy, router, http_client)
        if http_client is None:
            http_client = http_module().AsyncClient(transport=AsyncRouterTransport(router))
        super().__init__(
            api_key=api_key or _PLACEHOLDER_KEY,
            base_url=base_url or _BASE_URL,
            max_retries=max_retries,
            http_client=http_client,
            **kwargs,
        )
        self.router = router
        self._owns_router = owned

    async def close(self) -> None:
        await super().close()
        if self._owns_router:
            await self.router.aclose()
