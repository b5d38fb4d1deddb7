"""eval-compression: data loading, metrics, baselines and the CLI command."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from test_compression import ANSWER, QUESTION, long_document

from llmrouter.cli.main import main
from llmrouter.compression.baselines import head, random_sentences, tail
from llmrouter.compression.eval_data import InvalidDataError, load_records
from llmrouter.compression.eval_metrics import (
    evidence_recall,
    evidence_words,
    lcs_length,
    rouge_l_recall,
)
from llmrouter.compression.evaluation import evaluate
from llmrouter.compression.messages import TokenCounter

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "compression" / "leval"


def test_evidence_excludes_question_words_and_words_absent_from_the_document() -> None:
    document = "The ferry leaves from pier 7. Tickets cost 12 euros."
    question = "Which pier does the ferry leave from? (A) pier 7 (B) pier 9"
    evidence = evidence_words(document, question, ["Pier 7, the northern one"])
    assert evidence == set()  # "pier" and "7" are in the question, "northern" not in the doc
    evidence = evidence_words(document, "Where does it leave from?", ["Pier 7 for ferries"])
    assert evidence == {"pier", "7"}
    assert evidence_recall(evidence, "Ferry leaves pier 8.") == 0.5
    assert evidence_recall(set(), "anything") is None


def naive_lcs(a: list[str], b: list[str]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = (
                table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
            )
    return table[-1][-1]


def test_bit_parallel_lcs_matches_dynamic_programming() -> None:
    rng = random.Random(3)
    for _ in range(200):
        a = [rng.choice("abcd") for _ in range(rng.randint(0, 30))]
        b = [rng.choice("abcde") for _ in range(rng.randint(0, 70))]
        assert lcs_length(a, b) == naive_lcs(a, b)


def test_rouge_l_recall() -> None:
    assert rouge_l_recall("the cat sat", "the big cat sat down") == 1.0
    assert rouge_l_recall("the cat sat", "sat cat the") == pytest.approx(1 / 3)


def test_baselines_respect_the_budget() -> None:
    counter = TokenCounter()
    document = long_document()
    for baseline in (head, tail, random_sentences):
        kept = baseline(document, 300, 0, counter)
        assert 250 <= counter.text(kept) <= 310
    assert document.startswith(head(document, 50, 0, counter))
    assert document.endswith(tail(document, 50, 0, counter))


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    return path


def test_both_formats_load(tmp_path: Path) -> None:
    leval = write_jsonl(
        tmp_path / "leval.jsonl",
        [{"input": "Doc.", "instructions": ["Q1?", "Q2?"], "outputs": ["A1", "A2"]}],
    )
    plain = write_jsonl(
        tmp_path / "plain.jsonl",
        [{"document": "Doc.", "question": "Summarize the report.", "answers": "A"}],
    )
    records = load_records(leval)
    assert [(r.task, r.question, r.answers) for r in records] == [
        ("leval", "Q1?", ("A1",)),
        ("leval", "Q2?", ("A2",)),
    ]
    (summary,) = load_records(plain)
    assert summary.is_summary and summary.answers == ("A",)


@pytest.mark.parametrize(
    "content",
    ['{"input": "x", "instructions": ["q"], "outputs": []}', '{"text": "x"}', "not json", ""],
)
def test_bad_files_are_reported(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InvalidDataError):
        load_records(path)


def synthetic_file(tmp_path: Path) -> Path:
    rows = [
        {
            "document": long_document(answer_at=i * 9),
            "question": QUESTION,
            "answers": [ANSWER],
        }
        for i in range(3)
    ]
    return write_jsonl(tmp_path / "synthetic.jsonl", rows)


def test_extraction_beats_truncation_on_a_buried_answer(tmp_path: Path) -> None:
    records = load_records(synthetic_file(tmp_path))
    report = evaluate(records, [3.0])
    ours = report.get("synthetic", 3.0, "llmrouter")
    assert ours is not None and ours.evidence_recall == 1.0
    assert 2.8 <= ours.reduction <= 3.2
    for method in ("head", "tail"):
        baseline = report.get("synthetic", 3.0, method)
        assert baseline is not None and baseline.evidence_recall is not None
        assert baseline.evidence_recall < 1.0
        assert baseline.reduction == pytest.approx(ours.reduction, rel=0.05)


def test_cli_prints_a_table_json_and_a_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = synthetic_file(tmp_path)
    assert (
        main(["eval-compression", "--data", str(data), "--ratio", "2", "3", "--no-progress"]) == 0
    )
    table = capsys.readouterr().out
    assert "evidence recall" in table and "synthetic" in table and "margin" in table
    code = main(["eval-compression", "--data", str(tmp_path), "--ratio", "3", "--json"])
    assert code == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    methods = {row["method"] for row in report["results"]}
    assert methods == {"llmrouter", "head", "tail", "random"}
    assert "eval-compression" in captured.err  # the progress bar goes to stderr
    pytest.importorskip("matplotlib")
    plot = tmp_path / "curve.png"
    args = ["eval-compression", "--data", str(data), "--ratio", "3", "--plot", str(plot)]
    assert main([*args, "--no-progress"]) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "extra",
    [["--ratio", "0.5"], ["--stages", "normalize,shrink"], ["--limit", "0"]],
)
def test_cli_bad_input_exits_2(tmp_path: Path, extra: list[str]) -> None:
    data = synthetic_file(tmp_path)
    assert main(["eval-compression", "--data", str(data), *extra, "--no-progress"]) == 2


def test_cli_missing_file_exits_2(tmp_path: Path) -> None:
    assert main(["eval-compression", "--data", str(tmp_path / "none.jsonl")]) == 2


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data/compression/leval")
def test_leval_sample_keeps_evidence_at_3x() -> None:
    records = []
    for path in sorted(SHARED.glob("*.jsonl")):
        records.extend(load_records(path)[:3])
    report = evaluate(records, [3.0])
    for task in report.tasks():
        ours = report.get(task, 3.0, "llmrouter")
        assert ours is not None and ours.evidence_recall is not None
        assert ours.reduction == pytest.approx(3.0, rel=0.05)
        margin = report.margin(task, 3.0)
        assert margin is not None and margin > 0, task
