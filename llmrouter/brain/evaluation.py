"""Offline evaluation: route recorded prompts over a sweep of operating points, no calls.

Two decision rules. ``floor`` is the router's: among backends whose predicted probability
clears the floor take the lowest expected cost, else the best-predicted one. ``value`` is
expected utility: the backend maximising ``p - price * expected_cost`` for a price (cost
units one pays per point of expected quality), swept from 0 (best-predicted) upwards. With
many backends the floor rule reads each probability against a fixed line, so a cheap backend
whose noisy estimate lands just above it wins over a far better one that costs a little
more; the value rule weighs how much better against how much dearer. Realised quality and
cost come from the data. Baselines: each single backend, random mixing of the cheapest and
the best backend, the zero router (hull of single backends) and the oracle.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .metrics import aiq, apgr, calls_to_reach, cost_to_reach, cpt, upper_hull

__all__ = [
    "RULES",
    "EvalMatrix",
    "decide",
    "decide_value",
    "default_floors",
    "default_prices",
    "evaluate",
    "sweep",
]

Array = NDArray[np.float64]
RULES = ("floor", "value")


@dataclass
class EvalMatrix:
    """Per-prompt, per-backend arrays (N x B) for prompts scored on every backend."""

    backends: list[str]
    scores: Array
    costs: Array
    expected_cost: Array
    probs: Array


def decide(probs: Array, expected_cost: Array, floor: float) -> NDArray[np.int64]:
    """Index of the chosen backend per prompt (cheapest clearing the floor, else best)."""
    eligible = probs >= floor
    masked = np.where(eligible, expected_cost, np.inf)
    # Ties in cost go to the higher probability.
    masked = masked - 1e-12 * probs
    cheapest = np.argmin(masked, axis=1)
    best = np.argmax(probs, axis=1)
    return np.where(eligible.any(axis=1), cheapest, best).astype(np.int64)


def decide_value(
    probs: Array, expected_cost: Array, price: float, floor: float = 0.0
) -> NDArray[np.int64]:
    """Index of the backend maximising ``p - price * expected_cost`` per prompt.

    Ties go to the cheaper backend (then the better-predicted): at a price of 0 the
    best-predicted backend, at a very high price the cheapest. Only backends with
    ``p >= floor`` compete; a prompt where none does gets its best-predicted backend, as
    under the floor rule. The router's value rule is this at ``price = 1 / answer_value_usd``.
    """
    eligible = probs >= floor
    # A free backend costs nothing at any price (also at price = inf, where inf * 0 is NaN).
    with np.errstate(invalid="ignore", over="ignore"):
        charged = np.where(expected_cost == 0, 0.0, price * expected_cost)
    utility = np.where(eligible, probs - charged, -np.inf)
    best = utility.max(axis=1, keepdims=True)
    tied = eligible & (utility >= best - 1e-12)
    masked = np.where(tied, expected_cost, np.inf) - 1e-12 * probs
    chosen = np.argmin(masked, axis=1)
    return np.where(eligible.any(axis=1), chosen, np.argmax(probs, axis=1)).astype(np.int64)


def default_prices(
    probs: Array, expected_cost: Array, count: int = 200, sample: int = 20_000
) -> list[float]:
    """0, plus quantiles of the prices at which a prompt's choice can change.

    Between two backends of a prompt the choice flips at ``Δp / Δcost``; quantiles of
    those break-even prices (over all pairs, positive ones; for the quantiles an evenly
    spaced ``sample`` of the prompts at most) reach every distinct decision the way
    ``default_floors``' quantiles of the probabilities do for the floor rule. The last price
    exceeds every prompt's largest break-even price: the cheapest backend everywhere.
    """
    n, b = probs.shape
    subset = np.linspace(0, n - 1, min(n, sample)).astype(np.int64)
    top = 0.0
    ratios: list[Array] = []
    for i, j in itertools.combinations(range(b), 2):
        dp = probs[:, i] - probs[:, j]
        dc = expected_cost[:, i] - expected_cost[:, j]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = dp / dc
        ratio = np.where((dp * dc > 0) & np.isfinite(ratio), ratio, np.nan)
        if np.isfinite(ratio).any():
            top = max(top, float(np.nanmax(ratio)))
            picked = ratio[subset]
            ratios.append(picked[np.isfinite(picked)])
    found = np.concatenate(ratios) if ratios else np.zeros(0)
    if top <= 0.0:
        return [0.0]
    quantiles: list[float] = (
        np.quantile(found, np.linspace(0.0, 1.0, count)).tolist() if found.size else []
    )
    return sorted({0.0, top * 1.01, *quantiles})


def default_floors(probs: Array, count: int = 200) -> list[float]:
    """A grid plus quantiles of the predictions, so every distinct decision is reached."""
    grid = np.linspace(0.0, 1.0, 101)
    quantiles = np.quantile(probs, np.linspace(0.0, 1.0, count))
    return sorted({round(float(x), 6) for x in np.concatenate([grid, quantiles])})


def sweep(
    data: EvalMatrix,
    floors: Sequence[float],
    progress: Callable[[int], None] | None = None,
    rule: str = "floor",
    value_floor: float = 0.0,
) -> list[dict[str, Any]]:
    """One operating point per floor (``rule="floor"``) or per price (``rule="value"``,
    where ``value_floor`` is the fixed minimum probability, as the policy's ``quality_floor``
    is under ``rule: value``)."""
    if rule not in RULES:
        raise ValueError(f"unknown decision rule {rule!r}; expected one of {RULES}")
    rows = np.arange(data.scores.shape[0])
    key = "floor" if rule == "floor" else "price"
    curve = []
    for floor in floors:
        choice = (
            decide(data.probs, data.expected_cost, floor)
            if rule == "floor"
            else decide_value(data.probs, data.expected_cost, floor, value_floor)
        )
        shares = np.bincount(choice, minlength=len(data.backends)) / max(len(choice), 1)
        curve.append(
            {
                key: round(float(floor), 6) if rule == "floor" else float(floor),
                "cost": float(data.costs[rows, choice].mean()),
                "quality": float(data.scores[rows, choice].mean()),
                "shares": {
                    b: round(float(s), 6) for b, s in zip(data.backends, shares, strict=True)
                },
            }
        )
        if progress is not None:
            progress(1)
    return curve


def _oracle(data: EvalMatrix) -> tuple[float, float]:
    """Per prompt, the cheapest backend among those with the best score."""
    best = data.scores.max(axis=1, keepdims=True)
    masked = np.where(data.scores >= best - 1e-12, data.costs, np.inf)
    choice = np.argmin(masked, axis=1)
    rows = np.arange(len(choice))
    return float(data.costs[rows, choice].mean()), float(data.scores[rows, choice].mean())


def evaluate(
    data: EvalMatrix,
    floors: Sequence[float] | None = None,
    progress: Callable[[int], None] | None = None,
    target_share: float = 0.95,
    reference: str | None = None,
    rule: str = "floor",
    value_floor: float = 0.0,
) -> dict[str, Any]:
    """The full report: router curve and metrics, and the same metrics for the baselines.

    ``floors`` are quality floors for ``rule="floor"`` and prices for ``rule="value"``
    (default: ``default_floors`` / ``default_prices`` of the predictions); ``value_floor``
    is the value rule's fixed minimum probability.
    """
    if floors is None:
        floors = (
            default_floors(data.probs)
            if rule == "floor"
            else default_prices(data.probs, data.expected_cost)
        )
    curve = sweep(data, list(floors), progress, rule, value_floor)
    single = {
        b: {"cost": float(data.costs[:, j].mean()), "quality": float(data.scores[:, j].mean())}
        for j, b in enumerate(data.backends)
    }
    cheapest = min(single, key=lambda b: (single[b]["cost"], -single[b]["quality"]))
    if reference is None:
        reference = max(single, key=lambda b: (single[b]["quality"], -single[b]["cost"]))
    ref_cost, ref_quality = single[reference]["cost"], single[reference]["quality"]
    cost_range = (single[cheapest]["cost"], max(s["cost"] for s in single.values()))
    target = target_share * ref_quality
    points = [(p["cost"], p["quality"]) for p in curve]
    single_points = [(s["cost"], s["quality"]) for s in single.values()]
    random_points = [
        (
            (1 - t) * single[cheapest]["cost"] + t * ref_cost,
            (1 - t) * single[cheapest]["quality"] + t * ref_quality,
        )
        for t in np.linspace(0.0, 1.0, 101)
    ]
    oracle_point = _oracle(data)

    def share_of_cost(cost: float | None) -> float | None:
        return None if cost is None or ref_cost <= 0 else round(cost / ref_cost, 6)

    def hull_cost_to_reach(pts: list[tuple[float, float]]) -> float | None:
        hull = upper_hull(pts)
        for (c1, q1), (c2, q2) in itertools.pairwise(hull):
            if q1 >= target:
                return c1
            if q2 >= target:
                return c1 + (c2 - c1) * (target - q1) / (q2 - q1)
        return hull[-1][0] if hull and hull[-1][1] >= target else None

    report: dict[str, Any] = {
        "prompts": int(data.scores.shape[0]),
        "rule": rule,
        "backends": list(data.backends),
        "reference": reference,
        "cheapest": cheapest,
        "target_quality": round(target, 6),
        "cost_range": [round(cost_range[0], 9), round(cost_range[1], 9)],
        "router": {
            "aiq": round(aiq(points, cost_range), 6),
            "cost_to_target": share_of_cost(cost_to_reach(points, target)),
            "curve": curve,
        },
        "baselines": {
            "single": {b: {k: round(v, 9) for k, v in s.items()} for b, s in single.items()},
            "single_aiq": {
                b: round(aiq([(s["cost"], s["quality"])], cost_range), 6) for b, s in single.items()
            },
            "random": {
                "aiq": round(aiq(random_points, cost_range), 6),
                "cost_to_target": share_of_cost(hull_cost_to_reach(random_points)),
            },
            "zero_router": {
                "aiq": round(aiq(single_points, cost_range), 6),
                "cost_to_target": share_of_cost(hull_cost_to_reach(single_points)),
            },
            "oracle": {
                "cost": round(oracle_point[0], 9),
                "quality": round(oracle_point[1], 6),
                "aiq": round(aiq([*single_points, oracle_point], cost_range), 6),
                "cost_to_target": share_of_cost(hull_cost_to_reach([*single_points, oracle_point])),
            },
        },
    }
    if len(data.backends) == 2:
        report["two_model"] = _two_model(curve, single, cheapest, reference, target)
    return report


def _two_model(
    curve: list[dict[str, Any]],
    single: dict[str, dict[str, float]],
    weak: str,
    strong: str,
    target: float,
) -> dict[str, Any]:
    if weak == strong:
        strong = next(b for b in single if b != weak)
    shares = [p["shares"][strong] for p in curve]
    qualities = [p["quality"] for p in curve]
    q_weak, q_strong = single[weak]["quality"], single[strong]["quality"]

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 6)

    strong_calls = calls_to_reach(shares, qualities, target)
    return {
        "weak": weak,
        "strong": strong,
        "apgr": r(apgr(shares, qualities, q_weak, q_strong)),
        "cpt50": r(cpt(shares, qualities, q_weak, q_strong, 0.5)),
        "cpt80": r(cpt(shares, qualities, q_weak, q_strong, 0.8)),
        "strong_calls_at_target": r(strong_calls),
        "fewer_strong_calls_at_target": r(None if strong_calls is None else 1 - strong_calls),
        "random": {
            "apgr": 0.5,
            "cpt50": 0.5,
            "cpt80": 0.8,
            "strong_calls_at_target": r(
                None
                if q_strong == q_weak
                else min(max((target - q_weak) / (q_strong - q_weak), 0.0), 1.0)
            ),
        },
    }
