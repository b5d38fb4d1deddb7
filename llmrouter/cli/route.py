"""``llmrouter route "PROMPT"`` (or ``--messages FILE``): the decision and its explanation,
without a call."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .common import add_policy_argument, print_json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("route", help="show where a prompt would go, and why")
    parser.add_argument("prompt", nargs="?", help="the user message (or --messages)")
    parser.add_argument(
        "--messages",
        metavar="FILE",
        help="a chat request as JSON ('-' for stdin): a list of messages, or an object as "
        "sent to /v1/chat/completions (messages, and any of tools, functions, "
        "response_format, max_tokens)",
    )
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


_REQUEST_FIELDS = ("tools", "functions", "tool_choice", "response_format", "max_tokens")


def _request(path: str) -> tuple[list[Any], dict[str, Any]]:
    """Messages and routing-relevant fields of a JSON chat request; ValueError says why."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        body = json.loads(text)
    except OSError as exc:
        raise ValueError(f"--messages {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"--messages {path}: not UTF-8 ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"--messages {path}: not JSON ({exc})") from None
    if isinstance(body, list):
        return body, {}
    if isinstance(body, dict) and isinstance(body.get("messages"), list):
        return body["messages"], {k: body[k] for k in _REQUEST_FIELDS if k in body}
    raise ValueError(f"--messages {path}: expected a list of messages or an object with messages")


def run(args: argparse.Namespace) -> int:
    from ..policy import load_policy
    from ..router import Router

    if (args.prompt is None) == (args.messages is None):
        print("llmrouter: error: give a prompt or --messages FILE (one of them)", file=sys.stderr)
        return 2
    params: dict[str, Any] = {}
    if args.messages is not None:
        try:
            messages, params = _request(args.messages)
        except ValueError as exc:
            print(f"llmrouter: error: {exc}", file=sys.stderr)
            return 2
    else:
        messages = [{"role": "user", "content": args.prompt}]
    if args.system:
        messages = [{"role": "system", "content": args.system}, *messages]
    policy = load_policy(args.policy)
    policy.cache.enabled = False
    policy.ledger.enabled = False
    router = Router(policy)
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
    if decision.demands:
        asked = sorted(decision.demands.items(), key=lambda item: -item[1])
        demands = ", ".join(f"{name} {share:.2f}" for name, share in asked if share >= 0.05)
        print(f"demands:     {demands}  (benchmark task types; rough on short everyday prompts)")
    if decision.signals:
        signals = ", ".join(f"{name} ({weight:+.2f})" for name, weight in decision.signals)
        print(f"signals:     {signals}  (difficulty logits vs a typical prompt)")
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
