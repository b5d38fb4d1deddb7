"""``llmrouter calibrate``: fit each backend's abilities from ~100 of its own labelled answers."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["add_parser", "run"]

_HEADER = (
    "# Calibrated by `llmrouter calibrate` from {data} ({prompts} prompts).\n"
    "# calibration: ability (overall, difficulty scale), discrimination (how fast success\n"
    "# falls with difficulty), math/code/reasoning/knowledge/chat (skill offsets per demand).\n"
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "calibrate",
        help="fit each backend's abilities from labelled prompts; write a calibrated policy",
        description=(
            "Reads JSONL records whose scores are keyed by the policy's backend names (or "
            "model ids), fits each backend's ability, discrimination and per-demand skills, "
            "and writes the policy with a `calibration:` block per backend."
        ),
    )
    parser.add_argument("--policy", required=True, metavar="FILE", help="policy YAML")
    parser.add_argument("--data", required=True, nargs="+", metavar="FILE", help="JSONL files")
    parser.add_argument("--out", required=True, metavar="FILE", help="calibrated policy YAML")
    parser.add_argument(
        "--weights",
        metavar="PATH",
        help="brain weights (default: the policy's routing.predictor_weights, else shipped)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import yaml

    from llmrouter.brain.dataset import DataError, read_jsonl
    from llmrouter.brain.policy_calibration import calibrate_policy
    from llmrouter.brain.predictor import LearnedPredictor
    from llmrouter.brain.progress import progress_bar
    from llmrouter.policy import load_policy

    policy = load_policy(args.policy)
    try:
        raw = yaml.safe_load(Path(args.policy).read_text(encoding="utf-8"))
        records = read_jsonl(args.data)
    except (OSError, DataError) as exc:
        print(f"llmrouter: error: {exc}", file=sys.stderr)
        return 2
    if not isinstance(raw, dict):
        print(f"llmrouter: error: {args.policy} is not a YAML mapping", file=sys.stderr)
        return 2
    if policy.routing.predictor != "learned":
        print(
            f"llmrouter: error: calibrate fits the learned predictor's parameters; "
            f"{args.policy} routes with predictor: {policy.routing.predictor} "
            f"(set routing.predictor: learned)",
            file=sys.stderr,
        )
        return 2
    # The weights the router will use, so the fitted abilities are on their scale.
    weights = args.weights or policy.routing.predictor_weights
    try:
        predictor = LearnedPredictor(weights)
    except (OSError, ValueError) as exc:
        flag = "--weights" if args.weights else "routing.predictor_weights"
        print(f"llmrouter: error: {flag} {weights}: {exc}", file=sys.stderr)
        return 2
    with progress_bar(len(records), "prompts", not args.no_progress) as advance:
        result = calibrate_policy(policy, raw, records, predictor, advance)
    if result.unread:
        print(
            f"llmrouter: warning: {result.unread} records score a backend only under its other "
            "key (backend name vs model id); each backend is read under one key, the one the "
            "data uses first (name, else model id), so those records count as unlabelled",
            file=sys.stderr,
        )
    if not result.fitted:
        print(
            "llmrouter: error: no backend has enough scored prompts: "
            + "; ".join(f"{k}: {v}" for k, v in result.skipped.items()),
            file=sys.stderr,
        )
        return 2
    header = _HEADER.format(data=", ".join(args.data), prompts=len(records))
    text = yaml.safe_dump(result.raw, sort_keys=False, allow_unicode=True)
    try:
        Path(args.out).write_text(header + text, encoding="utf-8")
    except OSError as exc:
        print(f"llmrouter: error: --out {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    summary = {
        "out": args.out,
        "calibrated": {
            name: {"samples": result.samples[name], **params.as_mapping()}
            for name, params in result.fitted.items()
        },
        "skipped": result.skipped,
        "at_floor": result.summary,
    }
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
        return 0
    print(f"wrote {args.out}")
    for name, values in summary["calibrated"].items():
        print(
            f"  {name}: {values['samples']} prompts, ability {values['ability']:+.2f}, "
            f"discrimination {values['discrimination']:.2f}"
        )
    for name, why in result.skipped.items():
        print(f"  {name}: not calibrated ({why}); uses its rating or known model")
    at = result.summary
    if at:
        if at["rule"] == "value":
            held = f", quality_floor {at['quality_floor']} held" if at["quality_floor"] > 0 else ""
            worth = at["answer_value_usd"]
            rule = f"by rule: value at answer_value_usd {worth:g}{held}"
        else:
            rule = f"at quality_floor {at['quality_floor']}"
        print(f"{rule}, on all {at['prompts']} prompts:")
        for name, row in at["backends"].items():
            line = f"  {name}: {row['share_at_floor']:.0%} of calls"
            if row["scored_prompts"]:
                line += (
                    f"; on its {row['scored_prompts']} scored prompts, mean predicted quality "
                    f"{row['predicted_quality']:.3f}, observed {row['observed_quality']:.3f}"
                )
            print(line)
        traffic = at.get("traffic")
        if traffic:
            shares = ", ".join(f"{k} {v:.0%}" for k, v in traffic["share_at_floor"].items())
            print(
                f"{rule}, on the {traffic['prompts']} unscored (traffic) prompts alone: "
                f"{shares}; expected quality {traffic['expected_quality_at_floor']:.3f}"
            )
    return 0
