"""A stand-in for ``llmrouter.routing.predictor.PromptProfile`` when the router is absent."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PromptProfile"]


@dataclass(frozen=True)
class PromptProfile:
    complexity: float
    signals: tuple[tuple[str, float], ...]
    state: object = None
