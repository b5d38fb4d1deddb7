"""``LearnedPredictor``: the router's default quality predictor, backed by shipped weights."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from .abilities import BackendParams, resolve_params
from .model import DEFAULT_WEIGHTS, BrainWeights, PromptState

try:
    from llmrouter.routing.predictor import PromptProfile
except ImportError:  # the core router predates this package in some checkouts
    from .profile import PromptProfile  # type: ignore[assignment]

__all__ = ["LearnedPredictor"]

_MAX_SIGNALS = 5
_MIN_SIGNAL = 0.05


class _Backend(Protocol):
    """The fields of ``BackendConfig`` the predictor reads."""

    @property
    def model(self) -> str: ...
    @property
    def quality(self) -> float: ...
    @property
    def calibration(self) -> dict[str, float] | None: ...


class LearnedPredictor:
    """P(backend answers well) from prompt difficulty/demands and backend abilities.

    Weights load once here; ``profile()`` costs ~0.1 ms for 2,000 tokens and
    ``probability()`` a few microseconds (per-backend parameters are cached).
    """

    def __init__(self, weights: str | Path | BrainWeights | None = None) -> None:
        if isinstance(weights, BrainWeights):
            self.weights = weights
        else:
            self.weights = BrainWeights.load(weights if weights is not None else DEFAULT_WEIGHTS)
        self._params: dict[tuple[Any, ...], BackendParams] = {}

    def profile(self, text: str, token_ids: Sequence[int]) -> PromptProfile:
        state, contributions = self.weights.state(text, token_ids)
        ranked = sorted(contributions, key=lambda item: -abs(item[1]))
        signals = tuple(
            (name, round(value, 3))
            for name, value in ranked[:_MAX_SIGNALS]
            if abs(value) >= _MIN_SIGNAL
        )
        return PromptProfile(
            complexity=self.weights.complexity(state.difficulty), signals=signals, state=state
        )

    def states(
        self, texts: Iterable[str], progress: Callable[[int], None] | None = None
    ) -> list[PromptState]:
        """Difficulty and demands of many prompts (offline use: calibrate, eval)."""
        from llmrouter.tokens import encode

        out = []
        for text in texts:
            out.append(self.weights.state(text, encode(text))[0])
            if progress is not None:
                progress(1)
        return out

    def params(self, backend: _Backend) -> BackendParams:
        """The backend's parameters (calibration, known model, or rating), cached."""
        calibration = backend.calibration
        key = (
            backend.model,
            backend.quality,
            tuple(sorted(calibration.items())) if calibration else None,
        )
        params = self._params.get(key)
        if params is None:
            params = resolve_params(backend.model, backend.quality, calibration, self.weights.meta)
            self._params[key] = params
        return params

    def probability(self, profile: PromptProfile, backend: _Backend) -> float:
        state = profile.state
        if not isinstance(state, PromptState):
            state = self._state_from_complexity(profile.complexity)
        return self.probability_of(state, self.params(backend))

    @staticmethod
    def probability_of(state: PromptState, params: BackendParams) -> float:
        logit = params.ability - params.discrimination * state.difficulty
        for demand, skill in zip(state.demands, params.skills, strict=True):
            logit += demand * skill
        # Weights without factors, or backends without loadings, contribute nothing here.
        for factor, loading in zip(state.factors, params.factors, strict=False):
            logit += factor * loading
        if logit < -30.0:
            return 0.0
        return 1.0 / (1.0 + math.exp(-logit))

    def _state_from_complexity(self, complexity: float) -> PromptState:
        """Invert ``complexity`` for profiles made by another predictor (no demands known)."""
        c = min(max(complexity, 1e-6), 1 - 1e-6)
        meta = self.weights.meta
        center = float(meta.get("difficulty_center", 0.0))
        scale = float(meta.get("difficulty_scale", 1.0))
        demands = tuple(float(x) for x in self.weights.demand_mean)
        return PromptState(center + scale * math.log(c / (1 - c)), demands)
