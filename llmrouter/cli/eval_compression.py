"""``llmrouter eval-compression``: what prompt compression keeps, against naive truncation."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmrouter.compression.evaluation import EvalReport

__all__ = ["add_parser", "run"]

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval-compression",
        help="token reduction and evidence recall of prompt compression vs baselines",
        description=(
            "Compresses each (document, question) record at each ratio and reports the token "
            "reduction, the evidence recall (share of the gold answers' content words found in "
            "the document, minus the question's words, that survive) and ROUGE-L recall for "
            "summary requests, against head, tail and random-sentence baselines at the same "
            "token budget. Reads L-Eval JSONL (input, instructions, outputs) or plain JSONL "
            "(document, question, answers)."
        ),
    )
    parser.add_argument(
        "--data", required=True, nargs="+", metavar="FILE", help="JSONL files or directories"
    )
    parser.add_argument(
        "--ratio",
        type=float,
        nargs="+",
        default=[2.0, 3.0, 4.0],
        metavar="R",
        help="target reduction factors (3 = keep about a third of the tokens)",
    )
    parser.add_argument("--stages", help="comma-separated stages (default: the library's)")
    parser.add_argument("--limit", type=int, help="records per file (for a quick look)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random baseline")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--plot", metavar="PNG", help="write recall-vs-reduction curves")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.set_defaults(handler=run)


def _files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(path.glob("*.jsonl")))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{raw}: no such file or directory")
    if not files:
        raise FileNotFoundError("no .jsonl files found")
    return files


def run(args: argparse.Namespace) -> int:
    from llmrouter.compression.eval_data import InvalidDataError, load_records
    from llmrouter.compression.evaluation import evaluate
    from llmrouter.compression.pipeline import STAGES

    stages = [s.strip() for s in args.stages.split(",") if s.strip()] if args.stages else None
    problems = [f"unknown stage {s!r}" for s in stages or () if s not in STAGES]
    problems += [f"ratio must be >= 1, got {r}" for r in args.ratio if not r >= 1.0]
    if args.limit is not None and args.limit < 1:
        problems.append("--limit must be positive")
    try:
        records = []
        for path in _files(args.data):
            records.extend(load_records(path)[: args.limit] if args.limit else load_records(path))
    except (FileNotFoundError, InvalidDataError) as exc:
        problems.append(str(exc))
    if problems:
        for problem in problems:
            print(f"llmrouter eval-compression: error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT

    ratios = sorted(set(args.ratio))
    try:
        from tqdm import tqdm
    except ImportError:  # the bar is a nicety; tqdm comes with litellm's dependencies
        report = evaluate(records, ratios, stages=stages, seed=args.seed)
    else:
        with tqdm(
            total=len(records) * len(ratios),
            desc="eval-compression",
            unit="record",
            file=sys.stderr,
            disable=args.no_progress,
        ) as bar:
            report = evaluate(records, ratios, stages=stages, seed=args.seed, on_step=bar.update)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(format_table(report))
    if args.plot:
        error = write_plot(report, Path(args.plot))
        if error:
            print(f"llmrouter eval-compression: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
    return EXIT_OK


def _pct(value: float | None) -> str:
    return "    -" if value is None else f"{100 * value:5.1f}"


def format_table(report: EvalReport) -> str:
    """One row per task and ratio: reduction, then recall (and ROUGE-L) per method."""
    methods = ("llmrouter", "head", "tail", "random")
    header = f"{'task':22} {'ratio':>5} {'reduct':>6}  " + "  ".join(f"{m[:9]:>9}" for m in methods)
    lines = ["evidence recall (%) at the same token budget", header, "-" * len(header)]
    rouge_lines: list[str] = []
    for task in report.tasks():
        for ratio in report.ratios():
            ours = report.get(task, ratio, "llmrouter")
            if ours is None:
                continue
            cells = [report.get(task, ratio, m) for m in methods]
            recall = "  ".join(f"{_pct(c.evidence_recall if c else None):>9}" for c in cells)
            lines.append(f"{task[:22]:22} {ratio:5.1f} {ours.reduction:6.2f}  {recall}")
            if ours.rouge_l is not None:
                rouge = "  ".join(f"{_pct(c.rouge_l if c else None):>9}" for c in cells)
                full = _pct(report.full_rouge_l.get(task))
                rouge_lines.append(
                    f"{task[:22]:22} {ratio:5.1f} {ours.reduction:6.2f}  {rouge}   (full {full})"
                )
    if rouge_lines:
        lines += ["", "ROUGE-L recall of the references (%), summary requests", header]
        lines += ["-" * len(header), *rouge_lines]
    lines += ["", "margin over the better of head/tail (points):"]
    for ratio in report.ratios():
        margins = {t: report.margin(t, ratio) for t in report.tasks()}
        known = [m for m in margins.values() if m is not None]
        listed = ", ".join(f"{t} {m:+.1f}" for t, m in margins.items() if m is not None)
        mean = f"mean {sum(known) / len(known):+.1f}" if known else "mean -"
        lines.append(f"  ratio {ratio:g}: {listed}; {mean}")
    return "\n".join(lines)


def write_plot(report: EvalReport, path: Path) -> str | None:
    """Recall against achieved reduction, one panel per task; an error message or None."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "--plot needs matplotlib (pip install 'llmrouter[dev]')"
    tasks = report.tasks()
    columns = min(len(tasks), 3) or 1
    rows = (len(tasks) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 4 * rows), squeeze=False)
    styles: dict[str, dict[str, Any]] = {
        "llmrouter": {"marker": "o", "linewidth": 2.5},
        "head": {"marker": "s", "linestyle": "--"},
        "tail": {"marker": "^", "linestyle": "--"},
        "random": {"marker": "x", "linestyle": ":"},
    }
    for axis, task in zip(axes.flat, tasks, strict=False):
        for method, style in styles.items():
            points = [report.get(task, ratio, method) for ratio in report.ratios()]
            xs = [p.reduction for p in points if p and p.evidence_recall is not None]
            ys = [100 * p.evidence_recall for p in points if p and p.evidence_recall is not None]
            if xs:
                axis.plot(xs, ys, label=method, **style)
        axis.set_title(task)
        axis.set_xlabel("token reduction (x)")
        axis.set_ylabel("evidence recall (%)")
        axis.set_ylim(0, 100)
        axis.grid(alpha=0.3)
        axis.legend(loc="lower left")
    for axis in list(axes.flat)[len(tasks) :]:
        axis.set_visible(False)
    figure.tight_layout()
    try:
        figure.savefig(path, dpi=110)
    except OSError as exc:
        return f"cannot write {path}: {exc}"
    finally:
        plt.close(figure)
    return None
