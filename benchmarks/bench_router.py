"""Import time of ``llmrouter`` and the overhead of ``Router.route()``.

Targets (issue 2): ``import llmrouter`` ≤ 300 ms; ``route()`` p50 ≤ 1 ms and
p99 ≤ 3 ms for a 2,000-token prompt, predictor included. No calls are made.

    python benchmarks/bench_router.py [--runs 2000] [--policy FILE]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Varied English prose, so the tokenizer sees realistic text rather than one repeated word.
PARAGRAPHS = [
    "The committee reviewed the quarterly figures and found that revenue had grown by "
    "twelve percent, driven mostly by the new subscription tier launched in the spring.",
    "To reproduce the bug, start the server with the default configuration, send two "
    "concurrent requests with the same idempotency key, and observe the duplicated row.",
    "Photosynthesis converts light energy into chemical energy stored in glucose; the "
    "light-dependent reactions occur in the thylakoid membranes of the chloroplast.",
    "Given a weighted directed graph, Dijkstra's algorithm computes shortest paths from a "
    "single source in O((V + E) log V) time when the weights are non-negative.",
    "Please summarise the main arguments of the essay, list the evidence for each, and "
    "point out any claims that are not supported by the sources it cites.",
]


def make_prompt(tokens: int) -> str:
    from llmrouter.tokens import count_text_tokens

    text, index = "", 0
    while count_text_tokens(text) < tokens:
        text += PARAGRAPHS[index % len(PARAGRAPHS)] + f" (note {index})\n"
        index += 1
    return text


def import_time(runs: int = 7) -> list[float]:
    code = "import time; t = time.perf_counter(); import llmrouter; print(time.perf_counter() - t)"
    return [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        * 1000
        for _ in range(runs)
    ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--policy", default=str(REPO / "policies" / "two-tier-local.yaml"))
    args = parser.parse_args()

    imports = import_time()
    print(
        f"import llmrouter: median {statistics.median(imports):.0f} ms "
        f"(min {min(imports):.0f}, max {max(imports):.0f}, {len(imports)} fresh processes)"
    )

    from llmrouter import Router, load_policy

    policy = load_policy(args.policy)
    with tempfile.TemporaryDirectory() as tmp:
        policy.cache.path = str(Path(tmp) / "cache")
        policy.ledger.url = f"sqlite:///{tmp}/ledger.db"
        started = time.perf_counter()
        router = Router(policy)
        print(
            f"Router() construction: {(time.perf_counter() - started) * 1000:.0f} ms "
            f"(predictor: {type(router.predictor).__name__})"
        )
        prompt = make_prompt(args.tokens)
        # Distinct prompts per call, so no layer can serve a repeat from memory.
        prompts = [[{"role": "user", "content": f"[{i}] {prompt}"}] for i in range(args.runs)]
        for messages in prompts[:50]:
            router.route(messages)
        timings = []
        for messages in prompts:
            t = time.perf_counter()
            router.route(messages)
            timings.append((time.perf_counter() - t) * 1000)
        tokens = router.route(prompts[0]).prompt_tokens
        print(
            f"route() on a {tokens}-token prompt over {args.runs} calls: "
            f"p50 {percentile(timings, 0.5):.3f} ms, p99 {percentile(timings, 0.99):.3f} ms, "
            f"mean {statistics.fmean(timings):.3f} ms"
        )
        from llmrouter.tokens import encode

        t = time.perf_counter()
        for messages in prompts[:500]:
            encode(messages[0]["content"])
        print(f"  of which tokenisation alone: {(time.perf_counter() - t) * 1000 / 500:.3f} ms")
        router.close()


if __name__ == "__main__":
    main()
