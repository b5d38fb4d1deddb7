"""``llmrouter route "PROMPT"``: the decision and its explanation, without a call."""

from __future__ import annotations

import argparse

from .common import add_policy_argument, print_json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("route", help="show where a prompt would go, and why")
    parser.add_argument("prompt", help="the user message")
    add_policy_argument(parser)
    parser.add_argument("--system", help="a system message to send first")
    parser.add_argument("--quality-floor", type=float, default=None)
    parser.add_argument(
        "--answer-value-usd",
        type=float,
        default=None,
        help="use the expected-value rule: what one good answer is worth, in USD",
    )
    parser.add_argument("--max-tokens", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..policy import load_policy
    from ..router import Router

    policy = load_policy(args.policy)
    policy.cache.enabled = False
    policy.ledger.enabled = False
    router = Router(policy)
    messages = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": args.prompt})
    params = {}
    if args.max_tokens is not None:
        params["max_tokens"] = args.max_tokens
    decision = router.route(
        messages,
        quality_floor=args.quality_floor,
        answer_value_usd=args.answer_value_usd,
        **params,
    )
    if args.json:
        print_json(decision.to_dict())
        return 0
    print(f"backend:     {decision.backend}")
    print(f"reason:      {decision.reason}")
    print(f"complexity:  {decision.complexity:.3f}  ({decision.prompt_tokens} prompt tokens)")
    if decision.signals:
        signals = ", ".join(f"{name} ({weight:+.2f})" for name, weight in decision.signals)
        print(f"signals:     {signals}")
    if decision.answer_value_usd is None:
        print(f"floor:       {decision.quality_floor:.2f}")
    else:
        floor = f"; floor {decision.quality_floor:.2f}" if decision.quality_floor > 0 else ""
        print(f"rule:        value, ${decision.answer_value_usd:g} per good answer{floor}")
    print()
    print(f"{'candidate':<20} {'p(good)':>8} {'est. cost $':>12}  status")
    for candidate in decision.candidates:
        if candidate.excluded_reason:
            status = f"excluded: {candidate.excluded_reason}"
        elif candidate.name == decision.backend:
            status = "chosen"
        else:
            status = "below floor" if not candidate.clears_floor else "eligible"
            if decision.answer_value_usd is None and candidate.clears_floor:
                status = "clears floor"
        print(
            f"{candidate.name:<20} {candidate.predicted_quality:>8.3f} "
            f"{candidate.estimated_cost_usd:>12.6f}  {status}"
        )
    return 0
