"""Measure every target of the routing-brain issue on prompts the brain did not train on.

Protocol: 5-fold cross-validation by prompt over all shared sets at once; each prompt is
scored by the brain trained on the other four folds. Folds come from
``llmrouter.brain.folds.fold_groups``: prompts that share a rare 12-word run (the same
question wrapped differently in two sets, e.g. GSM8K's test questions inside the LLMRouter
set) share a fold, so no brain is scored on a question it trained on. The
calibration-under-shift experiment uses a brain trained without RouteLLM and RouterBench at
all (their models and prompts are unseen), then calibrates from 100 prompts of one task and
routes another; the share it predicts is read both on the labelled sample and on 100
unlabelled prompts of the target task (traffic).

Every routing figure is given for two decision rules (``llmrouter.brain.evaluation``): the
router's quality floor, and expected value (``p - price * cost``), under ``value_rule``.

Usage: python benchmarks/brain_eval.py [--shared ../shared/data] [--jobs 2] [--json]
                                      [--cache DIR] [--set KEY=VALUE ...]
Fold weights are cached in build/brain-cv-v6/ (delete it to retrain); needs ../shared.
``--set`` overrides a ``TrainConfig`` field for the fold brains (pair it with a new --cache).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gsm8k_grading import gsm8k_grading  # noqa: E402  (this directory is on sys.path)

from llmrouter.brain.abilities import BackendParams, rating_ability, resolve_params  # noqa: E402
from llmrouter.brain.calibration import fit_backend  # noqa: E402
from llmrouter.brain.convert import llmrouter_prices, load_shared  # noqa: E402
from llmrouter.brain.dataset import Record  # noqa: E402
from llmrouter.brain.evaluation import (  # noqa: E402
    EvalMatrix,
    decide,
    decide_value,
    default_floors,
    default_prices,
    evaluate,
)
from llmrouter.brain.folds import fold_groups  # noqa: E402
from llmrouter.brain.model import BrainWeights, PromptState  # noqa: E402
from llmrouter.brain.predictor import LearnedPredictor  # noqa: E402
from llmrouter.brain.training import (  # noqa: E402
    FeatureMatrix,
    TrainConfig,
    featurize,
    train,
)
from llmrouter.tokens import count_text_tokens, encode  # noqa: E402

FOLDS = 5
GPT4 = "gpt-4-1106-preview"
MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"

_records: list[Record] = []
_feats: FeatureMatrix | None = None
_config = TrainConfig()


def _train_subset(args: tuple[list[int], str]) -> str:
    rows, out = args
    assert _feats is not None
    sub = FeatureMatrix(_feats.hashed[rows], _feats.structural[rows])
    weights = train([_records[i] for i in rows], _config, feats=sub)
    weights.save(out)
    return out


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    pos = labels.astype(bool)
    n1, n0 = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _probs(states: list[PromptState], params: list[list[BackendParams]]) -> np.ndarray:
    return np.asarray(
        [
            [LearnedPredictor.probability_of(s, p) for p in row]
            for s, row in zip(states, params, strict=True)
        ]
    )


def _interval(
    data: EvalMatrix, metric: Callable[[EvalMatrix], float | None], reps: int, seed: int = 0
) -> list[float] | None:
    """The 5th and 95th percentiles of ``metric`` over ``reps`` resamples of the prompts,
    predictions held fixed: how much of a figure is the luck of this evaluation set. A
    resample on which the metric is undefined (the target is never reached) counts as 1.0."""
    if reps <= 0:
        return None
    rng = np.random.default_rng(seed)
    n = data.scores.shape[0]
    values = []
    for _ in range(reps):
        rows = rng.integers(0, n, n)
        sample = EvalMatrix(
            backends=data.backends,
            scores=data.scores[rows],
            costs=data.costs[rows],
            expected_cost=data.expected_cost[rows],
            probs=data.probs[rows],
        )
        value = metric(sample)
        values.append(1.0 if value is None else value)
    low, high = np.percentile(values, [5, 95])
    return [round(float(low), 4), round(float(high), 4)]


class CrossValidation:
    def __init__(self, sets: dict[str, list[Record]], cache: Path, jobs: int) -> None:
        global _records, _feats
        self.sets = sets
        self.records = [r for rs in sets.values() for r in rs]
        self.set_of = [name for name, rs in sets.items() for _ in rs]
        self.fold = np.asarray(fold_groups([r.text for r in self.records]))
        _records = self.records
        started = time.perf_counter()
        _feats = featurize([r.text for r in self.records])
        print(
            f"featurised {len(self.records)} prompts in {time.perf_counter() - started:.0f}s",
            file=sys.stderr,
        )
        cache.mkdir(parents=True, exist_ok=True)
        jobs_todo = []
        for k in range(FOLDS):
            out = cache / f"fold{k}"
            if not out.with_suffix(".npz").exists():
                jobs_todo.append((list(np.flatnonzero(self.fold != k)), str(out)))
        blind = cache / "no_routellm_routerbench"
        if not blind.with_suffix(".npz").exists():
            keep = [
                i
                for i, s in enumerate(self.set_of)
                if not s.startswith(("routellm", "routerbench"))
            ]
            jobs_todo.append((keep, str(blind)))
        if jobs_todo:
            started = time.perf_counter()
            with multiprocessing.get_context("fork").Pool(jobs) as pool:
                for out in pool.imap_unordered(_train_subset, jobs_todo):
                    print(f"trained {out} ({time.perf_counter() - started:.0f}s)", file=sys.stderr)
        self.weights = [BrainWeights.load(cache / f"fold{k}") for k in range(FOLDS)]
        self.blind = BrainWeights.load(blind)
        self.states = [
            self.weights[self.fold[i]].state(r.text, encode(r.text))[0]
            for i, r in enumerate(self.records)
        ]

    def rows(self, name: str) -> list[int]:
        return [i for i, s in enumerate(self.set_of) if s == name]

    def matrix(
        self, rows: list[int], models: list[str], costs: np.ndarray, expected: np.ndarray
    ) -> EvalMatrix:
        params = [
            [resolve_params(m, 0.5, None, self.weights[self.fold[i]].meta) for m in models]
            for i in rows
        ]
        return EvalMatrix(
            backends=models,
            scores=np.asarray([[self.records[i].scores[m] for m in models] for i in rows]),
            costs=costs,
            expected_cost=expected,
            probs=_probs([self.states[i] for i in rows], params),
        )


def _reported(rule: str, section: str, key: str) -> Callable[[EvalMatrix], float | None]:
    """One figure of ``evaluate``'s report by ``rule`` (e.g. two_model's fewer strong calls),
    as a function of the evaluation matrix, for ``_interval``."""

    def metric(data: EvalMatrix) -> float | None:
        floors = default_floors(data.probs) if rule == "floor" else None
        return evaluate(data, floors, reference=GPT4, rule=rule)[section][key]

    return metric


def _two_model(data: EvalMatrix, reps: int) -> dict[str, Any]:
    """RouteLLM's figures for a Mixtral/GPT-4 matrix, by both rules."""
    report = evaluate(data, default_floors(data.probs), reference=GPT4)
    two = report["two_model"]
    value = evaluate(data, reference=GPT4, rule="value")["two_model"]
    return {
        "prompts": data.scores.shape[0],
        "gpt4_quality": report["baselines"]["single"][GPT4]["quality"],
        "mixtral_quality": report["baselines"]["single"][MIXTRAL]["quality"],
        "fewer_gpt4_calls_at_95pct": two["fewer_strong_calls_at_target"],
        "fewer_gpt4_calls_at_95pct_interval90": _interval(
            data, _reported("floor", "two_model", "fewer_strong_calls_at_target"), reps
        ),
        "random_fewer_gpt4_calls_at_95pct": 1 - two["random"]["strong_calls_at_target"],
        "apgr": two["apgr"],
        "cpt50": two["cpt50"],
        "cpt80": two["cpt80"],
        "value_rule": {
            "fewer_gpt4_calls_at_95pct": value["fewer_strong_calls_at_target"],
            "fewer_gpt4_calls_at_95pct_interval90": _interval(
                data, _reported("value", "two_model", "fewer_strong_calls_at_target"), reps
            ),
            "apgr": value["apgr"],
            "cpt50": value["cpt50"],
            "cpt80": value["cpt80"],
        },
    }


def routellm(cv: CrossValidation, reps: int, shared: Path) -> dict[str, Any]:
    """Mixtral vs GPT-4, cost in units of one Mixtral call (GPT-4 = 10 units).

    ``routellm_gsm8k_regraded``: the same GSM8K decisions scored against labels with GPT-4's
    misgraded answers re-graded right (``gsm8k_grading.py``); the brains are unchanged."""
    out = {}
    for name in ("routellm_mmlu", "routellm_gsm8k", "routellm_mt_bench"):
        rows = [i for i in cv.rows(name) if {GPT4, MIXTRAL} <= set(cv.records[i].scores)]
        cost = np.tile([1.0, 10.0], (len(rows), 1))
        data = cv.matrix(rows, [MIXTRAL, GPT4], cost, cost)
        out[name] = _two_model(data, reps)
        if name == "routellm_gsm8k":
            grading, regraded = gsm8k_grading(shared, [cv.records[i] for i in rows])
            data.scores = np.asarray([[r.scores[MIXTRAL], r.scores[GPT4]] for r in regraded])
            out["routellm_gsm8k_regraded"] = {**_two_model(data, reps), "grading": grading}
    return out


def routerbench(cv: CrossValidation, reps: int) -> dict[str, Any]:
    """Real USD costs; the router decides on each model's mean cost in the training folds."""
    out = {}
    names = [n for n in cv.sets if n.startswith("routerbench_")]
    models = sorted({m for n in names for i in cv.rows(n) for m in cv.records[i].scores})
    for name in [*names, "routerbench_all"]:
        rows = (
            [i for n in names for i in cv.rows(n)] if name == "routerbench_all" else cv.rows(name)
        )
        rows = [i for i in rows if set(models) <= set(cv.records[i].scores)]
        costs = np.asarray([[cv.records[i].costs[m] for m in models] for i in rows])
        expected = np.zeros_like(costs)
        for k in range(FOLDS):
            train_rows = [j for j, i in enumerate(rows) if cv.fold[i] != k]
            mean = costs[train_rows].mean(axis=0)
            expected[[j for j, i in enumerate(rows) if cv.fold[i] == k]] = mean
        data = cv.matrix(rows, models, costs, expected)
        report = evaluate(data, default_floors(data.probs), reference=GPT4)
        value = evaluate(data, reference=GPT4, rule="value")["router"]
        out[name] = {
            "prompts": len(rows),
            "aiq_router": report["router"]["aiq"],
            "aiq_zero_router": report["baselines"]["zero_router"]["aiq"],
            "aiq_random": report["baselines"]["random"]["aiq"],
            "aiq_oracle": report["baselines"]["oracle"]["aiq"],
            "gpt4_quality": report["baselines"]["single"][GPT4]["quality"],
            "cost_to_95pct_gpt4_router": report["router"]["cost_to_target"],
            "cost_to_95pct_gpt4_router_interval90": _interval(
                data, _reported("floor", "router", "cost_to_target"), reps
            ),
            "cost_to_95pct_gpt4_zero_router": report["baselines"]["zero_router"]["cost_to_target"],
            "value_rule": {
                "aiq_router": value["aiq"],
                "cost_to_95pct_gpt4_router": value["cost_to_target"],
                "cost_to_95pct_gpt4_router_interval90": _interval(
                    data, _reported("value", "router", "cost_to_target"), reps
                ),
            },
        }
    return out


def llmrouter_set(cv: CrossValidation, shared: Path) -> dict[str, Any]:
    """Nine open models; cost = prompt tokens x input price + 256 output tokens x output price."""
    prices = llmrouter_prices(shared / "routing" / "llmrouter")
    rows = cv.rows("llmrouter")
    models = sorted({m for i in rows for m in cv.records[i].scores})
    rows = [i for i in rows if set(models) <= set(cv.records[i].scores)]
    tokens = np.asarray([count_text_tokens(cv.records[i].text) for i in rows], dtype=float)
    costs = np.column_stack([(tokens * prices[m][0] + 256 * prices[m][1]) / 1e6 for m in models])
    data = cv.matrix(rows, models, costs, costs)
    best = max(models, key=lambda m: data.scores[:, models.index(m)].mean())
    report = evaluate(data, default_floors(data.probs), target_share=1.0, reference=best)
    value = evaluate(data, target_share=1.0, reference=best, rule="value")["router"]
    return {
        "prompts": len(rows),
        "best_single": best,
        "best_single_quality": report["baselines"]["single"][best]["quality"],
        "router_cost_share_at_best_quality": report["router"]["cost_to_target"],
        "zero_router_cost_share_at_best_quality": report["baselines"]["zero_router"][
            "cost_to_target"
        ],
        "aiq_router": report["router"]["aiq"],
        "aiq_zero_router": report["baselines"]["zero_router"]["aiq"],
        "router_best_quality": max(p["quality"] for p in report["router"]["curve"]),
        "value_rule": {
            "router_cost_share_at_best_quality": value["cost_to_target"],
            "aiq_router": value["aiq"],
            "router_best_quality": max(p["quality"] for p in value["curve"]),
        },
    }


def math_levels(cv: CrossValidation) -> dict[str, Any]:
    rows = [i for i in cv.rows("math") if cv.records[i].level is not None]
    level = np.asarray([cv.records[i].level for i in rows])
    diff = np.asarray([cv.states[i].difficulty for i in rows])
    mask = level != 3
    return {
        "prompts": len(rows),
        "auc_levels_12_vs_45": round(_auc(diff[mask], level[mask] >= 4), 4),
        "mean_difficulty_by_level": {
            str(k): round(float(diff[level == k].mean()), 3) for k in range(1, 6)
        },
    }


def _operating_point(
    p_cal: np.ndarray, y_cal: np.ndarray, exp_cal: np.ndarray, goal: float, rule: str
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The cheapest setting of the rule's knob that reaches ``goal`` on the labelled sample,
    as a chooser: the floor rule's highest floor, the value rule's highest price (that is,
    the lowest ``answer_value_usd``)."""
    rows = np.arange(len(p_cal))
    if rule == "floor":
        floor = 1.0
        for f in default_floors(p_cal):
            if y_cal[rows, decide(p_cal, exp_cal, f)].mean() >= goal:
                floor = f
                break
        return lambda p, c: decide(p, c, floor)
    price = 0.0
    for candidate in reversed(default_prices(p_cal, exp_cal)):
        if y_cal[rows, decide_value(p_cal, exp_cal, candidate)].mean() >= goal:
            price = candidate
            break
    return lambda p, c: decide_value(p, c, price)


def _shift_once(
    predictor: LearnedPredictor,
    calib: list[Record],
    target: list[Record],
    traffic: list[Record],
    models: list[str],
    cost: np.ndarray,
    rule: str,
) -> dict[str, float]:
    prior = BackendParams(rating_ability(0.5, predictor.weights.meta))
    s_cal = predictor.states([r.text for r in calib])
    params = [fit_backend(s_cal, [r.scores[m] for r in calib], prior) for m in models]
    y_cal = np.asarray([[r.scores[m] for m in models] for r in calib])
    strongest = int(np.argmax(y_cal.mean(axis=0)))
    p_cal = np.asarray([[predictor.probability_of(s, p) for p in params] for s in s_cal])
    # The operating point: the cheapest reaching 95% of the strongest's sample quality.
    choose = _operating_point(
        p_cal, y_cal, np.tile(cost, (len(calib), 1)), 0.95 * y_cal[:, strongest].mean(), rule
    )
    predicted_share = float((choose(p_cal, np.tile(cost, (len(calib), 1))) == strongest).mean())
    # What `calibrate` reports for unlabelled traffic records: the share on those prompts.
    s_tr = predictor.states([r.text for r in traffic])
    p_tr = np.asarray([[predictor.probability_of(s, p) for p in params] for s in s_tr])
    traffic_share = float((choose(p_tr, np.tile(cost, (len(traffic), 1))) == strongest).mean())
    s_t = predictor.states([r.text for r in target])
    p_t = np.asarray([[predictor.probability_of(s, p) for p in params] for s in s_t])
    choice = choose(p_t, np.tile(cost, (len(target), 1)))
    y_t = np.asarray([[r.scores[m] for m in models] for r in target])
    rows = np.arange(len(target))
    return {
        "predicted_strong_share": predicted_share,
        "traffic_strong_share": traffic_share,
        "realised_strong_share": float((choice == strongest).mean()),
        "predicted_quality": float(p_t[rows, choice].mean()),
        "realised_quality": float(y_t[rows, choice].mean()),
    }


def calibration_shift(cv: CrossValidation, seeds: int = 5) -> dict[str, Any]:
    """Calibrate on 100 prompts of task A, route all of task B (brain never saw either)."""
    predictor = LearnedPredictor(cv.blind)
    rb = [n for n in cv.sets if n.startswith("routerbench_")]
    rb_models = sorted({m for n in rb for r in cv.sets[n] for m in r.scores})
    rb_cost = np.asarray(
        [np.mean([r.costs[m] for n in rb for r in cv.sets[n] if m in r.costs]) for m in rb_models]
    )
    pairs: list[tuple[str, str, list[str], np.ndarray]] = [
        (a, b, rb_models, rb_cost) for a in rb for b in rb if a != b
    ]
    two = [MIXTRAL, GPT4]
    for a, b in (("routellm_mmlu", "routellm_gsm8k"), ("routellm_gsm8k", "routellm_mmlu")):
        pairs.append((a, b, two, np.asarray([1.0, 10.0])))
    out: dict[str, Any] = {}
    for rule in ("floor", "value"):
        for a, b, models, cost in pairs:
            pool_a = [r for r in cv.sets[a] if set(models) <= set(r.scores)]
            pool_b = [r for r in cv.sets[b] if set(models) <= set(r.scores)]
            runs = []
            for seed in range(seeds):
                rng = np.random.default_rng(seed)
                calib = [pool_a[i] for i in rng.choice(len(pool_a), 100, replace=False)]
                # 100 unlabelled prompts of B (the traffic sample), disjoint from those routed.
                order = rng.permutation(len(pool_b))
                traffic = [pool_b[i] for i in order[:100]]
                target = [pool_b[i] for i in order[100 : 100 + min(500, len(pool_b) - 100)]]
                runs.append(_shift_once(predictor, calib, target, traffic, models, cost, rule))
            key = f"{a} -> {b}" if rule == "floor" else f"value_rule: {a} -> {b}"
            out[key] = _shift_summary(runs)
    return out


def _shift_summary(runs: list[dict[str, float]]) -> dict[str, float]:
    gaps = [abs(r["realised_strong_share"] - r["predicted_strong_share"]) for r in runs]
    t_gaps = [abs(r["realised_strong_share"] - r["traffic_strong_share"]) for r in runs]

    def mean(key: str) -> float:
        return round(float(np.mean([r[key] for r in runs])), 3)

    return {
        "mean_abs_share_gap_points": round(100 * float(np.mean(gaps)), 1),
        "max_abs_share_gap_points": round(100 * float(np.max(gaps)), 1),
        "traffic_mean_abs_share_gap_points": round(100 * float(np.mean(t_gaps)), 1),
        "traffic_max_abs_share_gap_points": round(100 * float(np.max(t_gaps)), 1),
        "predicted_strong_share": mean("predicted_strong_share"),
        "traffic_strong_share": mean("traffic_strong_share"),
        "realised_strong_share": mean("realised_strong_share"),
        "predicted_quality": mean("predicted_quality"),
        "realised_quality": mean("realised_quality"),
    }


def new_models(cv: CrossValidation, labelled: int = 100, seeds: int = 3) -> dict[str, Any]:
    """Models the brain never saw, calibrated from ``labelled`` scored prompts of a task,
    routing the rest of that task: what a user with a new model and a small labelled sample
    gets. The brain trained without RouteLLM and RouterBench; each model starts from rating
    0.5 and is fitted by ``fit_backend``, as ``llmrouter calibrate`` does. Means over seeds."""
    predictor = LearnedPredictor(cv.blind)
    prior = BackendParams(rating_ability(0.5, predictor.weights.meta))
    rb_models = sorted({m for r in cv.sets["routerbench_mbpp"] for m in r.scores})
    tasks: list[tuple[str, list[str]]] = [
        ("routellm_mmlu", [MIXTRAL, GPT4]),
        ("routellm_gsm8k", [MIXTRAL, GPT4]),
        *[(n, rb_models) for n in cv.sets if n.startswith("routerbench_")],
    ]
    out: dict[str, Any] = {}
    for name, models in tasks:
        records = [r for r in cv.sets[name] if all(r.scores.get(m) is not None for m in models)]
        states = predictor.states([r.text for r in records])
        scores = np.asarray([[r.scores[m] for m in models] for r in records])
        if name.startswith("routellm"):
            costs = np.tile([1.0, 10.0], (len(records), 1))
        else:
            costs = np.asarray([[r.costs[m] for m in models] for r in records])
        runs = []
        for seed in range(seeds):
            order = np.random.default_rng(seed).permutation(len(records))
            sample, rest = order[:labelled], order[labelled:]
            params = [
                fit_backend([states[i] for i in sample], scores[sample, j], prior)
                for j in range(len(models))
            ]
            data = EvalMatrix(
                backends=models,
                scores=scores[rest],
                costs=costs[rest],
                expected_cost=np.tile(costs[sample].mean(axis=0), (len(rest), 1)),
                probs=_probs([states[i] for i in rest], [params] * len(rest)),
            )
            floor = evaluate(data, default_floors(data.probs), reference=GPT4)
            value = evaluate(data, reference=GPT4, rule="value")
            if len(models) == 2:
                runs.append(
                    {
                        "fewer_gpt4_calls_at_95pct": floor["two_model"][
                            "fewer_strong_calls_at_target"
                        ],
                        "value_rule_fewer_gpt4_calls_at_95pct": value["two_model"][
                            "fewer_strong_calls_at_target"
                        ],
                    }
                )
            else:
                runs.append(
                    {
                        "aiq_router": floor["router"]["aiq"],
                        "value_rule_aiq_router": value["router"]["aiq"],
                        "aiq_zero_router": floor["baselines"]["zero_router"]["aiq"],
                    }
                )
        out[name] = {
            "labelled": labelled,
            "routed": len(records) - labelled,
            **{key: round(float(np.mean([r[key] or 0.0 for r in runs])), 4) for key in runs[0]},
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--cache", type=Path, default=REPO / "build" / "brain-cv-v6")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--max-iter", type=int, default=TrainConfig().max_iter)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a TrainConfig override for the fold brains (repeatable; use a fresh --cache)",
    )
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=100,
        metavar="N",
        help="prompt resamples for the 90%% intervals of the headline figures (0: none)",
    )
    args = parser.parse_args()
    global _config
    overrides: dict[str, Any] = {"max_iter": args.max_iter}
    for item in args.set:
        key, _, value = item.partition("=")
        default = getattr(TrainConfig(), key)
        if isinstance(default, bool):
            overrides[key] = value.lower() in ("1", "true", "yes")
        elif default is None:  # optional floats
            overrides[key] = None if value.lower() == "none" else float(value)
        else:
            overrides[key] = type(default)(value)
    _config = dataclasses.replace(TrainConfig(), **overrides)
    if not args.shared.is_dir():
        print(f"skipped: {args.shared} is absent", file=sys.stderr)
        return 0
    cv = CrossValidation(load_shared(args.shared), args.cache, args.jobs)
    results = {
        "routellm": routellm(cv, args.bootstrap, args.shared),
        "routerbench": routerbench(cv, args.bootstrap),
        "llmrouter": llmrouter_set(cv, args.shared),
        "math": math_levels(cv),
        "calibration_shift": calibration_shift(cv),
        "new_models": new_models(cv),
    }
    print(json.dumps(results, indent=1 if args.json else 2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
