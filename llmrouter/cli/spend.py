"""``llmrouter spend``: totals by backend, day, user, tag or key, and what routing saved."""

from __future__ import annotations

import argparse
import csv
import sys

from .common import add_policy_argument, parse_time, print_json

_CSV_COLUMNS = (
    "key",
    "calls",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "baseline_cost_usd",
    "saved_usd",
    "cache_hits",
    "cache_saved_usd",
    "compression_saved_usd",
    "errors",
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("spend", help="what was spent and saved, from the ledger")
    add_policy_argument(parser)
    parser.add_argument("--since", help="ISO date/datetime or relative (7d, 12h)")
    parser.add_argument("--until", help="ISO date/datetime or relative (7d, 12h)")
    parser.add_argument(
        "--by",
        choices=["backend", "day", "user", "tag", "key", "outcome"],
        default=None,
        help="group the table by this (default: by backend, then by day)",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="machine-readable output")
    output.add_argument("--csv", action="store_true", help="one CSV row per group, then 'total'")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..ledger import open_ledger, spend_report
    from ..policy import load_policy

    policy = load_policy(args.policy)
    since, until = parse_time(args.since), parse_time(args.until)
    ledger = open_ledger(policy.ledger)
    try:
        report = spend_report(ledger, since, until, by=args.by)
    finally:
        ledger.close()
    if args.json:
        print_json(report.to_dict())
        return 0
    groups = report.groups if args.by else report.by_backend
    if args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow([args.by or "backend", *_CSV_COLUMNS[1:]])
        for row in groups:
            writer.writerow([row.get(c, 0) for c in _CSV_COLUMNS])
        total = report.to_dict()
        total["key"] = "total"
        writer.writerow([total.get(c, 0) for c in _CSV_COLUMNS])
        return 0
    label = args.by or "backend"
    print(
        f"{label:<20} {'calls':>7} {'tokens in':>10} {'tokens out':>10} "
        f"{'cost $':>12} {'baseline $':>12} {'hits':>6}"
    )
    for row in groups:
        print(
            f"{row['key'] or '-'!s:<20} {row['calls']:>7} {row['prompt_tokens']:>10} "
            f"{row['completion_tokens']:>10} {row['cost_usd']:>12.6f} "
            f"{row['baseline_cost_usd']:>12.6f} {row['cache_hits']:>6}"
        )
    print(
        f"{'total':<20} {report.calls:>7} {report.prompt_tokens:>10} "
        f"{report.completion_tokens:>10} {report.cost_usd:>12.6f} "
        f"{report.baseline_cost_usd:>12.6f} {report.cache_hits:>6}"
    )
    if args.by is None:
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
