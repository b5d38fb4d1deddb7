"""Reading evaluation records: L-Eval JSONL as published, or plain document/question JSONL."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["EvalRecord", "InvalidDataError", "load_records"]

_SUMMARY = re.compile(r"\bsummar", re.IGNORECASE)


class InvalidDataError(ValueError):
    """The file is not L-Eval or plain evaluation JSONL."""


@dataclass(frozen=True)
class EvalRecord:
    """One (document, question, gold answers) triple."""

    task: str
    document: str
    question: str
    answers: tuple[str, ...]

    @property
    def is_summary(self) -> bool:
        """Summary requests are scored with ROUGE-L as well as evidence recall."""
        return bool(_SUMMARY.search(self.question))


def load_records(path: str | Path, task: str | None = None) -> list[EvalRecord]:
    """All records of a JSONL file; one L-Eval line yields one record per instruction."""
    path = Path(path)
    name = task or path.stem
    records: list[EvalRecord] = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidDataError(f"{path}: cannot read: {exc}") from exc
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidDataError(f"{path}:{line_no}: not JSON: {exc.msg}") from exc
        if not isinstance(row, dict):
            raise InvalidDataError(f"{path}:{line_no}: expected a JSON object")
        records.extend(_records_of(row, str(row.get("task") or name), f"{path}:{line_no}"))
    if not records:
        raise InvalidDataError(f"{path}: no records")
    return records


def _records_of(row: dict[str, Any], task: str, where: str) -> Iterator[EvalRecord]:
    if "input" in row and "instructions" in row:
        document, questions, outputs = row["input"], row["instructions"], row.get("outputs")
        if not isinstance(questions, list) or not isinstance(outputs, list):
            raise InvalidDataError(f"{where}: 'instructions' and 'outputs' must be lists")
        if len(questions) != len(outputs):
            raise InvalidDataError(
                f"{where}: {len(questions)} instructions, {len(outputs)} outputs"
            )
        for question, output in zip(questions, outputs, strict=True):
            yield _record(task, document, question, output, where)
    elif "document" in row and "question" in row:
        yield _record(task, row["document"], row["question"], row.get("answers"), where)
    else:
        raise InvalidDataError(
            f"{where}: expected L-Eval keys (input, instructions, outputs) "
            "or plain keys (document, question, answers)"
        )


def _record(task: str, document: Any, question: Any, answers: Any, where: str) -> EvalRecord:
    if not isinstance(document, str) or not isinstance(question, str):
        raise InvalidDataError(f"{where}: document and question must be strings")
    if isinstance(answers, str):
        answers = [answers]
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise InvalidDataError(f"{where}: answers must be a string or a list of strings")
    return EvalRecord(task, document, question, tuple(answers))
