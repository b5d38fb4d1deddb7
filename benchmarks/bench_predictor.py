"""Latency of the learned predictor: profile() on short prompts and on a 2,000-token prompt,
probability() per backend.

Short prompts: 5,000 distinct ~15-token chat prompts, profiled in a loop (mean per call,
best of 5 passes; target <= 20 us). Long: p50/p99 over 2,000 calls (the router's budget is
~300 us p50 for profile()). Usage: python benchmarks/bench_predictor.py [WEIGHTS]
(WEIGHTS: a weights stem or directory; default the shipped weights).
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from llmrouter.brain import LearnedPredictor
from llmrouter.policy.schema import BackendConfig
from llmrouter.tokens import encode

PARAGRAPH = (
    "Consider a sequence of integers defined by a recurrence. We want to prove, step by step, "
    "that the sequence is eventually periodic, and to write a Python function that finds the "
    "period. ```python\ndef period(xs):\n    return len(set(xs))\n``` Explain the complexity. "
)


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(0.99 * (len(ordered) - 1))]


def main() -> None:
    started = time.perf_counter()
    predictor = LearnedPredictor(sys.argv[1] if len(sys.argv) > 1 else None)
    print(f"load weights: {1e3 * (time.perf_counter() - started):.1f} ms (once per predictor)")
    text = PARAGRAPH
    while len(encode(text)) < 2000:
        text += PARAGRAPH
    ids = encode(text)[:2000]
    backends = [
        BackendConfig(name="small", model="small-model", quality=0.35, base_url="http://x/v1"),
        BackendConfig(name="gpt4", model="gpt-4-1106-preview", quality=0.9, base_url="http://x/v1"),
        BackendConfig(
            name="calibrated",
            model="other",
            quality=0.6,
            base_url="http://x/v1",
            calibration={"ability": 0.4, "discrimination": 1.1, "math": 0.2},
        ),
    ]
    rng = random.Random(0)
    short = [
        f"Hello there, how are you today? request {rng.randint(100, 999)}-{i:04d}"
        for i in range(5000)
    ]
    short_ids = [(t, encode(t)) for t in short]
    tokens = sum(len(i) for _, i in short_ids) / len(short_ids)
    passes = []
    for _ in range(5):
        t0 = time.perf_counter()
        for prompt, prompt_ids in short_ids:
            predictor.profile(prompt, prompt_ids)
        passes.append((time.perf_counter() - t0) / len(short_ids))
    best, median = 1e6 * min(passes), 1e6 * statistics.median(passes)
    print(
        f"profile(short, {len(short_ids)} distinct prompts, {tokens:.0f} tokens): "
        f"{best:.1f} us per call (best of 5 passes; median {median:.1f})"
    )
    for _ in range(200):
        profile = predictor.profile(text, ids)
    samples = []
    for _ in range(2000):
        t0 = time.perf_counter()
        profile = predictor.profile(text, ids)
        samples.append(time.perf_counter() - t0)
    p50, p99 = _percentiles(samples)
    print(f"profile(2,000 tokens): p50 {1e6 * p50:.0f} us, p99 {1e6 * p99:.0f} us")
    samples = []
    for _ in range(20000):
        t0 = time.perf_counter()
        for backend in backends:
            predictor.probability(profile, backend)
        samples.append((time.perf_counter() - t0) / len(backends))
    p50, p99 = _percentiles(samples)
    print(f"probability() per backend: p50 {1e6 * p50:.1f} us, p99 {1e6 * p99:.1f} us")
    print(f"complexity {profile.complexity:.3f}, signals {profile.signals}")


if __name__ == "__main__":
    main()
