"""llmrouter: send each LLM call to the cheapest backend that can answer it well.

The public API is re-exported here; ``import llmrouter`` stays light (no
litellm, no tokenizer load) so it costs little in any program.
"""

from __future__ import annotations

from .errors import (
    BudgetExceeded,
    ContextTooLarge,
    InvalidRequest,
    LLMRouterError,
    NoBackendAvailable,
    PolicyError,
    StreamInterrupted,
    UnknownBackend,
    UpstreamError,
)
from .policy import BackendConfig, Policy, load_policy
from .responses import ChatCompletion, ChatCompletionChunk, RouterInfo, Usage
from .router import CallOptions, Router
from .routing import Candidate, Decision, HeuristicPredictor, PromptProfile, QualityPredictor
from .streaming import AsyncCompletionStream, CompletionStream

__version__ = "0.1.0"

__all__ = [
    "AsyncCompletionStream",
    "BackendConfig",
    "BudgetExceeded",
    "CallOptions",
    "Candidate",
    "ChatCompletion",
    "ChatCompletionChunk",
    "CompletionStream",
    "ContextTooLarge",
    "Decision",
    "HeuristicPredictor",
    "InvalidRequest",
    "LLMRouterError",
    "NoBackendAvailable",
    "Policy",
    "PolicyError",
    "PromptProfile",
    "QualityPredictor",
    "Router",
    "RouterInfo",
    "StreamInterrupted",
    "UnknownBackend",
    "UpstreamError",
    "Usage",
    "__version__",
    "load_policy",
]
__all__ += ["AsyncOpenAI", "CompressResult", "LearnedPredictor", "OpenAI", "SemanticCache"]
__all__ += ["SemanticLookup", "compress"]


# --- loaded on first use: the drop-in OpenAI clients (they import openai and httpx), and
# compression and the semantic cache (numpy) -----------------------------------------------
_LAZY = {
    "OpenAI": "llmrouter.client",
    "AsyncOpenAI": "llmrouter.client",
    "compress": "llmrouter.compression",
    "CompressResult": "llmrouter.compression",
    "SemanticCache": "llmrouter.cache.semantic",
    "SemanticLookup": "llmrouter.cache.semantic",
    "LearnedPredictor": "llmrouter.brain",
}


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llmrouter' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
