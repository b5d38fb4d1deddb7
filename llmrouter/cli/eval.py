"""``llmrouter eval``: replay labelled prompts through the routing decision, no calls."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmrouter.brain.dataset import Record
    from llmrouter.brain.evaluation import EvalMatrix
    from llmrouter.policy.schema import BackendConfig, Policy, RoutingConfig
    from llmrouter.routing import QualityPredictor

__all__ = ["add_parser", "eval_matrix", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="cost-quality curve, AIQ, APGR/CPT and baselines on labelled prompts",
        description=(
            "Routes every prompt over a sweep of the policy's decision knob (quality_floor "
            "under rule: floor; answer_value_usd under rule: value, its quality_floor, when "
            "written, held as the minimum) with the policy's backends (scores keyed by backend "
            "name, else by the backend's model id), reads the chosen backend's score and cost "
            "(costs, else usage x policy prices, else the router's estimate) and compares "
            "with single backends, random mixing, the zero router and the oracle."
        ),
    )
    parser.add_argument("--policy", required=True, metavar="FILE", help="policy YAML")
    parser.add_argument("--data", required=True, nargs="+", metavar="FILE", help="JSONL files")
    parser.add_argument(
        "--calibration",
        metavar="FILE",
        help="a calibrated policy (from `llmrouter calibrate`) whose calibration blocks to use",
    )
    parser.add_argument(
        "--weights",
        metavar="PATH",
        help="brain weights (default: the policy's routing.predictor_weights, else shipped); "
        "not with predictor: heuristic",
    )
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    parser.add_argument("--plot", metavar="PNG", help="write the cost-quality plot (matplotlib)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.set_defaults(handler=run)


def _calibrations(path: str) -> dict[str, dict[str, float]]:
    """Calibration blocks by backend name, from a calibrated policy or a plain mapping;
    raises ValueError naming the file, the backend and the key."""
    import yaml

    from llmrouter.policy.schema import CALIBRATION_KEYS

    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    if isinstance(raw, dict) and isinstance(raw.get("backends"), list):
        blocks = {
            str(b["name"]): b["calibration"]
            for b in raw["backends"]
            if isinstance(b, dict) and isinstance(b.get("calibration"), dict)
        }
    elif isinstance(raw, dict):
        blocks = {str(k): v for k, v in raw.items() if isinstance(v, dict)}
    else:
        raise ValueError(f"{path}: expected a policy or a mapping of backend -> calibration")
    out: dict[str, dict[str, float]] = {}
    for name, block in blocks.items():
        for key, value in block.items():
            if key not in CALIBRATION_KEYS:
                raise ValueError(
                    f"{path}: backend {name!r}: unknown calibration key {key!r}; "
                    f"allowed: {', '.join(CALIBRATION_KEYS)}"
                )
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(
                    f"{path}: backend {name!r}: calibration {key} must be a number, got {value!r}"
                )
        out[name] = {str(k): float(v) for k, v in block.items()}
    return out


def eval_matrix(
    records: Sequence[Record],
    backends: Sequence[BackendConfig],
    predictor: QualityPredictor,
    output_tokens: int,
    progress: Callable[[int], None] | None = None,
) -> EvalMatrix:
    """Scores, realised costs, and the router's own probabilities and cost estimates for
    records scored on every backend, so a policy's choice here is the router's choice.

    Each record is read as the router reads a request (``routing.analyze_request`` of its
    messages, else its prompt as one user message): the predictor judges the last user
    message (``focus_text``) and the estimate counts every message with chat framing."""
    import numpy as np

    from llmrouter.brain.costs import cost_matrices
    from llmrouter.brain.evaluation import EvalMatrix
    from llmrouter.routing import analyze_request
    from llmrouter.routing.selector import estimated_cost_usd

    probs = np.zeros((len(records), len(backends)))
    expected = np.zeros((len(records), len(backends)))
    for i, record in enumerate(records):
        facts = analyze_request(record.chat(), {})
        profile = predictor.profile(facts.focus_text, facts.focus_ids)
        for j, backend in enumerate(backends):
            probs[i, j] = predictor.probability(profile, backend)
            expected[i, j] = estimated_cost_usd(backend, facts.prompt_tokens, output_tokens)
        if progress is not None:
            progress(1)
    realised, _ = cost_matrices(records, backends, output_tokens)
    return EvalMatrix(
        backends=[b.name for b in backends],
        scores=np.asarray([[r.scores[b.name] for b in backends] for r in records]),
        costs=realised,
        expected_cost=expected,
        probs=probs,
    )


def _predictor(policy: Policy, weights: str | None) -> QualityPredictor:
    """The router's predictor for ``policy`` (``--weights`` replaces its predictor_weights)."""
    from llmrouter.components import default_predictor

    if weights is None:
        return default_predictor(policy)
    if policy.routing.predictor != "learned":
        raise ValueError(
            f"--weights is for the learned predictor; the policy routes with "
            f"predictor: {policy.routing.predictor} (drop --weights, or set predictor: learned)"
        )
    from llmrouter.brain.predictor import LearnedPredictor

    return LearnedPredictor(weights)


def run(args: argparse.Namespace) -> int:
    from llmrouter.brain.dataset import data_keys, read_jsonl, unread_records
    from llmrouter.brain.progress import progress_bar
    from llmrouter.policy import load_policy

    if args.plot:  # checked before the work, so a bad --plot does not cost the run
        if importlib.util.find_spec("matplotlib") is None:
            needs = "--plot needs matplotlib (pip install matplotlib)"
            print(f"llmrouter: error: {needs}", file=sys.stderr)
            return 2
        folder = Path(args.plot).resolve().parent
        if not folder.is_dir():
            print(f"llmrouter: error: --plot {args.plot}: no directory {folder}", file=sys.stderr)
            return 2
    policy = load_policy(args.policy)
    try:
        records = read_jsonl(args.data)
        overrides = _calibrations(args.calibration) if args.calibration else {}
    except (OSError, ValueError) as exc:
        print(f"llmrouter: error: {exc}", file=sys.stderr)
        return 2
    pairs = [(b.name, b.model) for b in policy.backends]
    keys = data_keys(pairs, records)
    unread = unread_records(pairs, records, keys)
    if unread:
        print(
            f"llmrouter: warning: {unread} records score a backend only under its other key "
            "(backend name vs model id); each backend is read under one key (name, else model "
            "id), so those records are skipped",
            file=sys.stderr,
        )
    backends = [
        b.model_copy(update={"calibration": overrides.get(b.name, b.calibration)})
        for b in policy.backends
        if b.name in keys
    ]
    if not backends:
        seen = ", ".join(sorted({k for r in records for k in r.scores})[:8]) or "none"
        print(
            "llmrouter: error: no policy backend's name or model id appears in the data's "
            f"scores (policy: {', '.join(f'{b.name} ({b.model})' for b in policy.backends)}; "
            f"data: {seen})",
            file=sys.stderr,
        )
        return 2
    names = [b.name for b in backends]
    records = [r.under(keys) for r in records]
    kept = [r for r in records if all(n in r.scores for n in names)]
    if not kept:
        print(f"llmrouter: error: no prompt is scored on all of {names}", file=sys.stderr)
        return 2
    try:
        predictor = _predictor(policy, args.weights)
    except (OSError, ValueError) as exc:
        print(f"llmrouter: error: {exc}", file=sys.stderr)
        return 2
    show = not args.no_progress
    with progress_bar(len(kept), "prompts", show) as advance:
        data = eval_matrix(
            kept, backends, predictor, policy.routing.expected_output_tokens, advance
        )
    report = _evaluate(data, policy.routing, show)
    report["skipped_prompts"] = len(records) - len(kept)
    report["unscored_backends"] = [b.name for b in policy.backends if b.name not in keys]
    report["scored_by_model_id"] = {name: key for name, key in keys.items() if key != name}
    report["predictor"] = policy.routing.predictor
    if args.plot:
        from llmrouter.brain.plot import plot_report

        try:
            plot_report(report, args.plot)
        except (OSError, ValueError) as exc:  # e.g. an unwritable file or unknown extension
            print(f"llmrouter: error: --plot {args.plot}: {exc}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        _print_table(report)
    return 0


def _evaluate(data: EvalMatrix, routing: RoutingConfig, show: bool) -> dict[str, Any]:
    """The report over the policy's own knob: floors, or prices = 1 / answer_value_usd."""
    from llmrouter.brain.evaluation import default_floors, default_prices, evaluate
    from llmrouter.brain.progress import progress_bar

    worth = routing.answer_value_usd  # set exactly when rule: value (the schema checks)
    if worth is None:
        floors = default_floors(data.probs)
        with progress_bar(len(floors), "floors", show) as advance:
            return evaluate(data, floors, advance)
    # The policy's own operating point is on the curve, beside the break-even prices.
    own = min(1.0 / worth, sys.float_info.max)  # finite (JSON) below ~5.6e-309 too
    prices = sorted({*default_prices(data.probs, data.expected_cost), own})
    with progress_bar(len(prices), "prices", show) as advance:
        report = evaluate(data, prices, advance, rule="value", value_floor=routing.value_floor)
    for point in report["router"]["curve"]:
        point["answer_value_usd"] = _answer_value(point["price"])
    report["value_floor"] = routing.value_floor
    report["policy_point"] = next(p for p in report["router"]["curve"] if p["price"] == own)
    report["policy_point"]["answer_value_usd"] = worth
    return report


def _answer_value(price: float) -> float | None:
    """The router's ``answer_value_usd`` for an evaluation price (None: unbounded, price 0)."""
    return None if price <= 0 else 1.0 / price


def _fmt(value: Any, percent: bool = False) -> str:
    if value is None:
        return "not reached"
    return f"{value:.1%}" if percent else f"{value:.4f}"


def _knob(setting: float | None, value: bool) -> str:
    if not value:
        return f"{setting:.3f}"
    return "unbounded" if setting is None else f"{setting:.6g}"


def _print_table(report: dict[str, Any]) -> None:
    print(f"{report['prompts']} prompts, backends: {', '.join(report['backends'])}")
    if report.get("unscored_backends"):
        left_out = ", ".join(report["unscored_backends"])
        print(f"not evaluated (no scores in the data; the router may still pick them): {left_out}")
    if report.get("scored_by_model_id"):
        read = ", ".join(f"{name} <- {key}" for name, key in report["scored_by_model_id"].items())
        print(f"scores read by model id: {read}")
    if report.get("skipped_prompts"):
        print(f"skipped {report['skipped_prompts']} prompts not scored on every backend above")
    print(
        f"reference (best single): {report['reference']}; "
        f"target quality {report['target_quality']:.4f}"
    )
    value = report["rule"] == "value"
    knob = "$/good answer" if value else "floor"
    if value and report["value_floor"] > 0:
        print(f"rule: value, quality_floor {report['value_floor']:.2f} held as the minimum")
    print(f"{knob:>13} {'cost/prompt':>12} {'quality':>8}  shares")
    curve = report["router"]["curve"]
    step = max(len(curve) // 12, 1)
    for point in curve[::step]:
        shares = ", ".join(f"{k} {v:.0%}" for k, v in point["shares"].items() if v > 0)
        setting = _knob(point["answer_value_usd"] if value else point["floor"], value)
        print(f"{setting:>13} {point['cost']:>12.6f} {point['quality']:>8.4f}  {shares}")
    if value:
        point = report["policy_point"]
        print(
            f"policy's answer_value_usd {_knob(point['answer_value_usd'], True)}: cost/prompt "
            f"{point['cost']:.6f}, quality {point['quality']:.4f}"
        )
    base = report["baselines"]
    print()
    print(f"{'':<14} {'AIQ':>8} {'cost to 95% of best (share of its cost)':>40}")
    print(
        f"{'router':<14} {report['router']['aiq']:>8.4f} "
        f"{_fmt(report['router']['cost_to_target'], True):>40}"
    )
    for key in ("zero_router", "random", "oracle"):
        row = base[key]
        print(f"{key:<14} {row['aiq']:>8.4f} {_fmt(row['cost_to_target'], True):>40}")
    for name, s in base["single"].items():
        print(f"  single {name}: cost {s['cost']:.6f}, quality {s['quality']:.4f}")
    two = report.get("two_model")
    if two:
        print(
            f"two models ({two['weak']} -> {two['strong']}): APGR {_fmt(two['apgr'])}, "
            f"CPT(50%) {_fmt(two['cpt50'], True)}, CPT(80%) {_fmt(two['cpt80'], True)}, "
            f"strong calls at 95% quality {_fmt(two['strong_calls_at_target'], True)} "
            f"(random {_fmt(two['random']['strong_calls_at_target'], True)})"
        )
