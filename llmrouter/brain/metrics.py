"""Cost-quality metrics of routers: AIQ (RouterBench), APGR and CPT (RouteLLM), hulls.

A curve is a list of operating points ``(cost, quality)``; for two-model data a point also
carries the share of calls sent to the strong model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "aiq",
    "apgr",
    "calls_to_reach",
    "cost_to_reach",
    "cpt",
    "upper_hull",
]

Point = tuple[float, float]


def upper_hull(points: Sequence[Point]) -> list[Point]:
    """The non-decreasing upper convex hull: what mixing the operating points can achieve."""
    pts = sorted(set(points))
    if not pts:
        return []
    # A point is dominated when a cheaper one is at least as good: non-decreasing from the start.
    frontier: list[Point] = []
    for cost, quality in pts:
        if frontier and quality <= frontier[-1][1]:
            continue
        frontier.append((cost, quality))
    hull: list[Point] = []
    for p in frontier:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    return hull


def aiq(points: Sequence[Point], cost_range: tuple[float, float]) -> float:
    """Average quality of the hull over ``cost_range``.

    Beyond the hull's dearest point the quality stays flat (spending more is always possible);
    below its cheapest point it counts 0: an operating point the router cannot reach (say,
    under a written quality floor that keeps it off the cheapest backend) earns no area."""
    hull = upper_hull(points)
    lo, hi = cost_range
    if not hull:
        return 0.0
    if hi <= lo:
        return max(q for _, q in hull)
    grid = np.linspace(lo, hi, 1001)
    xs = np.asarray([c for c, _ in hull])
    ys = np.asarray([q for _, q in hull])
    values = np.interp(grid, xs, ys, left=0.0, right=ys[-1])
    area = float(np.sum((values[1:] + values[:-1]) * np.diff(grid)) / 2.0)
    return area / (hi - lo)


def apgr(shares: Sequence[float], qualities: Sequence[float], weak: float, strong: float) -> float:
    """Average performance gap recovered over strong-call shares 0..1 (best point per share)."""
    if strong == weak:
        return 0.0
    grid = np.linspace(0.0, 1.0, 101)
    best = _best_by_share(shares, qualities, grid)
    return float(np.mean((best - weak) / (strong - weak)))


def _best_by_share(
    shares: Sequence[float], qualities: Sequence[float], grid: np.ndarray
) -> np.ndarray:
    """Best quality reachable with at most each share of strong calls (step function)."""
    order = np.argsort(shares)
    s = np.asarray(shares, dtype=float)[order]
    q = np.maximum.accumulate(np.asarray(qualities, dtype=float)[order])
    idx = np.searchsorted(s, grid, side="right") - 1
    out = np.where(idx >= 0, q[np.maximum(idx, 0)], np.nan)
    first = q[0] if len(q) else 0.0
    return np.where(np.isnan(out), first, out)


def cpt(
    shares: Sequence[float], qualities: Sequence[float], weak: float, strong: float, gap: float
) -> float | None:
    """Smallest strong-call share whose quality recovers ``gap`` (e.g. 0.5) of weak->strong."""
    return calls_to_reach(shares, qualities, weak + gap * (strong - weak))


def calls_to_reach(
    shares: Sequence[float], qualities: Sequence[float], target: float
) -> float | None:
    ok = [s for s, q in zip(shares, qualities, strict=True) if q >= target - 1e-12]
    return min(ok) if ok else None


def cost_to_reach(points: Sequence[Point], target: float) -> float | None:
    """Cheapest operating point with quality ≥ ``target`` (None when none reaches it)."""
    ok = [c for c, q in points if q >= target - 1e-12]
    return min(ok) if ok else None
