"""Reproduce the shipped brain weights from ../shared/data (seeded; ~8 minutes on 2 idle cores).

Usage: python scripts/train_default_brain.py [--shared ../shared/data] [--out STEM]
Writes STEM.npz and STEM.json (default: llmrouter/brain/weights/default).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from llmrouter.brain.convert import load_shared  # noqa: E402
from llmrouter.brain.training import TrainConfig, train  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument(
        "--out", type=Path, default=REPO / "llmrouter" / "brain" / "weights" / "default"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-iter", type=int, default=TrainConfig().max_iter)
    args = parser.parse_args()
    if not args.shared.is_dir():
        print(f"skipped: {args.shared} is absent", file=sys.stderr)
        return 0
    records = [r for records in load_shared(args.shared).values() for r in records]
    started = time.perf_counter()
    weights = train(records, TrainConfig(seed=args.seed, max_iter=args.max_iter))
    weights.meta["training"]["sources"] = (
        "routellm mmlu/gsm8k/mt_bench, routerbench, llmrouter, MATH"
    )
    stem = weights.save(args.out)
    print(f"trained on {len(records)} records in {time.perf_counter() - started:.0f}s -> {stem}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
