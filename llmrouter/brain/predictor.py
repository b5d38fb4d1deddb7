"""``LearnedPredictor``: the router's default quality predictor, backed by shipped weights."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from operator import mul
from pathlib import Path
from typing import Any, Protocol

from llmrouter.routing.predictor import PromptProfile

from .abilities import BackendParams, resolve_params
from .model import CATEGORIES, DEFAULT_WEIGHTS, BrainWeights, PromptState

__all__ = ["LearnedPredictor"]

_MAX_SIGNALS = 5
_MIN_SIGNAL = 0.05
_MAX_CACHED_BACKENDS = 1024


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
        # id(backend) -> (backend, model, quality, calibration copy, params, skills+loadings):
        # the hot path checks the three fields instead of building a hashable key.
        self._by_backend: dict[int, tuple[Any, str, float, Any, BackendParams, tuple]] = {}
        names = self.weights.contribution_names
        # A structural feature the prompt lacks still contributes (it sits below the training
        # mean), and is named so: "no numbers", not "numbers".
        self._absent_names = tuple(f"no {n}" if n != "length" else n for n in names)
        # "digits" (a count) and "numbers" (a density) read the same digits, and their
        # contributions mostly cancel: the signals show their sum, as "numbers".
        self._merge = (
            (names.index("numbers"), names.index("digits"))
            if "numbers" in names and "digits" in names
            else None
        )

    def profile(self, text: str, token_ids: Sequence[int]) -> PromptProfile:
        weights = self.weights
        state, values, struct = weights.state_values(text, token_ids)
        if self._merge is not None:
            into, merged = self._merge
            values[into] += values[merged]
            values[merged] = 0.0
        magnitudes = list(map(abs, values))
        # Stable, so equal magnitudes keep the order of ``contribution_names``.
        order = sorted(range(len(values)), key=magnitudes.__getitem__, reverse=True)
        names, absent, n_struct = weights.contribution_names, self._absent_names, len(struct)
        signals = []
        for i in order[:_MAX_SIGNALS]:
            if not magnitudes[i] >= _MIN_SIGNAL:
                break  # the rest are smaller still
            value = values[i]
            name = absent[i] if i < n_struct and not struct[i] else names[i]
            # round(value, 3) costs ~0.4 µs (exact decimal conversion); away from a
            # half-way case, the nearest integer to value * 1000 is the same digits.
            scaled = value * 1000.0
            nearest = round(scaled) if magnitudes[i] < 1e12 else 0
            if -0.4999 < scaled - nearest < 0.4999:
                signals.append((name, nearest / 1000.0))
            else:
                signals.append((name, round(value, 3)))
        # weights.complexity(), inlined.
        z = (state.difficulty - weights._center) / weights._scale
        complexity = 1.0 / (1.0 + math.exp(-z)) if z > -700.0 else 0.0
        return PromptProfile(
            complexity, tuple(signals), state, tuple(zip(CATEGORIES, state.demands, strict=True))
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
        entry = self._by_backend.get(id(backend))
        if (
            entry is None
            or entry[0] is not backend
            or entry[1] != backend.model
            or entry[2] != backend.quality
            or entry[3] != backend.calibration
        ):
            entry = self._remember(backend)
        params = entry[4]
        # Same sum as probability_of: skills . demands, then loadings . factors (if any).
        logit = params.ability - params.discrimination * state.difficulty
        logit += sum(map(mul, state.demands, params.skills))
        if params.factors and state.factors:
            logit += sum(map(mul, state.factors, params.factors))
        if logit < -30.0:
            return 0.0
        return 1.0 / (1.0 + math.exp(-logit))

    def _remember(self, backend: _Backend) -> tuple[Any, str, float, Any, BackendParams, tuple]:
        if len(self._by_backend) >= _MAX_CACHED_BACKENDS:
            self._by_backend.clear()
        calibration = backend.calibration
        entry = (
            backend,
            backend.model,
            backend.quality,
            dict(calibration) if calibration is not None else None,
            self.params(backend),
            (),
        )
        self._by_backend[id(backend)] = entry
        return entry

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
