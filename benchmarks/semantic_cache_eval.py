"""Semantic cache fidelity on perturbed MATH and GSM8K prompts (needs ../shared/data).

False hits: lookups of answer-changing perturbations (one number changed, a negation
added or removed) that return any cached answer; the target is 0 over >= 500 of them.
Hits on meaning-preserving rewrites (whitespace, casing, punctuation, clause order, a
polite preamble): the target is >= 50%.

    python benchmarks/semantic_cache_eval.py [--data ../shared/data] [--math 2000] [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from pathlib import Path

from llmrouter.cache.semantic import SemanticCache
from llmrouter.cache.semantic_eval import ANSWER_CHANGING, MEANING_PRESERVING, evaluate_cache

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def load_prompts(data: Path, math_count: int, seed: int) -> dict[str, list[str]]:
    math_rows = [
        json.loads(line)["problem"]
        for line in (data / "difficulty" / "math" / "train.jsonl").open(encoding="utf-8")
    ]
    random.Random(seed).shuffle(math_rows)
    gsm_path = data / "routing" / "routellm" / "gsm8k" / "gsm8k_responses.csv"
    with gsm_path.open(encoding="utf-8", newline="") as handle:
        gsm_rows = [row["prompt"] for row in csv.DictReader(handle)]
    return {"math": math_rows[:math_count], "gsm8k": gsm_rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--math", type=int, default=2000, help="MATH problems to use")
    parser.add_argument("--threshold", type=float, default=0.92)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not (args.data / "difficulty" / "math" / "train.jsonl").exists():
        print(f"data not found under {args.data}", file=sys.stderr)
        return 2
    results = {}
    for source, prompts in load_prompts(args.data, args.math, args.seed).items():
        cache = SemanticCache(threshold=args.threshold)
        report = evaluate_cache(prompts, cache, seed=args.seed)
        results[source] = report
    kinds = [*ANSWER_CHANGING, *MEANING_PRESERVING]
    if args.json:
        payload = {
            source: {
                "entries": r.entries,
                "trials": r.trials,
                "hits": r.hits,
                "refusals": r.refusals,
                "false_hits": len(r.false_hit_examples),
                "false_hit_examples": r.false_hit_examples[:10],
                "meaning_preserving_hit_rate": r.rate(MEANING_PRESERVING),
            }
            for source, r in results.items()
        }
        print(json.dumps(payload, indent=2))
        return 0
    print(f"threshold {args.threshold}")
    print(f"{'source':8} {'kind':12} {'trials':>7} {'hits':>6} {'rate':>7}")
    for source, r in results.items():
        for kind in kinds:
            trials, hits = r.trials.get(kind, 0), r.hits.get(kind, 0)
            rate = hits / trials if trials else 0.0
            print(f"{source:8} {kind:12} {trials:7d} {hits:6d} {rate:7.1%}")
    changing = sum(r.trials.get(k, 0) for r in results.values() for k in ANSWER_CHANGING)
    false_hits = sum(len(r.false_hit_examples) for r in results.values())
    kept = sum(r.trials.get(k, 0) for r in results.values() for k in MEANING_PRESERVING)
    kept_hits = sum(r.hits.get(k, 0) for r in results.values() for k in MEANING_PRESERVING)
    print(f"answer-changing perturbations: {changing}, false hits: {false_hits}")
    print(f"meaning-preserving rewrites: {kept}, hits: {kept_hits} ({kept_hits / kept:.1%})")
    for source, r in results.items():
        print(f"{source} guard refusals: {r.refusals}")
        for original, variant in r.false_hit_examples[:5]:
            print(f"  FALSE HIT\n    {original!r}\n    {variant!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
