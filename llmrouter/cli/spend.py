"""``llmrouter spend``: totals by backend and by day, and what routing saved."""

from __future__ import annotations

import argparse

from .common import add_policy_argument, parse_time, print_json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("spend", help="what was spent and saved, from the ledger")
    add_policy_argument(parser)
    parser.add_argument("--since", help="ISO date/datetime or relative (7d, 12h)")
    parser.add_argument("--until", help="ISO date/datetime or relative (7d, 12h)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..ledger import open_ledger, spend_report
    from ..policy import load_policy

    policy = load_policy(args.policy)
    ledger = open_ledger(policy.ledger)
    try:
        report = spend_report(ledger, parse_time(args.since), parse_time(args.until))
    finally:
        ledger.close()
    if args.json:
        print_json(report.to_dict())
        return 0
    print(
        f"{'backend':<20} {'calls':>7} {'tokens in':>10} {'tokens out':>10} "
        f"{'cost $':>12} {'baseline $':>12} {'hits':>6}"
    )
    for row in report.by_backend:
        print(
            f"{row['key']:<20} {row['calls']:>7} {row['prompt_tokens']:>10} "
            f"{row['completion_tokens']:>10} {row['cost_usd']:>12.6f} "
            f"{row['baseline_cost_usd']:>12.6f} {row['cache_hits']:>6}"
        )
    print(
        f"{'total':<20} {report.calls:>7} {report.prompt_tokens:>10} "
        f"{report.completion_tokens:>10} {report.cost_usd:>12.6f} "
        f"{report.baseline_cost_usd:>12.6f} {report.cache_hits:>6}"
    )
    print()
    for row in report.by_day:
        print(f"{row['key']}: {row['calls']} calls, ${row['cost_usd']:.6f}")
    share = report.saved_usd / report.baseline_cost_usd if report.baseline_cost_usd else 0.0
    print()
    print(
        f"saved ${report.saved_usd:.6f} ({share:.1%}) against the reference backend: "
        f"routing ${report.routing_saved_usd:.6f}, cache ${report.cache_saved_usd:.6f} "
        f"({report.cache_hits} hits), compression ${report.compression_saved_usd:.6f}; "
        f"{report.errors} failed calls"
    )
    return 0
