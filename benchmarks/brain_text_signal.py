"""How much of a task's per-model correctness its prompt text can predict at all.

An upper-bound check for the routing brain, which is trained on every shared set at once:
here each task gets its own classifiers, fitted on that task alone. For every model, an
L2-regularised logistic regression on the brain's prompt features (hashed tiktoken
unigrams and bigrams plus the structural counts) of the question (the prompt's last 600
characters: RouterBench puts a few-shot template before it), 5-fold cross-validated with the
brain's folds (``fold_groups``). Then the held-out probabilities route the task by the
quality floor and by the value rule (``llmrouter.brain.evaluation``), with each model's mean
cost on the training folds as the router's estimate, and the script prints each model's
held-out AUC and the cost to reach 95% of GPT-4's accuracy, as a share of GPT-4's cost.

If classifiers fitted on the task itself cannot tell which prompts a cheap model gets right
(AUC near 0.5), no predictor built on these features can: the 95%-of-GPT-4 cost then stays
near the zero router's (mixing whole models).

RouteLLM's GSM8K (Mixtral vs GPT-4, a GPT-4 call costing 10 Mixtral calls) gets the same
treatment, reporting the share of GPT-4 calls saved at 95% of GPT-4's quality, plus what a
predictor would need for a given saving: synthetic scores ``-signal * mixtral_correct +
N(0, 1)`` on the real labels, 50 draws per signal strength, with their AUC for Mixtral's
correctness and the GPT-4 calls they save.

Last, the task's classifiers are refitted on GSM8K labels with GPT-4's misgraded answers
re-graded (``gsm8k_grading.py``), to see how much of the GPT-4 signal they found was the
grading.

Usage: python benchmarks/brain_text_signal.py [--shared ../shared/data] [--l2 1e-3 1e-2]
Needs ../shared (skips when it is absent); a few minutes on one core.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from brain_eval import _auc  # noqa: E402  (this directory is on sys.path)
from gsm8k_grading import gsm8k_grading  # noqa: E402

from llmrouter.brain.convert import load_shared  # noqa: E402
from llmrouter.brain.evaluation import EvalMatrix, default_floors, evaluate  # noqa: E402
from llmrouter.brain.folds import fold_groups  # noqa: E402
from llmrouter.brain.optimize import lbfgs  # noqa: E402
from llmrouter.brain.training import featurize  # noqa: E402

GPT4 = "gpt-4-1106-preview"
MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
FOLDS = 5
QUESTION_CHARS = 600


def _logistic(x: Any, y: np.ndarray, l2: float) -> np.ndarray:
    """Weights (last one the unpenalised bias) of an L2 logistic regression, by L-BFGS."""
    n, d = x.shape

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ w[:-1] + w[-1]
        p = 1.0 / (1.0 + np.exp(-z))
        eps = 1e-12
        value = -np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))
        value += 0.5 * l2 * float(w[:-1] @ w[:-1])
        residual = (p - y) / n
        grad = np.concatenate([x.T @ residual + l2 * w[:-1], [residual.sum()]])
        return float(value), grad

    w, _, _ = lbfgs(loss, np.zeros(d + 1), max_iter=300)
    return w


def task_signal(records: list[Any], l2: float, two_model: bool = False) -> dict[str, Any]:
    """Held-out AUCs and routing figures of per-model classifiers fitted on this task alone.

    ``two_model``: RouteLLM's Mixtral/GPT-4 data, priced 1 and 10 units a call."""
    models = [MIXTRAL, GPT4] if two_model else sorted({m for r in records for m in r.scores})
    records = [r for r in records if all(r.scores.get(m) is not None for m in models)]
    feats = featurize([r.text[-QUESTION_CHARS:] for r in records])
    structural = feats.structural - feats.structural.mean(axis=0)
    # The hashed part is a per-prompt mean (rows sum to 1): scale it to unit-ish columns.
    import scipy.sparse as sp

    x = sp.hstack([feats.hashed * 30.0, sp.csr_matrix(structural)]).tocsr()
    scores = np.asarray([[r.scores[m] for m in models] for r in records])
    if two_model:
        costs = np.tile([1.0, 10.0], (len(records), 1))
    else:
        costs = np.asarray([[r.costs[m] for m in models] for r in records])
    fold = np.asarray(fold_groups([r.text for r in records], FOLDS))
    probs = np.zeros_like(scores)
    expected = np.zeros_like(costs)
    for k in range(FOLDS):
        train, test = fold != k, fold == k
        expected[test] = costs[train].mean(axis=0)
        for j in range(len(models)):
            w = _logistic(x[train], scores[train, j], l2)
            probs[test, j] = 1.0 / (1.0 + np.exp(-(x[test] @ w[:-1] + w[-1])))
    data = EvalMatrix(
        backends=models, scores=scores, costs=costs, expected_cost=expected, probs=probs
    )
    floor = evaluate(data, default_floors(probs), reference=GPT4)
    value = evaluate(data, reference=GPT4, rule="value")
    aucs = {
        m: round(_auc(probs[:, j], scores[:, j] > 0.5), 3)
        for j, m in enumerate(models)
        if 0 < scores[:, j].mean() < 1
    }
    if two_model:
        return {
            "prompts": len(records),
            "held_out_auc": aucs,
            "fewer_gpt4_calls_at_95pct": {
                "floor_rule": floor["two_model"]["fewer_strong_calls_at_target"],
                "value_rule": value["two_model"]["fewer_strong_calls_at_target"],
                "random": round(1 - floor["two_model"]["random"]["strong_calls_at_target"], 4),
            },
        }
    return {
        "prompts": len(records),
        "held_out_auc": aucs,
        "cost_to_95pct_gpt4": {
            "floor_rule": floor["router"]["cost_to_target"],
            "value_rule": value["router"]["cost_to_target"],
            "zero_router": floor["baselines"]["zero_router"]["cost_to_target"],
            "oracle": floor["baselines"]["oracle"]["cost_to_target"],
        },
    }


def needed_signal(records: list[Any], draws: int = 50) -> list[dict[str, float]]:
    """AUC for Mixtral's correctness against GPT-4 calls saved, for synthetic predictors."""
    records = [r for r in records if {MIXTRAL, GPT4} <= set(r.scores)]
    weak = np.asarray([r.scores[MIXTRAL] for r in records])
    strong = np.asarray([r.scores[GPT4] for r in records])
    target = 0.95 * strong.sum()
    rng = np.random.default_rng(0)
    out = []
    for signal in (0.3, 0.5, 0.7, 0.9):
        aucs, saved = [], []
        for _ in range(draws):
            risk = -signal * weak + rng.normal(size=weak.shape[0])  # high: send to GPT-4
            order = np.argsort(-risk)
            quality = weak.sum() + np.concatenate([[0.0], np.cumsum((strong - weak)[order])])
            aucs.append(_auc(-risk, weak > 0.5))
            saved.append(1 - int(np.argmax(quality >= target)) / weak.shape[0])
        out.append(
            {
                "signal": signal,
                "auc_mixtral": round(float(np.mean(aucs)), 3),
                "fewer_gpt4_calls_at_95pct": round(float(np.mean(saved)), 3),
                "sd": round(float(np.std(saved)), 3),
            }
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--l2", type=float, nargs="+", default=[1e-3, 1e-2])
    args = parser.parse_args()
    if not args.shared.is_dir():
        print(f"skipped: {args.shared} is absent", file=sys.stderr)
        return 0
    sets = load_shared(args.shared)
    out: dict[str, Any] = {}
    for name in sorted(n for n in sets if n.startswith("routerbench_")):
        out[name] = {f"l2={l2:g}": task_signal(sets[name], l2) for l2 in args.l2}
    gsm8k = sets["routellm_gsm8k"]
    out["routellm_gsm8k"] = {f"l2={l2:g}": task_signal(gsm8k, l2, two_model=True) for l2 in args.l2}
    out["routellm_gsm8k"]["needed"] = needed_signal(gsm8k)
    grading, regraded = gsm8k_grading(args.shared, gsm8k)
    out["routellm_gsm8k_grading"] = grading
    out["routellm_gsm8k_regraded"] = {
        f"l2={l2:g}": task_signal(regraded, l2, two_model=True) for l2 in args.l2
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
