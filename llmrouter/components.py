"""The optional parts a policy asks of a Router, built once when it starts.

Each is imported only when the policy uses it: the learned predictor's numpy, the
semantic cache, the compression pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .backends import BackendClient
from .errors import PolicyError
from .policy import Policy
from .routing import QualityPredictor

if TYPE_CHECKING:
    from .cache.semantic import SemanticCache

__all__ = ["compressor", "default_predictor", "semantic_cache"]


def default_predictor(policy: Policy) -> QualityPredictor:
    """The learned predictor (weights shipped in the package), or the explainable heuristic."""
    if policy.routing.predictor == "heuristic":
        from .routing import HeuristicPredictor

        return HeuristicPredictor()
    from .brain import LearnedPredictor

    return LearnedPredictor(policy.routing.predictor_weights)


def semantic_cache(policy: Policy, clients: Mapping[str, BackendClient]) -> SemanticCache | None:
    """The semantic cache, when the policy opts in; embeddings from a backend or local."""
    config = policy.cache.semantic
    if not (policy.cache.enabled and config.enabled):
        return None
    from .cache.semantic import SemanticCache

    embed = None
    if config.embedding_backend is not None:
        backend = policy.backend(config.embedding_backend)
        client = clients[config.embedding_backend]
        embed_call = getattr(client, "embed", None)
        if backend is None or embed_call is None:
            raise PolicyError(
                f"cache.semantic.embedding_backend {config.embedding_backend!r} must be an "
                "OpenAI-compatible backend that serves /v1/embeddings",
                file=policy.source,
                key="cache.semantic.embedding_backend",
            )
        model, timeout = backend.model, backend.timeout_s

        def embed(texts: Sequence[str]) -> list[list[float]]:
            data = embed_call({"model": model, "input": list(texts)}, timeout)
            return [item["embedding"] for item in data["data"]]

    return SemanticCache(
        config.threshold, embed=embed, max_entries=config.max_entries, ttl=policy.cache.ttl_s
    )


def compressor(policy: Policy) -> Callable[..., Any] | None:
    """The compression function, imported only when the policy turns compression on."""
    if not policy.compression.enabled:
        return None
    from .compression import compress

    return compress
