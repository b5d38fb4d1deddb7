"""``llmrouter complete "PROMPT"``: stream the answer, then one line of what it cost."""

from __future__ import annotations

import argparse
import sys

from .common import add_policy_argument


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("complete", help="route a prompt and stream the answer")
    parser.add_argument("prompt", help="the user message")
    add_policy_argument(parser)
    parser.add_argument("--system", help="a system message to send first")
    parser.add_argument("--model", default="auto", help="'auto' (default) or a backend name")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--quality-floor", type=float, default=None)
    parser.add_argument(
        "--answer-value-usd",
        type=float,
        default=None,
        help="use the expected-value rule: what one good answer is worth, in USD",
    )
    parser.add_argument("--no-cache", action="store_true", help="bypass the exact cache")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..router import Router
    from ..streaming import CompletionStream

    messages = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": args.prompt})
    params: dict[str, object] = {"max_tokens": args.max_tokens}
    if args.temperature is not None:
        params["temperature"] = args.temperature
    if args.quality_floor is not None:
        params["quality_floor"] = args.quality_floor
    if args.answer_value_usd is not None:
        params["answer_value_usd"] = args.answer_value_usd
    with Router(args.policy) as router:
        stream = router.complete(
            messages, model=args.model, stream=True, cache=not args.no_cache, **params
        )
        assert isinstance(stream, CompletionStream)
        for chunk in stream:
            for choice in chunk.choices:
                if choice.delta.content:
                    sys.stdout.write(choice.delta.content)
                    sys.stdout.flush()
        info = stream.router
    print()
    print(
        f"[{info.backend}] {info.prompt_tokens}+{info.completion_tokens} tokens "
        f"({info.usage_source}), cost ${info.cost_usd:.6f}, saved ${info.saved_usd:.6f} "
        f"vs reference, cache {info.cache}, {info.latency_ms:.0f} ms",
        file=sys.stderr,
    )
    return 0
