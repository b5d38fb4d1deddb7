"""The quality predictor interface, and a simple explainable first version.

A backend's policy ``quality`` is its general ability, not a probability. The
predictor reads a prompt's difficulty and turns (ability, difficulty) into the
probability that this backend answers this prompt well, item-response style:
``p = sigmoid(slope * (logit(quality) - difficulty))``.
"""

from __future__ import annotations

import math
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
    # What the prompt asks for (maths, code, ...), each a share; empty when not predicted.
    demands: tuple[tuple[str, float], ...] = ()


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


# Each signal: words that evidence it, what one occurrence adds, and a cap on its total.
# Words are matched as tokens (single o200k tokens, with or without a leading space), so
# scoring a prompt is one pass over its token ids rather than regexes over its text.
_SIGNALS: tuple[tuple[str, tuple[str, ...], float, float], ...] = (
    (
        "proof or derivation",
        ("prove", "proof", "derive", "lemma", "theorem", "rigorous", "rigorously", "induction"),
        0.18,
        0.36,
    ),
    (
        "multi-step reasoning",
        ("step", "steps", "justify", "explain", "why", "reasoning", "therefore", "first", "then"),
        0.04,
        0.24,
    ),
    (
        "mathematics",
        (
            "integer",
            "integers",
            "prime",
            "primes",
            "equation",
            "mod",
            "\\frac",
            "\\sum",
            "polynomial",
            "probability",
            "matrix",
            "derivative",
            "integral",
            "modulo",
            "sqrt",
        ),
        0.05,
        0.25,
    ),
    (
        "code",
        (
            "```",
            "def",
            "return",
            "function",
            "class",
            "import",
            "=>",
            "#include",
            "const",
            "async",
            "lambda",
            "SELECT",
            "algorithm",
            "complexity",
            "implement",
        ),
        0.04,
        0.18,
    ),
    (
        "analysis request",
        (
            "analyze",
            "analyse",
            "compare",
            "evaluate",
            "tradeoffs",
            "trade",
            "optimize",
            "design",
            "architecture",
            "critique",
        ),
        0.05,
        0.15,
    ),
)


def _signal_table() -> dict[int, int]:
    """Token id → index of the signal it evidences (only words that are one token)."""
    from ..tokens import encode

    table: dict[int, int] = {}
    for index, (_, words, _, _) in enumerate(_SIGNALS):
        for word in words:
            for variant in {word, word.lower(), word.capitalize()}:
                for text in (variant, " " + variant):
                    ids = encode(text)
                    if len(ids) == 1:
                        table.setdefault(ids[0], index)
    return table


class HeuristicPredictor:
    """Explainable difficulty from prompt length and a few task signals.

    It is the fallback when no learned weights are available; the learned
    predictor in ``llmrouter.brain`` replaces it by default.
    """

    slope = 1.5
    easiest = -2.5  # difficulty (logit scale) of a trivial prompt
    span = 5.0  # difficulty added between complexity 0 and 1

    def __init__(self) -> None:
        self._table = _signal_table()

    def profile(self, text: str, token_ids: Sequence[int]) -> PromptProfile:
        hits = [0] * len(_SIGNALS)
        lookup = self._table.get
        for token in token_ids:
            index = lookup(token)
            if index is not None:
                hits[index] += 1
        contributions: list[tuple[str, float]] = []
        # Length starts to count past ~30 tokens and saturates around 2,000.
        length = min(max(math.log10(max(len(token_ids), 1)) - 1.5, 0.0) / 6.0, 0.3)
        if length > 0.05:
            contributions.append(("prompt length", length))
        for (name, _, per_hit, cap), count in zip(_SIGNALS, hits, strict=True):
            if count:
                contributions.append((name, min(count * per_hit, cap)))
        complexity = min(sum(v for _, v in contributions), 1.0)
        contributions.sort(key=lambda item: item[1], reverse=True)
        return PromptProfile(complexity=complexity, signals=tuple(contributions[:5]))

    def probability(self, profile: PromptProfile, backend: BackendConfig) -> float:
        difficulty = self.easiest + self.span * profile.complexity
        return sigmoid(self.slope * (logit(backend.quality) - difficulty))
