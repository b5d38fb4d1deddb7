"""``llmrouter train``: fit the routing brain from labelled prompts (seeded, reproducible)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the quality predictor from labelled prompts (JSONL)",
        description=(
            "Fit prompt difficulty/demands and per-model abilities from JSONL records "
            '({"id", "prompt" | "messages", "scores": {model: 0..1 | null}, ...}). '
            "Writes DIR/default.npz and DIR/default.json."
        ),
    )
    parser.add_argument("--data", nargs="+", required=True, metavar="FILE", help="JSONL files")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-iter", type=int, default=600, help="optimiser iterations")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from llmrouter.brain.dataset import DataError, read_jsonl
    from llmrouter.brain.progress import progress_bar
    from llmrouter.brain.training import TrainConfig, featurize, train

    try:
        records = read_jsonl(args.data)
    except (OSError, DataError) as exc:
        print(f"llmrouter: error: {exc}", file=sys.stderr)
        return 2
    if not any(r.scores or r.level is not None for r in records):
        print("llmrouter: error: the data has no scores or levels to learn from", file=sys.stderr)
        return 2
    if args.max_iter < 1:
        print(f"llmrouter: error: --max-iter must be >= 1, got {args.max_iter}", file=sys.stderr)
        return 2
    try:  # before the fit, so a bad --out does not cost the whole run
        Path(args.out).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"llmrouter: error: --out {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    config = TrainConfig(seed=args.seed, max_iter=args.max_iter)
    with progress_bar(len(records), "features", not args.no_progress) as advance:
        feats = featurize([r.text for r in records], advance)
    weights = train(records, config, feats)
    stem = weights.save(Path(args.out) / "default")
    info = weights.meta["training"]
    print(
        f"trained on {info['prompts']} prompts, {info['observations']} results, "
        f"{len(weights.meta['models'])} models -> {stem}.npz"
    )
    return 0
