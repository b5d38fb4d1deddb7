"""A plain L-BFGS for smooth unconstrained losses with ~10^6 parameters.

scipy's L-BFGS-B spends most of its time on bound handling at this size; without bounds
the two-loop recursion is a handful of numpy vector operations per step.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

__all__ = ["lbfgs"]

Vector = NDArray[np.float64]


def lbfgs(
    fun: Callable[[Vector], tuple[float, Vector]],
    x0: Vector,
    max_iter: int = 200,
    memory: int = 10,
    tol: float = 1e-7,
) -> tuple[Vector, float, int]:
    """Minimise ``fun`` (returning value and gradient); returns (x, value, iterations)."""
    x = x0.astype(np.float64, copy=True)
    value, grad = fun(x)
    s_hist: list[Vector] = []
    y_hist: list[Vector] = []
    iteration = 0
    for iteration in range(1, max_iter + 1):  # noqa: B007 (the count is returned)
        direction = -grad
        alphas = []
        for s, y in zip(reversed(s_hist), reversed(y_hist), strict=True):
            rho = 1.0 / float(y @ s)
            alpha = rho * float(s @ direction)
            direction = direction - alpha * y
            alphas.append((rho, alpha))
        if s_hist:
            direction = direction * (
                float(s_hist[-1] @ y_hist[-1]) / float(y_hist[-1] @ y_hist[-1])
            )
        for (s, y), (rho, alpha) in zip(
            zip(s_hist, y_hist, strict=True), reversed(alphas), strict=True
        ):
            beta = rho * float(y @ direction)
            direction = direction + (alpha - beta) * s
        slope = float(grad @ direction)
        if slope >= 0:
            direction, slope = -grad, -float(grad @ grad)
            s_hist.clear()
            y_hist.clear()
        step = 1.0 if s_hist else min(1.0, 1.0 / max(float(np.abs(grad).sum()), 1e-12))
        while True:
            candidate = x + step * direction
            new_value, new_grad = fun(candidate)
            if new_value <= value + 1e-4 * step * slope or step < 1e-10:
                break
            step *= 0.5
        s_vec, y_vec = candidate - x, new_grad - grad
        done = abs(value - new_value) <= tol * max(abs(value), 1.0)
        x, value, grad = candidate, new_value, new_grad
        if float(y_vec @ s_vec) > 1e-12:
            s_hist.append(s_vec)
            y_hist.append(y_vec)
            if len(s_hist) > memory:
                s_hist.pop(0)
                y_hist.pop(0)
        if done:
            break
    return x, value, iteration
