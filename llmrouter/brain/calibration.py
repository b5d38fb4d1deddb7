"""Fit a backend's parameters from a small labelled sample of its own answers.

A maximum-a-posteriori logistic fit with the prompt side frozen: only the backend's
ability, discrimination and per-demand skills move, each pulled towards its prior (the
known-model or rating-derived values), so ~100 prompts give stable numbers and a handful
of prompts cannot produce wild ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .abilities import BackendParams
from .model import CATEGORIES, PromptState

__all__ = ["PriorScale", "fit_backend"]


@dataclass(frozen=True)
class PriorScale:
    """Prior standard deviations: how far data may move each parameter."""

    ability: float = 1.0
    discrimination: float = 0.3
    skill: float = 0.5


def _design(states: Sequence[PromptState]) -> NDArray[np.float64]:
    rows = [(1.0, -s.difficulty, *s.demands) for s in states]
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), 2 + len(CATEGORIES))


def fit_backend(
    states: Sequence[PromptState],
    scores: Sequence[float],
    prior: BackendParams,
    scale: PriorScale | None = None,
    iterations: int = 50,
) -> BackendParams:
    """MAP estimate by damped Newton; scores in [0, 1] (fractions act as soft labels)."""
    scale = scale or PriorScale()
    x = _design(states)
    y = np.asarray(scores, dtype=np.float64)
    # A known model's prompt-factor loadings stay as they are: a fixed offset per prompt.
    offset = np.asarray(
        [sum(z * u for z, u in zip(s.factors, prior.factors, strict=False)) for s in states],
        dtype=np.float64,
    )
    mean = np.asarray([prior.ability, prior.discrimination, *prior.skills])
    sd = np.asarray([scale.ability, scale.discrimination, *([scale.skill] * len(CATEGORIES))])
    precision = 1.0 / sd**2

    def objective(b: NDArray[np.float64]) -> float:
        z = x @ b + offset
        # log(1 + e^z) - y z, written to stay finite for large |z|.
        nll = float((np.logaddexp(0.0, z) - y * z).sum())
        return nll + 0.5 * float((precision * (b - mean) ** 2).sum())

    beta = mean.copy()
    value = objective(beta)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ beta + offset, -35.0, 35.0)))
        grad = x.T @ (y - p) - precision * (beta - mean)
        hess = (x * (p * (1 - p))[:, None]).T @ x + np.diag(precision)
        step = np.linalg.solve(hess, grad)
        # Damped: a full Newton step overshoots when the prior sits far from the data (e.g.
        # every prompt of the sample looks very hard), and then diverges.
        t = 1.0
        while t > 1e-6:
            candidate = objective(beta + t * step)
            if candidate <= value - 1e-4 * t * float(grad @ step):
                break
            t *= 0.5
        beta, value = beta + t * step, candidate
        if float(np.abs(t * step).max()) < 1e-8:
            break
    discrimination = max(float(beta[1]), 0.05)
    return BackendParams(
        ability=float(beta[0]),
        discrimination=discrimination,
        skills=tuple(float(v) for v in beta[2:]),
        factors=prior.factors,
    )
