"""``eval-compression``'s library: compress (document, question) records and measure.

Each record becomes one chat message, the document followed by the question, exactly as an
application would send it; ``compress`` must find the question itself. Baselines get the
same document token budget as the compressed output actually used: the head or the tail of
the document, or randomly chosen sentences, followed by the question.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from llmrouter.compression.baselines import BASELINES
from llmrouter.compression.eval_data import EvalRecord
from llmrouter.compression.eval_metrics import evidence_recall, evidence_words, rouge_l_recall
from llmrouter.compression.messages import TokenCounter
from llmrouter.compression.pipeline import compress

__all__ = ["METHODS", "EvalReport", "TaskResult", "evaluate"]

METHODS = ("llmrouter", *BASELINES)


@dataclass
class TaskResult:
    """Means over one task's records at one ratio, for one method."""

    task: str
    ratio: float
    method: str
    records: int
    evidence_records: int
    reduction: float
    evidence_recall: float | None
    rouge_l: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EvalReport:
    results: list[TaskResult] = field(default_factory=list)
    full_rouge_l: dict[str, float] = field(default_factory=dict)

    def get(self, task: str, ratio: float, method: str) -> TaskResult | None:
        for result in self.results:
            if (result.task, result.ratio, result.method) == (task, ratio, method):
                return result
        return None

    def tasks(self) -> list[str]:
        return list(dict.fromkeys(r.task for r in self.results))

    def ratios(self) -> list[float]:
        return sorted({r.ratio for r in self.results})

    def margin(self, task: str, ratio: float) -> float | None:
        """Evidence recall minus the better of head and tail, in points."""
        ours = self.get(task, ratio, "llmrouter")
        naive = [self.get(task, ratio, m) for m in ("head", "tail")]
        values = [r.evidence_recall for r in naive if r and r.evidence_recall is not None]
        if ours is None or ours.evidence_recall is None or not values:
            return None
        return 100.0 * (ours.evidence_recall - max(values))

    def as_dict(self) -> dict[str, Any]:
        return {
            "results": [r.as_dict() for r in self.results],
            "full_document_rouge_l": self.full_rouge_l,
            "margins_vs_best_of_head_tail": {
                task: {str(ratio): self.margin(task, ratio) for ratio in self.ratios()}
                for task in self.tasks()
            },
        }


@dataclass
class _Sample:
    reduction: float
    recall: float | None
    rouge: float | None


def evaluate(
    records: Sequence[EvalRecord],
    ratios: Sequence[float],
    *,
    stages: Iterable[str] | None = None,
    seed: int = 0,
    on_step: Callable[[], None] | None = None,
) -> EvalReport:
    """Compress every record at every ratio and score it against the baselines."""
    stage_list = list(stages) if stages is not None else None
    counter = TokenCounter()
    samples: dict[tuple[str, float, str], list[_Sample]] = {}
    full_rouge: dict[str, list[float]] = {}
    for index, record in enumerate(records):
        evidence = evidence_words(record.document, record.question, record.answers)
        if record.is_summary:
            full_rouge.setdefault(record.task, []).append(_rouge(record, record.document))
        suffix = f"\n\n{record.question}"
        for ratio in ratios:
            message = {"role": "user", "content": record.document + suffix}
            result = compress([message], ratio=ratio, stages=stage_list)
            text = str(result.messages[0]["content"])
            _add(samples, record, ratio, "llmrouter", result.ratio, evidence, text)
            # the document part of our output, in tokens: the baselines' budget
            budget = max(counter.text(text) - counter.text(suffix), 0)
            for name, baseline in BASELINES.items():
                kept = baseline(record.document, budget, seed + index, counter) + suffix
                before = result.tokens_before
                after = result.tokens_after - counter.text(text) + counter.text(kept)
                _add(samples, record, ratio, name, before / max(after, 1), evidence, kept)
            if on_step is not None:
                on_step()
    report = EvalReport(full_rouge_l={t: statistics.fmean(v) for t, v in full_rouge.items()})
    for (task, ratio, method), rows in samples.items():
        recalls = [s.recall for s in rows if s.recall is not None]
        rouges = [s.rouge for s in rows if s.rouge is not None]
        report.results.append(
            TaskResult(
                task=task,
                ratio=ratio,
                method=method,
                records=len(rows),
                evidence_records=len(recalls),
                reduction=statistics.fmean(s.reduction for s in rows),
                evidence_recall=statistics.fmean(recalls) if recalls else None,
                rouge_l=statistics.fmean(rouges) if rouges else None,
            )
        )
    return report


def _rouge(record: EvalRecord, text: str) -> float:
    return max((rouge_l_recall(answer, text) for answer in record.answers), default=0.0)


def _add(
    samples: dict[tuple[str, float, str], list[_Sample]],
    record: EvalRecord,
    ratio: float,
    method: str,
    reduction: float,
    evidence: set[str],
    text: str,
) -> None:
    rouge = _rouge(record, text) if record.is_summary else None
    sample = _Sample(reduction, evidence_recall(evidence, text), rouge)
    samples.setdefault((record.task, ratio, method), []).append(sample)
