"""How much of a RouterBench task's per-model correctness its prompt text can predict at all.

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
(AUC near 0.5), no router that reads the prompt can: the 95%-of-GPT-4 cost then stays near
the zero router's (mixing whole models), whatever the predictor.

Usage: python benchmarks/brain_text_signal.py [--shared ../shared/data] [--l2 1e-3 1e-2]
Needs ../shared (skips when it is absent); about a minute on one core.
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

from llmrouter.brain.convert import load_shared  # noqa: E402
from llmrouter.brain.evaluation import EvalMatrix, default_floors, evaluate  # noqa: E402
from llmrouter.brain.folds import fold_groups  # noqa: E402
from llmrouter.brain.optimize import lbfgs  # noqa: E402
from llmrouter.brain.training import featurize  # noqa: E402

GPT4 = "gpt-4-1106-preview"
FOLDS = 5
QUESTION_CHARS = 600


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    pos = labels.astype(bool)
    n1, n0 = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


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


def task_signal(records: list[Any], l2: float) -> dict[str, Any]:
    models = sorted({m for r in records for m in r.scores})
    records = [r for r in records if all(r.scores.get(m) is not None for m in models)]
    feats = featurize([r.text[-QUESTION_CHARS:] for r in records])
    structural = feats.structural - feats.structural.mean(axis=0)
    # The hashed part is a per-prompt mean (rows sum to 1): scale it to unit-ish columns.
    import scipy.sparse as sp

    x = sp.hstack([feats.hashed * 30.0, sp.csr_matrix(structural)]).tocsr()
    scores = np.asarray([[r.scores[m] for m in models] for r in records])
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
    return {
        "prompts": len(records),
        "held_out_auc": {
            m: round(_auc(probs[:, j], scores[:, j] > 0.5), 3)
            for j, m in enumerate(models)
            if 0 < scores[:, j].mean() < 1
        },
        "cost_to_95pct_gpt4": {
            "floor_rule": floor["router"]["cost_to_target"],
            "value_rule": value["router"]["cost_to_target"],
            "zero_router": floor["baselines"]["zero_router"]["cost_to_target"],
            "oracle": floor["baselines"]["oracle"]["cost_to_target"],
        },
    }


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
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
