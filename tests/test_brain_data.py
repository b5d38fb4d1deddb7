"""The JSONL data format and the converters from the shared development data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmrouter.brain.convert import (
    category_of_task,
    convert_math,
    convert_routellm,
    convert_routerbench,
)
from llmrouter.brain.dataset import DataError, Record, read_jsonl, write_jsonl

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("LLMROUTER_SHARED_DATA", REPO.parent / "shared" / "data"))
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is absent")


def test_round_trip_and_unknown_scores(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(
        '{"id": "a", "prompt": "hi", "scores": {"x": 1, "y": null}, "costs": {"x": 0.01}}\n'
        "\n"
        '{"messages": [{"role": "user", "content": "first"}, {"role": "user", "content": '
        '[{"type": "text", "text": "second"}]}], "scores": {"x": 0.5}, '
        '"usage": {"x": {"prompt_tokens": 3, "completion_tokens": 4}}, "level": 2}\n'
    )
    a, b = read_jsonl([path])
    assert a.scores == {"x": 1.0} and a.costs == {"x": 0.01}
    assert b.text == "first\nsecond" and b.level == 2 and b.usage["x"].completion_tokens == 4
    assert b.id == "d-3"
    out = tmp_path / "out.jsonl"
    write_jsonl([a, b], out)
    assert [r.to_json() for r in read_jsonl([out])] == [a.to_json(), b.to_json()]


@pytest.mark.parametrize(
    "line",
    [
        '{"id": "a", "scores": {}}',
        '{"id": "a", "prompt": "x", "scores": {"m": 1.5}}',
        '{"id": "a", "prompt": "x", "scores": {"m": "yes"}}',
        "[1, 2]",
        '{"id": "a", "prompt": "x", "scores": [1, 0]}',
        '{"id": "a", "prompt": "x", "scores": {}, "costs": [0.1]}',
        '{"id": "a", "prompt": "x", "scores": {}, "costs": {"m": Infinity}}',
        '{"id": "a", "prompt": "x", "scores": {}, "costs": {"m": -0.5}}',
        '{"id": "a", "prompt": "x", "scores": {}, "usage": {"m": {"prompt_tokens": -3}}}',
        '{"id": "a", "prompt": "x", "scores": {}, "usage": {"m": {"input_tokens": 3}}}',
        '{"id": "a", "prompt": "x", "scores": {}, "level": 2.7}',
        '{"id": "a", "prompt": "x", "scores": {}, "level": 0}',
        '{"id": "a", "prompt": "x", "scores": {}, "level": 6}',
        '{"id": "a", "prompt": "x", "scores": {}, "usage": {"m": {"prompt_tokens": 3}}}',
        '{"prompt": "x", "scores": {}, "usage": {"m": '
        '{"prompt_tokens": 3, "completion_tokens": 2.5}}}',
        '{"prompt": "x", "messages": [{"role": "user", "content": "y"}], "scores": {}}',
        '{"messages": [{"role": "robot", "content": "y"}], "scores": {}}',
        '{"messages": [{"role": "user", "content": 42}], "scores": {}}',
        '{"messages": [], "scores": {}}',
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path: Path, line: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "fine", "scores": {}}\n' + line + "\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:2"):
        read_jsonl([path])


def test_files_without_records_are_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match=r"no records in .*empty\.jsonl"):
        read_jsonl([empty])
    whole = tmp_path / "whole.jsonl"
    whole.write_text(
        '{"prompt": "x", "usage": {"m": {"prompt_tokens": 3.0, "completion_tokens": 2}}}\n'
    )
    (record,) = read_jsonl([empty, whole])
    assert record.usage["m"].prompt_tokens == 3


def test_a_line_that_is_not_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"prompt": "fine", "scores": {}}\n{"prompt": "caf\xe9", "scores": {}}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: not UTF-8"):
        read_jsonl([path])


def test_task_categories() -> None:
    assert category_of_task("mmlu/college_mathematics") == "math"
    assert category_of_task("mmlu/world_religions") == "knowledge"
    assert category_of_task("mbpp") == "code"
    assert category_of_task("mt_bench/writing") == "chat"
    assert category_of_task(None) is None


@needs_shared
def test_routerbench_conversion() -> None:
    sets = convert_routerbench(SHARED / "routing" / "routerbench")
    assert set(sets) == {"arc_challenge", "mbpp", "winograde"}
    record: Record = sets["mbpp"][0]
    assert not record.text.startswith("['")
    assert "gpt-4-1106-preview" in record.scores and record.costs["gpt-4-1106-preview"] > 0
    assert len(record.scores) == 11


@needs_shared
def test_routellm_conversion_drops_contaminated_prompts() -> None:
    sets = convert_routellm(SHARED / "routing" / "routellm")
    assert len(sets["gsm8k"]) == 1319 - 12
    assert not any(r.text.startswith("Janet’s ducks") for r in sets["gsm8k"])
    assert all(0.0 <= v <= 1.0 for r in sets["mt_bench"] for v in r.scores.values())


@needs_shared
def test_math_levels() -> None:
    records = convert_math(SHARED / "difficulty" / "math" / "train.jsonl")
    assert {r.level for r in records} == {1, 2, 3, 4, 5}
    assert all(r.task and r.task.startswith("math/") for r in records)
