"""``llmrouter train``: fit the routing brain from labelled prompts (seeded, reproducible)."""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace
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
    parser.add_argument(
        "--anchor",
        action="append",
        metavar="MODEL=RATING",
        help="give twice: two trained models and the policy quality ratings (0-1) they stand "
        "for, which place a backend known only by its rating (default: the shipped weights' "
        "anchors, gpt-4-1106-preview=0.9 and mistral-7b-chat=0.35)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.set_defaults(handler=run)


def _anchors(given: list[str]) -> tuple[tuple[str, float], ...]:
    """``--anchor`` values as (canonical model id, rating), strongest first; raises
    ValueError saying why."""
    from llmrouter.brain.abilities import canonical_model_id

    if len(given) != 2:
        raise ValueError(f"--anchor is given exactly twice (two models), got {len(given)}")
    anchors = []
    for value in given:
        model, sep, rating = value.rpartition("=")
        try:
            number = float(rating)
        except ValueError:
            number = math.nan
        if not sep or not model or not 0.0 < number < 1.0:
            raise ValueError(f"--anchor {value!r}: expected MODEL=RATING with 0 < RATING < 1")
        anchors.append((canonical_model_id(model), number))
    if anchors[0][1] == anchors[1][1]:
        raise ValueError("--anchor: the two ratings must differ")
    if anchors[0][0] == anchors[1][0]:
        raise ValueError(f"--anchor names {anchors[0][0]} twice")
    return tuple(sorted(anchors, key=lambda a: -a[1]))


def run(args: argparse.Namespace) -> int:
    from llmrouter.brain.abilities import canonical_model_id
    from llmrouter.brain.dataset import DataError, read_jsonl
    from llmrouter.brain.progress import progress_bar
    from llmrouter.brain.training import TrainConfig, featurize, train

    config = TrainConfig(seed=args.seed, max_iter=args.max_iter)
    if args.anchor:
        try:
            config = replace(config, rating_anchors=_anchors(args.anchor))
        except ValueError as exc:
            print(f"llmrouter: error: {exc}", file=sys.stderr)
            return 2
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
    scored = {canonical_model_id(name) for r in records for name in r.scores}
    missing = [model for model, _ in config.rating_anchors if model not in scored]
    if args.anchor and missing:
        print(
            f"llmrouter: error: --anchor {', '.join(missing)}: no scores in the data "
            f"(scored: {', '.join(sorted(scored)[:8])})",
            file=sys.stderr,
        )
        return 2
    try:  # before the fit, so a bad --out does not cost the whole run
        Path(args.out).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"llmrouter: error: --out {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    with progress_bar(len(records), "features", not args.no_progress) as advance:
        feats = featurize([r.text for r in records], advance)
    weights = train(records, config, feats)
    stem = weights.save(Path(args.out) / "default")
    info = weights.meta["training"]
    print(
        f"trained on {info['prompts']} prompts, {info['observations']} results, "
        f"{len(weights.meta['models'])} models -> {stem}.npz"
    )
    if scored and not weights.meta["rating_map"]["anchors"]:
        (hi, _), (lo, _) = config.rating_anchors
        why = f"{', '.join(missing)} not in the data" if missing else f"{hi} is not above {lo}"
        print(
            f"llmrouter: warning: rating anchors unused ({why}): a backend known only by its "
            "policy quality rating gets abilities from a default line, not one fitted to these "
            "models; pass --anchor MODEL=RATING twice with two of the trained models",
            file=sys.stderr,
        )
    return 0
