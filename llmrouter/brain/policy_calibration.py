"""Calibrate every backend of a policy from labelled prompts, and say what it implies.

The result is the policy's own YAML with a ``calibration:`` mapping added per backend; the
summary reports, by the policy's rule (at its quality floor, or at its answer_value_usd), the
share of the sample each backend would get and the quality the predictor expects. Records
without a score for any of the policy's backends are *traffic*: they fit nothing, but the
summary also reports the shares on them alone, because the share a backend gets depends on
the traffic's own mix of prompts far more than on the labelled sample (a floor set on one task
sends very different shares on another).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmrouter.policy.schema import BackendConfig, Policy

from .abilities import BackendParams, resolve_params
from .calibration import fit_backend
from .costs import cost_matrices
from .dataset import Record, data_keys, unread_records
from .evaluation import decide, decide_value
from .model import PromptState
from .predictor import LearnedPredictor

__all__ = ["CalibrationResult", "calibrate_policy", "probability_matrix"]

MIN_SAMPLES = 10


@dataclass
class CalibrationResult:
    raw: dict[str, Any]
    fitted: dict[str, BackendParams] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    # Records scoring a backend only under its other key (name vs model id), left unread.
    unread: int = 0


def probability_matrix(
    predictor: LearnedPredictor,
    states: Sequence[PromptState],
    params: Sequence[BackendParams],
) -> np.ndarray:
    return np.asarray(
        [[predictor.probability_of(s, p) for p in params] for s in states], dtype=np.float64
    ).reshape(len(states), len(params))


def calibrate_policy(
    policy: Policy,
    raw: dict[str, Any],
    records: Sequence[Record],
    predictor: LearnedPredictor,
    progress: Callable[[int], None] | None = None,
) -> CalibrationResult:
    """Fit each backend with ≥ MIN_SAMPLES scored prompts; leave the others untouched.

    Each record is read as the router reads a request (``analyze_request`` of its chat): the
    predictor judges its last user message, as ``route()`` and ``llmrouter eval`` do, so the
    abilities fitted here are on the footing the router will use them on."""
    from llmrouter.routing import analyze_request

    ids = [(b.name, b.model) for b in policy.backends]
    keys = data_keys(ids, records)
    unread = unread_records(ids, records, keys)
    records = [r.under(keys) for r in records]
    requests = [analyze_request(r.chat(), {}) for r in records]
    states = []
    for facts in requests:
        states.append(predictor.weights.state(facts.focus_text, facts.focus_ids)[0])
        if progress is not None:
            progress(1)
    result = CalibrationResult(raw=copy.deepcopy(raw), unread=unread)
    raw_backends = result.raw.get("backends") or []
    final: list[BackendParams] = []
    for backend in policy.backends:
        prior = resolve_params(backend.model, backend.quality, None, predictor.weights.meta)
        pairs = [
            (state, score)
            for state, record in zip(states, records, strict=True)
            if (score := record.scores.get(backend.name)) is not None
        ]
        if len(pairs) < MIN_SAMPLES:
            result.skipped[backend.name] = f"{len(pairs)} scored prompts (need {MIN_SAMPLES})"
            final.append(predictor.params(backend))
            continue
        fitted = fit_backend([s for s, _ in pairs], [y for _, y in pairs], prior)
        result.fitted[backend.name] = fitted
        result.samples[backend.name] = len(pairs)
        final.append(fitted)
        for entry in raw_backends:
            if isinstance(entry, dict) and entry.get("name") == backend.name:
                entry["calibration"] = fitted.as_mapping()
    tokens = [facts.prompt_tokens for facts in requests]
    result.summary = _summary(policy, records, tokens, states, predictor, final)
    return result


def _summary(
    policy: Policy,
    records: Sequence[Record],
    prompt_tokens: Sequence[int],
    states: Sequence[PromptState],
    predictor: LearnedPredictor,
    params: Sequence[BackendParams],
) -> dict[str, Any]:
    """Shares and expected quality by the policy's rule, on the calibration sample: at its
    ``quality_floor`` under ``rule: floor``; under ``rule: value`` at its ``answer_value_usd``
    (a written floor held as the minimum), with the router's cost estimates."""
    if not records:
        return {}
    probs = probability_matrix(predictor, states, params)
    routing = policy.routing
    worth = routing.answer_value_usd  # set exactly when rule: value
    if worth is None:
        _, expected = cost_matrices(records, policy.backends, routing.expected_output_tokens)
        floor = routing.quality_floor
        choice = decide(probs, expected, floor)
    else:
        expected = _router_costs(prompt_tokens, policy.backends, routing.expected_output_tokens)
        floor = routing.value_floor
        choice = decide_value(probs, expected, 1.0 / worth, floor)
    rows = np.arange(len(records))
    shares = np.bincount(choice, minlength=len(params)) / len(records)
    per_backend = {}
    for j, backend in enumerate(policy.backends):
        scored = [
            (probs[i, j], y)
            for i, r in enumerate(records)
            if (y := r.scores.get(backend.name)) is not None
        ]
        per_backend[backend.name] = {
            "share_at_floor": round(float(shares[j]), 4),
            "scored_prompts": len(scored),
            "predicted_quality": round(float(np.mean([p for p, _ in scored])), 4)
            if scored
            else None,
            "observed_quality": round(float(np.mean([y for _, y in scored])), 4)
            if scored
            else None,
        }
    out: dict[str, Any] = {
        "rule": routing.rule,
        "answer_value_usd": worth,
        "quality_floor": floor,
        "prompts": len(records),
        "expected_quality_at_floor": round(float(probs[rows, choice].mean()), 4),
        "backends": per_backend,
    }
    traffic = np.asarray([not r.scores for r in records])
    if traffic.any():
        picked = choice[traffic]
        out["traffic"] = {
            "prompts": int(traffic.sum()),
            "expected_quality_at_floor": round(
                float(probs[traffic][np.arange(len(picked)), picked].mean()), 4
            ),
            "share_at_floor": {
                b.name: round(float((picked == j).mean()), 4) for j, b in enumerate(policy.backends)
            },
        }
    return out


def _router_costs(
    prompt_tokens: Sequence[int], backends: Sequence[BackendConfig], output_tokens: int
) -> np.ndarray:
    """What the router estimates each record costs on each backend (its chat's prompt tokens,
    framing included), as ``llmrouter eval`` does: the value rule weighs these."""
    from llmrouter.routing.selector import estimated_cost_usd

    out = np.zeros((len(prompt_tokens), len(backends)))
    for i, tokens in enumerate(prompt_tokens):
        for j, backend in enumerate(backends):
            out[i, j] = estimated_cost_usd(backend, tokens, output_tokens)
    return out
