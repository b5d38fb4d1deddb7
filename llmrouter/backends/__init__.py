"""Backend clients: the wire protocols the router speaks to models.

Client modules are imported when a client is made, so ``import llmrouter``
does not pay for httpx (or, for other providers, litellm).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..policy.schema import BackendConfig
from .base import RETRYABLE_KINDS, BackendClient, error_for_status, parse_retry_after

if TYPE_CHECKING:
    from .litellm_client import LiteLLMClient
    from .openai_compatible import OpenAICompatibleClient

__all__ = [
    "RETRYABLE_KINDS",
    "BackendClient",
    "LiteLLMClient",
    "OpenAICompatibleClient",
    "client_for",
    "error_for_status",
    "parse_retry_after",
]


def client_for(config: BackendConfig) -> BackendClient:
    """The client that speaks this backend's protocol."""
    if config.openai_compatible:
        from .openai_compatible import OpenAICompatibleClient

        return OpenAICompatibleClient(config)
    from .litellm_client import LiteLLMClient

    return LiteLLMClient(config)
