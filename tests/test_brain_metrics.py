"""Metrics (hull, AIQ, APGR, CPT), the decision rule, and calibration fitting."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from llmrouter.brain.abilities import BackendParams
from llmrouter.brain.calibration import fit_backend
from llmrouter.brain.evaluation import (
    EvalMatrix,
    decide,
    decide_value,
    default_prices,
    evaluate,
)
from llmrouter.brain.metrics import aiq, apgr, cost_to_reach, cpt, upper_hull
from llmrouter.brain.model import PromptState


def test_upper_hull_drops_dominated_and_concave_points() -> None:
    points = [(1.0, 0.5), (2.0, 0.55), (3.0, 0.9), (4.0, 0.8), (2.5, 0.4)]
    assert upper_hull(points) == [(1.0, 0.5), (3.0, 0.9)]


def test_aiq_of_a_single_point_is_flat_and_of_a_line_is_its_mean() -> None:
    assert aiq([(1.0, 0.6)], (1.0, 3.0)) == pytest.approx(0.6)
    assert aiq([(1.0, 0.4), (3.0, 0.8)], (1.0, 3.0)) == pytest.approx(0.6, abs=1e-3)
    # A curve that never reaches the cheap end (a written floor keeps it off the cheapest
    # backend) earns nothing there: 0.8 over the dearer half only.
    assert aiq([(2.0, 0.8), (3.0, 0.8)], (1.0, 3.0)) == pytest.approx(0.4, abs=1e-3)


def test_apgr_and_cpt_of_random_mixing() -> None:
    shares = list(np.linspace(0, 1, 101))
    qualities = [0.6 + 0.2 * s for s in shares]
    assert apgr(shares, qualities, 0.6, 0.8) == pytest.approx(0.5, abs=0.01)
    assert cpt(shares, qualities, 0.6, 0.8, 0.5) == pytest.approx(0.5, abs=0.011)
    assert cost_to_reach([(1, 0.5), (2, 0.7)], 0.9) is None


def test_decide_takes_the_cheapest_backend_clearing_the_floor() -> None:
    probs = np.asarray([[0.9, 0.95], [0.5, 0.8], [0.3, 0.4]])
    cost = np.asarray([[1.0, 10.0]] * 3)
    assert decide(probs, cost, 0.7).tolist() == [0, 1, 1]
    assert decide(probs, cost, 0.0).tolist() == [0, 0, 0]


def test_decide_value_weighs_the_quality_gain_against_the_extra_cost() -> None:
    probs = np.asarray([[0.9, 0.95], [0.5, 0.8], [0.3, 0.4]])
    cost = np.asarray([[1.0, 10.0]] * 3)
    # Gains per extra unit of cost: 0.05/9, 0.3/9, 0.1/9.
    assert decide_value(probs, cost, 0.0).tolist() == [1, 1, 1]
    assert decide_value(probs, cost, 0.02).tolist() == [0, 1, 0]
    assert decide_value(probs, cost, 1.0).tolist() == [0, 0, 0]
    # Equal predictions go to the cheaper backend even at price 0.
    assert decide_value(np.asarray([[0.7, 0.7]]), cost[:1], 0.0).tolist() == [0]


def test_default_prices_reach_every_decision() -> None:
    rng = np.random.default_rng(1)
    probs = rng.random((50, 3))
    cost = np.tile([1.0, 2.0, 5.0], (50, 1))
    prices = default_prices(probs, cost)
    assert prices[0] == 0.0
    assert (decide_value(probs, cost, prices[-1]) == 0).all()  # the cheapest, everywhere


def _nearly_perfect_two_model_matrix() -> EvalMatrix:
    """A weak and a strong model (the strong one right whenever the weak one is), with
    predictions close to the truth."""
    rng = np.random.default_rng(0)
    n = 400
    weak = (rng.random(n) < 0.6).astype(float)
    strong = np.maximum(weak, (rng.random(n) < 0.7).astype(float))
    scores = np.column_stack([weak, strong])
    costs = np.tile([1.0, 10.0], (n, 1))
    probs = np.clip(scores + rng.normal(0, 0.05, scores.shape), 0, 1)
    return EvalMatrix(["weak", "strong"], scores, costs, costs, probs)


def test_the_value_rule_of_a_perfect_predictor_beats_the_baselines() -> None:
    matrix = _nearly_perfect_two_model_matrix()
    report = evaluate(matrix, rule="value")
    assert report["rule"] == "value"
    assert "price" in report["router"]["curve"][0]
    assert report["router"]["aiq"] > report["baselines"]["zero_router"]["aiq"]
    assert report["two_model"]["apgr"] > 0.7
    with pytest.raises(ValueError, match="rule"):
        evaluate(matrix, rule="best")


def test_a_perfect_predictor_beats_the_baselines() -> None:
    report = evaluate(_nearly_perfect_two_model_matrix())
    assert report["router"]["aiq"] > report["baselines"]["zero_router"]["aiq"]
    assert report["two_model"]["apgr"] > 0.7
    assert report["router"]["cost_to_target"] < 0.6


def _states(n: int, seed: int) -> list[PromptState]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        demands = [rng.random() for _ in range(5)]
        total = sum(demands)
        out.append(PromptState(rng.gauss(0, 1.2), tuple(d / total for d in demands)))
    return out


def _draw(states: list[PromptState], params: BackendParams, seed: int) -> list[float]:
    rng = random.Random(seed)
    scores = []
    for s in states:
        logit = params.ability - params.discrimination * s.difficulty
        logit += sum(d * k for d, k in zip(s.demands, params.skills, strict=True))
        scores.append(float(rng.random() < 1 / (1 + math.exp(-logit))))
    return scores


def test_calibration_recovers_ability_from_100_prompts() -> None:
    truth = BackendParams(ability=1.2, discrimination=1.0)
    errors = []
    for seed in range(5):
        states = _states(100, seed)
        fitted = fit_backend(states, _draw(states, truth, seed), BackendParams(0.0))
        errors.append(abs(fitted.ability - truth.ability))
    assert float(np.mean(errors)) < 0.4


def test_calibration_with_few_prompts_stays_near_the_prior() -> None:
    states = _states(3, 1)
    prior = BackendParams(ability=0.5)
    fitted = fit_backend(states, [1.0, 1.0, 1.0], prior)
    assert prior.ability < fitted.ability < prior.ability + 1.5
    assert 0.5 < fitted.discrimination < 1.5
