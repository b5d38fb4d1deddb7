"""Converters from the public routing/difficulty sets into the labelled-prompt JSONL format.

Each returns records; the ``scripts/convert_*.py`` wrappers write them. Missing cells stay
missing (unknown), RouteLLM's contaminated prompts are dropped, MT-Bench judge scores 1-10
become (score - 1) / 9.
"""

from __future__ import annotations

import ast
import csv
import json
import re
import sys
from pathlib import Path
from typing import Any

from .dataset import Record

__all__ = [
    "category_of_task",
    "convert_llmrouter",
    "convert_math",
    "convert_routellm",
    "convert_routerbench",
    "llmrouter_prices",
    "load_shared",
]

_MMLU_MATH = {
    "abstract_algebra",
    "college_mathematics",
    "elementary_mathematics",
    "high_school_mathematics",
    "high_school_statistics",
    "college_physics",
    "high_school_physics",
    "econometrics",
}
_MMLU_CODE = {"college_computer_science", "high_school_computer_science", "machine_learning"}
_MMLU_REASONING = {"formal_logic", "logical_fallacies", "moral_scenarios"}
_MT_BENCH = {
    "writing": "chat",
    "roleplay": "chat",
    "humanities": "chat",
    "math": "math",
    "coding": "code",
    "reasoning": "reasoning",
    "extraction": "knowledge",
    "stem": "knowledge",
}


def category_of_task(task: str | None) -> str | None:
    """The demand category a task label implies (None when unknown): supervision only."""
    if not task:
        return None
    head, _, sub = task.partition("/")
    if head == "mmlu":
        if sub in _MMLU_MATH:
            return "math"
        if sub in _MMLU_CODE:
            return "code"
        return "reasoning" if sub in _MMLU_REASONING else "knowledge"
    if head in ("gsm8k", "math"):
        return "math"
    if head in ("mbpp", "humaneval"):
        return "code"
    if head in ("arc-challenge", "winogrande"):
        return "reasoning"
    if head == "mt_bench":
        return _MT_BENCH.get(sub)
    return None


def _norm(text: str) -> str:
    return " ".join(text.split())


def _contaminated(path: Path) -> set[str]:
    if not path.exists():
        return set()
    with path.open(encoding="utf-8") as handle:
        return {_norm(json.loads(line)["eval_prompt"]) for line in handle if line.strip()}


def _bool_score(cell: str) -> float | None:
    cell = cell.strip()
    if cell in ("True", "1", "1.0", "true"):
        return 1.0
    if cell in ("False", "0", "0.0", "false"):
        return 0.0
    return None


_STRONG = "gpt-4-1106-preview"
_WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"


def convert_routellm(root: Path) -> dict[str, list[Record]]:
    """RouteLLM's MMLU, GSM8K and MT-Bench results, keyed by set name."""
    csv.field_size_limit(sys.maxsize)
    out: dict[str, list[Record]] = {"mmlu": [], "gsm8k": [], "mt_bench": []}
    dropped = _contaminated(root / "mmlu" / "contaminated_prompts.jsonl")
    for path in sorted((root / "mmlu").glob("mmlu_*.csv")):
        subject = path.stem.removeprefix("mmlu_")
        with path.open(encoding="utf-8") as handle:
            for i, row in enumerate(csv.DictReader(handle)):
                if _norm(row["prompt"]) in dropped:
                    continue
                scores = {m: _bool_score(row[m]) for m in (_WEAK, _STRONG)}
                out["mmlu"].append(
                    _record(f"mmlu-{subject}-{i}", row["prompt"], scores, "mmlu/" + subject)
                )
    dropped = _contaminated(root / "gsm8k" / "contaminated_prompts.jsonl")
    with (root / "gsm8k" / "gsm8k_responses.csv").open(encoding="utf-8") as handle:
        for i, row in enumerate(csv.DictReader(handle)):
            if _norm(row["prompt"]) in dropped:
                continue
            scores = {m: _bool_score(row[m]) for m in (_WEAK, _STRONG)}
            out["gsm8k"].append(_record(f"gsm8k-{i}", row["prompt"], scores, "gsm8k"))
    out["mt_bench"] = _mt_bench(root / "mt_bench")
    return out


def _mt_bench(folder: Path) -> list[Record]:
    dropped = _contaminated(folder / "contaminated_prompts.jsonl")
    questions: dict[str, dict[str, Any]] = {}
    with (folder / "question.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            q = json.loads(line)
            questions[str(q["question_id"])] = q
    scores: dict[str, dict[str, float]] = {}
    with (folder / "judgements.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            j = json.loads(line)
            if str(j.get("turn", "1")) != "1" or float(j["score"]) < 0:
                continue
            scores.setdefault(str(j["question_id"]), {})[j["model"]] = (float(j["score"]) - 1) / 9
    records = []
    for qid, q in questions.items():
        prompt = q["turns"][0]
        if _norm(prompt) in dropped or qid not in scores:
            continue
        task = "mt_bench/" + q.get("category", "")
        records.append(Record(id=f"mt_bench-{qid}", text=prompt, scores=scores[qid], task=task))
    return records


def _record(rid: str, text: str, scores: dict[str, float | None], task: str) -> Record:
    known = {k: v for k, v in scores.items() if v is not None}
    return Record(id=rid, text=text, scores=known, task=task)


def _routerbench_prompt(cell: str) -> str:
    try:
        value = ast.literal_eval(cell)
    except (ValueError, SyntaxError):
        return cell
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return str(value)


def convert_routerbench(root: Path) -> dict[str, list[Record]]:
    """RouterBench task CSVs (0/1 scores and real USD cost per model), keyed by task."""
    csv.field_size_limit(sys.maxsize)
    out: dict[str, list[Record]] = {}
    for path in sorted(root.glob("*_train.csv")):
        with path.open(encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            fields = reader.fieldnames or []
            models = [f for f in fields if f.endswith("|total_cost")]
            models = [f.removesuffix("|total_cost") for f in models]
            records = []
            for row in reader:
                scores: dict[str, float] = {}
                costs: dict[str, float] = {}
                for m in models:
                    if row.get(m, "").strip():
                        scores[m] = min(max(float(row[m]), 0.0), 1.0)
                    if row.get(m + "|total_cost", "").strip():
                        costs[m] = float(row[m + "|total_cost"])
                task = row.get("eval_name") or path.stem.removesuffix("_train")
                records.append(
                    Record(
                        id=str(row["sample_id"]),
                        text=_routerbench_prompt(row["prompt"]),
                        scores=scores,
                        costs=costs,
                        task=task,
                    )
                )
        out[path.stem.removesuffix("_train")] = records
    return out


def convert_llmrouter(root: Path) -> list[Record]:
    """LLMRouter's 9-model results (scores may be fractional)."""
    with (root / "train.json").open(encoding="utf-8") as handle:
        rows = json.load(handle)
    records = []
    for i, row in enumerate(rows):
        scores = {
            k: min(max(float(v), 0.0), 1.0) for k, v in row["scores"].items() if v is not None
        }
        records.append(Record(id=f"llmrouter-{i}", text=row["question"], scores=scores))
    return records


def llmrouter_prices(root: Path) -> dict[str, tuple[float, float]]:
    """(input, output) USD per million tokens of the LLMRouter models."""
    with (root / "default_llm.json").open(encoding="utf-8") as handle:
        table = json.load(handle)
    return {k: (float(v["input_price"]), float(v["output_price"])) for k, v in table.items()}


def convert_math(path: Path) -> list[Record]:
    """MATH problems with their level (1-5) as ordinal difficulty labels; no model scores."""
    records = []
    with path.open(encoding="utf-8") as handle:
        for i, line in enumerate(handle):
            row = json.loads(line)
            level = re.search(r"\d", str(row.get("level", "")))
            if level is None:
                continue
            subject = str(row.get("type", "")).lower().replace(" ", "_").replace("&", "and")
            records.append(
                Record(
                    id=str(row.get("id") or f"math-{i}"),
                    text=row["problem"],
                    level=int(level.group()),
                    task="math/" + subject,
                )
            )
    return records


def load_shared(shared: Path) -> dict[str, list[Record]]:
    """Every set of the shared development data, converted, keyed by set name."""
    routing = shared / "routing"
    sets: dict[str, list[Record]] = {}
    for name, records in convert_routellm(routing / "routellm").items():
        sets[f"routellm_{name}"] = records
    for name, records in convert_routerbench(routing / "routerbench").items():
        sets[f"routerbench_{name}"] = records
    sets["llmrouter"] = convert_llmrouter(routing / "llmrouter")
    sets["math"] = convert_math(shared / "difficulty" / "math" / "train.jsonl")
    return sets
