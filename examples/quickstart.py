"""Quickstart: route real prompts through the embedded local model and show the spend.

Runs with no keys and no network: it starts llama.cpp serving Gemma 3 270M on
loopback, routes a few prompts with the two-tier policy (a cheap and a pricey
backend on that same model), streams one answer, then prints the spend table.

    python examples/quickstart.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from llmrouter import ChatCompletion, Router
from llmrouter.cli.main import main as cli
from llmrouter.local_model import LocalModelServer, free_port

HERE = Path(__file__).resolve().parent
POLICY = HERE.parent / "policies" / "two-tier-local.yaml"

PROMPTS = [
    "Hi! How are you today?",
    "Good morning!",
    "Tell me a joke.",
    "What is the capital of France?",
    (
        "Prove that there are infinitely many primes congruent to 3 mod 4. Give a rigorous "
        "multi-step proof, justify each step, then explain why the argument fails for 1 mod 4."
    ),
    (
        "Design a distributed rate limiter for a multi-region API: compare token bucket and "
        "sliding window approaches, analyze the consistency trade-offs, and derive the "
        "worst-case overshoot step by step."
    ),
]


def main() -> int:
    port = int(os.environ.get("LLMROUTER_LOCAL_PORT", "0")) or free_port()
    print(f"starting the local model (llama.cpp, Gemma 3 270M) on 127.0.0.1:{port} ...")
    with LocalModelServer(port=port, log_file=".llmrouter/llama-server.log") as server:
        os.environ["LOCAL_BASE_URL"] = server.base_url
        with Router(POLICY) as router:
            print(f"policy: {POLICY.name}: backends {', '.join(router.backends)}\n")
            print(f"{'prompt':<52} {'→ backend':<10} {'p(small)':>8} {'p(large)':>8}  reason")
            for prompt in PROMPTS:
                decision = router.route([{"role": "user", "content": prompt}])
                small, large = decision.candidate("small"), decision.candidate("large")
                assert small is not None and large is not None
                print(
                    f"{prompt[:50]:<52} {decision.backend:<10} "
                    f"{small.predicted_quality:>8.2f} {large.predicted_quality:>8.2f}  "
                    f"{decision.reason}"
                )
            print("\ncalling the model for each prompt (real tokens, real usage):")
            for prompt in PROMPTS:
                result = router.complete(
                    [{"role": "user", "content": prompt}],
                    max_tokens=24,
                    temperature=0.8,
                    seed=7,
                )
                assert isinstance(result, ChatCompletion)
                info = result.router
                text = (result.choices[0].message.content or "").strip().replace("\n", " ")
                print(
                    f"  [{info.backend:<5}] ${info.cost_usd:.6f} (saved ${info.saved_usd:.6f}, "
                    f"cache {info.cache}, {info.latency_ms:.0f} ms): {text[:60]!r}"
                )
            again = router.complete(
                [{"role": "user", "content": PROMPTS[0]}], max_tokens=24, temperature=0.8, seed=7
            )
            assert isinstance(again, ChatCompletion)
            print(f"  repeated first prompt: cache {again.router.cache}, ${again.router.cost_usd}")
        print("\nllmrouter spend:")
        return cli(["spend", "--policy", str(POLICY)])


if __name__ == "__main__":
    sys.exit(main())
