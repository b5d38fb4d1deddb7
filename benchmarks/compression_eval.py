"""Compression fidelity targets on L-Eval (needs ../shared/data/compression/leval).

At 3x token reduction, per task: evidence recall >= 90%, never more than 2 points below
the better of head/tail truncation at the same budget, and on average >= 10 points above
it. Prints the measured numbers and whether each target holds (exit code 0 either way:
this reports, the tests assert behaviour).

    python benchmarks/compression_eval.py [--data DIR] [--ratio 3] [--stages a,b,c]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llmrouter.compression.eval_data import load_records
from llmrouter.compression.evaluation import evaluate

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "compression" / "leval"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="compression fidelity targets on L-Eval")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--ratio", type=float, default=3.0)
    parser.add_argument("--stages", help="comma-separated stages (default: the library's)")
    args = parser.parse_args(argv)
    files = sorted(args.data.glob("*.jsonl")) if args.data.is_dir() else []
    if not files:
        print(f"no L-Eval files under {args.data}", file=sys.stderr)
        return 2
    records = [record for path in files for record in load_records(path)]
    stages = args.stages.split(",") if args.stages else None
    report = evaluate(records, [args.ratio], stages=stages)
    print(f"ratio {args.ratio:g}, stages {stages or 'default'}")
    print(f"{'task':18} {'reduction':>9} {'recall':>7} {'head':>6} {'tail':>6} {'margin':>7}")
    margins: list[float] = []
    all_above = True
    for task in report.tasks():
        ours = report.get(task, args.ratio, "llmrouter")
        head = report.get(task, args.ratio, "head")
        tail = report.get(task, args.ratio, "tail")
        margin = report.margin(task, args.ratio)
        if ours is None or head is None or tail is None or margin is None:
            continue
        assert ours.evidence_recall is not None
        assert head.evidence_recall is not None and tail.evidence_recall is not None
        margins.append(margin)
        all_above &= ours.evidence_recall >= 0.90 and margin >= -2.0
        print(
            f"{task:18} {ours.reduction:9.2f} {100 * ours.evidence_recall:7.1f} "
            f"{100 * head.evidence_recall:6.1f} {100 * tail.evidence_recall:6.1f} {margin:+7.1f}"
        )
    mean = sum(margins) / len(margins) if margins else 0.0
    print(f"every task >= 90% and >= best(head, tail) - 2: {'yes' if all_above else 'NO'}")
    print(f"mean margin over best(head, tail): {mean:+.1f} points (target >= +10)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
