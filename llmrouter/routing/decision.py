"""A routing decision and its explanation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Candidate", "Decision"]


@dataclass(slots=True)
class Candidate:
    """One backend as the router saw it for this request."""

    name: str
    predicted_quality: float
    estimated_cost_usd: float
    predicted_latency_ms: float | None = None
    excluded_reason: str | None = None
    clears_floor: bool = False

    @property
    def eligible(self) -> bool:
        return self.excluded_reason is None


@dataclass(slots=True)
class Decision:
    """The chosen backend, every candidate ranked, and why."""

    backend: str
    candidates: list[Candidate]
    complexity: float
    reason: str
    quality_floor: float
    prompt_tokens: int
    signals: list[tuple[str, float]] = field(default_factory=list)
    pinned: bool = False
    # The value rule's worth of a good answer (USD); None when the floor rule decided.
    answer_value_usd: float | None = None
    # What the prompt asks for, by share (maths, code, reasoning, knowledge, chat), when the
    # predictor says (the learned one does; the heuristic does not).
    demands: dict[str, float] = field(default_factory=dict)

    @property
    def rule(self) -> str:
        return "floor" if self.answer_value_usd is None else "value"

    def candidate(self, name: str) -> Candidate | None:
        for candidate in self.candidates:
            if candidate.name == name:
                return candidate
        return None

    def fallbacks(self) -> list[str]:
        """Where to go if the chosen backend fails: the next eligible candidates that still
        clear the floor (or, when the choice itself did not, the next best-predicted), in
        cost order under the floor rule and expected-value order under the value rule."""
        chosen = self.candidate(self.backend)
        need_floor = chosen is not None and chosen.clears_floor
        return [
            c.name
            for c in self.candidates
            if c.eligible and c.name != self.backend and (c.clears_floor or not need_floor)
        ]

    def plan(
        self,
        fallback: bool,
        max_backends: int,
        usable: Callable[[str], bool] | None = None,
    ) -> list[str]:
        """The backends to try, in order: the choice, then (unless the call is pinned or
        ``fallback`` is off) its fallbacks; of those ``usable`` (default: all), at most
        ``max_backends``. The policy's ``fallback.enabled`` and ``fallback.max_backends``."""
        names = [self.backend]
        if fallback and not self.pinned:
            names.extend(self.fallbacks())
        if usable is not None:
            names = [name for name in names if usable(name)]
        return names[:max_backends]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["signals"] = [{"name": n, "weight": round(w, 4)} for n, w in self.signals]
        return data
