"""The quality predictor interface, and a simple explainable first version.

A backend's policy ``quality`` is its general ability, not a probability. The
predictor reads a prompt's difficulty and turns (ability, difficulty) into the
probability that this backend answers this prompt well, item-response style:
``p = sigmoid(slope * (logit(quality) - difficulty))``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..policy.schema import BackendConfig

__all__ = ["HeuristicPredictor", "PromptProfile", "QualityPredictor", "logit", "sigmoid"]


@dataclass(frozen=True, slots=True)
class PromptProfile:
    """What a predictor concluded about one prompt."""

    complexity: float
    signals: tuple[tuple[str, float], ...] = ()
    state: object = None


@runtime_checkable
class QualityPredictor(Protocol):
    def profile(self, text: str, token_ids: Sequence[int]) -> PromptProfile: ...

    def probability(self, profile: PromptProfile, backend: BackendConfig) -> float: ...


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


# Each signal: a pattern, and how much one occurrence adds (with a cap on its total).
_SIGNALS: tuple[tuple[str, re.Pattern[str], float, float], ...] = (
    (
        "proof or derivation",
        re.compile(r"\b(prove|proof|derive|lemma|theorem|show that|rigorous)\b", re.I),
        0.18,
        0.36,
    ),
    (
        "multi-step reasoning",
        re.compile(r"\b(step[- ]by[- ]step|multi-step|first,|then,|finally,|justify)\b", re.I),
        0.08,
        0.24,
    ),
    (
        "mathematics",
        re.compile(r"(\\frac|\\sum|\\int|\^\d|\bmod\b|\binteger|\bprime|\bequation|[=<>]\s*\d)", re.I),
        0.05,
        0.25,
    ),
    (
        "code",
        re.compile(r"(```|\bdef \w+\(|\bclass \w+|\bfunction\b|#include|\breturn\b|=>)"),
        0.06,
        0.18,
    ),
    (
        "analysis request",
        re.compile(r"\b(analy[sz]e|compare|evaluate|trade-?offs?|optimi[sz]e|design)\b", re.I),
        0.05,
        0.15,
    ),
)


class HeuristicPredictor:
    """Explainable difficulty from prompt length and a few task signals.

    It is the fallback when no learned weights are available; the learned
    predictor in ``llmrouter.brain`` replaces it by default.
    """

    slope = 1.5
    easiest = -2.5  # difficulty (logit scale) of a trivial prompt
    span = 5.0  # difficulty added between complexity 0 and 1

    def profile(self, text: str, token_ids: Sequence[int]) -> PromptProfile:
        contributions: list[tuple[str, float]] = []
        # Length starts to count past ~30 tokens and saturates around 2,000.
        length = min(max(math.log10(max(len(token_ids), 1)) - 1.5, 0.0) / 6.0, 0.3)
        if length > 0.05:
            contributions.append(("prompt length", length))
        for name, pattern, per_hit, cap in _SIGNALS:
            hits = len(pattern.findall(text))
            if hits:
                contributions.append((name, min(hits * per_hit, cap)))
        complexity = min(sum(v for _, v in contributions), 1.0)
        contributions.sort(key=lambda item: item[1], reverse=True)
        return PromptProfile(complexity=complexity, signals=tuple(contributions[:5]))

    def probability(self, profile: PromptProfile, backend: BackendConfig) -> float:
        difficulty = self.easiest + self.span * profile.complexity
        return sigmoid(self.slope * (logit(backend.quality) - difficulty))
