"""``llmrouter policy check FILE``: validate a policy and summarise it."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..policy.schema import RoutingConfig

_SAMPLES = (
    ("trivial", "Hi! How are you?"),
    ("factual", "What is the capital of Australia, and when did it become the capital?"),
    (
        "hard",
        "Prove that for every prime p > 3, p^2 - 1 is divisible by 24. Give a rigorous "
        "step-by-step proof and justify each step.",
    ),
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("policy", help="policy tools")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    check = actions.add_parser("check", help="validate a policy file and print a summary")
    check.add_argument("file", help="the policy YAML")
    check.set_defaults(handler=run_check)


def run_check(args: argparse.Namespace) -> int:
    from ..policy import load_policy
    from ..router import Router

    policy = load_policy(args.file)
    print(f"{args.file}: valid")
    print()
    print(
        f"{'backend':<18} {'provider':<18} {'model':<28} {'in $/M':>8} {'out $/M':>8} "
        f"{'context':>8} {'quality':>7}  capabilities"
    )
    for b in policy.backends:
        price = b.resolved_price
        print(
            f"{b.name:<18} {b.provider:<18} {b.model[:28]:<28} {price.input_per_million:>8.3f} "
            f"{price.output_per_million:>8.3f} {b.resolved_context_window:>8} {b.quality:>7.2f}  "
            f"{', '.join(b.capabilities) or '-'}"
        )
    routing = policy.routing
    print()
    print(
        f"{_rule(routing)}; reference {policy.reference_backend.name}; "
        f"expected output {routing.expected_output_tokens} tokens; "
        f"fallback {'on' if policy.fallback.enabled else 'off'} "
        f"({policy.fallback.retries} retries, up to {policy.fallback.max_backends} backends)"
    )
    print(
        f"cache {'on' if policy.cache.enabled else 'off'}; ledger "
        f"{policy.ledger.url if policy.ledger.enabled else 'off'}"
    )
    policy.cache.enabled = False
    policy.ledger.enabled = False
    router = Router(policy)
    print()
    print("what routes where:")
    for label, prompt in _SAMPLES:
        decision = router.route([{"role": "user", "content": prompt}])
        print(f"  {label:<8} → {decision.backend:<18} {decision.reason}")
    return 0


def _rule(routing: RoutingConfig) -> str:
    if routing.rule == "floor":
        return f"quality floor {routing.quality_floor:.2f}"
    floor = f", floor {routing.value_floor:.2f}" if routing.value_floor > 0 else ""
    return f"value rule (${routing.answer_value_usd:g} per good answer{floor})"
