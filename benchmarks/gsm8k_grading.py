"""How RouteLLM graded GPT-4 on GSM8K: answers marked wrong that are right.

RouteLLM's GSM8K file has both models' answers and correctness but no reference answers. Where
GPT-4 is marked wrong and Mixtral right, Mixtral's ``#### N`` answer stands in for the
reference, and GPT-4's answer is re-graded right when its last number is N: GPT-4 seldom
writes ``####`` and often ends on a price such as "$20.00", which the grading took for wrong.
A lower bound on the misgrading (only answers Mixtral got right can be checked). Used by
``brain_eval.py`` and ``brain_text_signal.py``; it reads ``../shared`` (benchmarks only).
"""

from __future__ import annotations

import csv
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["gsm8k_grading"]

GPT4 = "gpt-4-1106-preview"
MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_FINAL = re.compile(r"####\s*\$?\s*(-?[\d,]*\.?\d+)")
_DECIMAL = re.compile(r"\d\.\d")


def _last_number(text: str) -> float | None:
    found = _NUMBER.findall(text.replace(",", "").replace("$", ""))
    return float(found[-1]) if found else None


def _final_answer(text: str) -> float | None:
    found = _FINAL.search(text)
    return float(found.group(1).replace(",", "")) if found else None


def gsm8k_grading(shared: Path, records: list[Any]) -> tuple[dict[str, Any], list[Any]]:
    """GPT-4 answers marked wrong whose last number is Mixtral's correct final answer, and
    the records with those answers re-graded right (a lower bound: only answers Mixtral got
    right can be checked)."""
    csv.field_size_limit(sys.maxsize)
    path = shared / "routing" / "routellm" / "gsm8k" / "gsm8k_responses.csv"
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    records = [r for r in records if {MIXTRAL, GPT4} <= set(r.scores)]
    regraded, checkable, flipped = [], 0, 0
    for record in records:
        row = rows[int(record.id.rsplit("-", 1)[1])]  # ids are gsm8k-<row> (convert.py)
        assert row["prompt"] == record.text
        if record.scores[GPT4] < 0.5 and record.scores[MIXTRAL] > 0.5:
            gold = _final_answer(row[MIXTRAL + "_response"])
            checkable += gold is not None
            if gold is not None and _last_number(row[GPT4 + "_response"]) == gold:
                flipped += 1
                record = replace(record, scores={**record.scores, GPT4: 1.0})
        regraded.append(record)

    def accuracy(rows: list[Any], decimal: bool) -> dict[str, float]:
        chosen = [r for r in rows if bool(_DECIMAL.search(r.text)) == decimal]
        return {
            "prompts": len(chosen),
            "gpt4": round(float(np.mean([r.scores[GPT4] for r in chosen])), 3),
            "mixtral": round(float(np.mean([r.scores[MIXTRAL] for r in chosen])), 3),
        }

    report = {
        "gpt4_marked_wrong": sum(r.scores[GPT4] < 0.5 for r in records),
        "of_which_mixtral_right_with_a_final_answer": checkable,
        "of_which_gpt4_last_number_is_that_answer": flipped,
        "accuracy_as_graded": {
            "question_with_a_decimal": accuracy(records, True),
            "others": accuracy(records, False),
        },
        "accuracy_regraded": {
            "question_with_a_decimal": accuracy(regraded, True),
            "others": accuracy(regraded, False),
        },
    }
    return report, regraded
