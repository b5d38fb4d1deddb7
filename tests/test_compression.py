"""Prompt compression: each stage on its own, and ``compress()`` end to end."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from llmrouter.compression import CompressResult, compress
from llmrouter.compression.dedupe import dedupe_messages
from llmrouter.compression.extract import prune_function_words
from llmrouter.compression.messages import TokenCounter
from llmrouter.compression.normalize import normalize_text
from llmrouter.compression.text import split_blocks, split_sentences
from llmrouter.compression.trim import split_turns, trim_messages
from llmrouter.tokens import count_message_tokens

FILLER_TOPICS = [
    "The committee reviewed the regional transport budget and the maintenance backlog.",
    "Several members asked about the timetable for replacing the older bus fleet.",
    "A report on cycling lanes described new routes near the university campus.",
    "The finance officer summarised staffing costs across the three depots.",
    "Residents raised concerns about noise from the night freight services.",
    "The chair noted that the consultation on parking fees would close in spring.",
    "An engineer explained how the bridge inspections are scheduled each year.",
    "The group discussed signage in the central station and accessibility ramps.",
]
ANSWER = "The ferry to Lindholm Island departs from pier 7 at 06:45 every Tuesday."
QUESTION = "From which pier does the ferry to Lindholm Island depart, and when?"


def long_document(paragraphs: int = 40, answer_at: int = 23) -> str:
    """Generic prose with one answer sentence buried in the middle."""
    out = []
    for i in range(paragraphs):
        sentences = [FILLER_TOPICS[(i + j) % len(FILLER_TOPICS)] for j in range(4)]
        sentences.append(f"Item {i} on the agenda was deferred to meeting {i + 100}.")
        if i == answer_at:
            sentences.insert(2, ANSWER)
        out.append(" ".join(sentences))
    return "\n\n".join(out)


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


# --- segmentation -------------------------------------------------------------------------


def test_fenced_code_is_one_protected_block_even_with_blank_lines() -> None:
    text = "Intro line.\n\n```python\nx = 1\n\n\ny = 2\n```\n\nOutro."
    blocks = split_blocks(text)
    assert [b.kind for b in blocks] == ["prose", "code", "prose"]
    assert blocks[1].text == "```python\nx = 1\n\n\ny = 2\n```"


def test_json_and_unfenced_code_are_recognised() -> None:
    text = '{"a": 1, "b": [1, 2]}\n\ndef f(x):\n    return x + 1\n\nPlain words here.'
    assert [b.kind for b in split_blocks(text)] == ["json", "code", "prose"]


def test_sentences_split_on_terminal_punctuation_and_lines() -> None:
    text = 'He said "Stop." Then he left! Was it 3.5 km? Yes\nNew line here.'
    spans = [text[s:e] for s, e in split_sentences(text)]
    assert spans == ['He said "Stop."', "Then he left!", "Was it 3.5 km?", "Yes", "New line here."]


# --- normalize ----------------------------------------------------------------------------


def test_normalize_collapses_whitespace_but_not_indentation_or_code() -> None:
    text = "Hello   world.   \n\n\n\n  indented  line\n\n```\na  =  1\n```"
    out = normalize_text(text)
    assert out == "Hello world.\n\n  indented line\n\n```\na  =  1\n```"


def test_normalize_strips_pasted_html() -> None:
    html = "<div><h1>Title</h1><p>First &amp; second.</p><ul><li>one</li><li>two</li></ul>"
    html += "<script>alert(1)</script></div>"
    out = normalize_text(html)
    assert "<" not in out and "alert" not in out
    assert out.split("\n") == ["Title", "First & second.", "one", "two"]


def test_a_prompt_that_mentions_a_tag_is_not_stripped() -> None:
    text = "Why does my <div> collapse when its child is floated?"
    assert normalize_text(text) == text


def test_json_is_minified_only_when_code_may_be_altered() -> None:
    text = 'Data:\n\n{"a":  1,\n "b": [1,  2]}'
    assert normalize_text(text) == text.replace("\n ", "\n ")  # untouched by default
    assert normalize_text(text, preserve_code=False).endswith('{"a":1,"b":[1,2]}')


@pytest.mark.parametrize("preserve_code", [True, False])
def test_the_fast_path_skips_only_texts_normalisation_would_not_change(
    monkeypatch: pytest.MonkeyPatch, preserve_code: bool
) -> None:
    import random

    import llmrouter.compression.normalize as normalize

    pieces = ["word", " ", "  ", "\n", "\n\n", "\t", "<p>", "```", "{", "[1]", ".", "x\u00a0"]
    rng = random.Random(11)
    fast = normalize._needs_work
    checked = 0
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        if fast(text, preserve_code):
            continue
        checked += 1
        monkeypatch.setattr(normalize, "_needs_work", lambda text, preserve_code: True)
        assert normalize.normalize_text(text, preserve_code=preserve_code) == text
        monkeypatch.setattr(normalize, "_needs_work", fast)
    assert checked > 30


# --- dedupe -------------------------------------------------------------------------------


CHUNK = (
    "Retrieved chunk: the warranty covers parts and labour for the first two years, after "
    "which an extended plan can be bought from any authorised dealer in the region."
)


def test_repeated_chunks_keep_only_the_latest_copy() -> None:
    messages = [
        user(f"{CHUNK}\n\nFirst question about the warranty terms please?"),
        {"role": "assistant", "content": "It covers parts."},
        user(f"{CHUNK}\n\n{CHUNK}\n\nAnd labour?"),
    ]
    removed = dedupe_messages(messages)
    assert removed == 2
    assert CHUNK not in messages[0]["content"]
    assert messages[2]["content"] == f"{CHUNK}\n\nAnd labour?"


def test_near_duplicates_go_but_changed_figures_stay() -> None:
    near = CHUNK.replace("Retrieved chunk:", "Retrieved chunk (copy):")
    messages = [user(f"{CHUNK}\n\n{near}")]
    assert dedupe_messages(messages) == 1
    assert messages[0]["content"] == CHUNK
    figures = [user(f"{CHUNK} Limit 2 claims.\n\n{CHUNK} Limit 3 claims.")]
    assert dedupe_messages(figures) == 0


def test_short_repeats_and_code_are_not_deduplicated() -> None:
    code = "```\nprint('hello world from the repeated snippet here')\n```"
    messages = [user(f"Thanks!\n\n{code}"), user(f"Thanks!\n\n{code}")]
    before = copy.deepcopy(messages)
    assert dedupe_messages(messages) == 0
    assert messages == before


# --- trim ---------------------------------------------------------------------------------


def conversation() -> list[dict[str, Any]]:
    call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    messages: list[dict[str, Any]] = [{"role": "system", "content": "Be brief."}]
    for i in range(6):
        messages.append(user(f"Question {i}: " + "tell me more about the schedule " * 20))
        if i == 2:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            messages.append({"role": "tool", "tool_call_id": "c1", "content": "result " * 30})
        messages.append({"role": "assistant", "content": f"Answer {i}: " + "details " * 30})
    messages.append(user("Final question?"))
    return messages


def test_turns_start_at_user_messages_and_keep_tool_results_with_their_call() -> None:
    turns = split_turns(conversation())
    third = turns[2]
    assert [conversation()[i]["role"] for i in third] == ["user", "assistant", "tool", "assistant"]


def test_trim_fits_the_budget_keeping_system_pinned_and_latest() -> None:
    messages = conversation()
    counter = TokenCounter()
    budget = counter.messages(messages) // 2
    kept, dropped = trim_messages(messages, budget, counter, pinned={1})
    assert counter.messages(kept) <= budget
    assert kept[0]["role"] == "system" and kept[1] is messages[1]
    assert kept[-1]["content"] == "Final question?"
    roles = [m["role"] for m in kept]
    # every tool result still follows its assistant call
    for index, role in enumerate(roles):
        if role == "tool":
            assert kept[index - 1].get("tool_calls")
    assert dropped and all(m not in kept for m in dropped)


def test_condense_replaces_dropped_turns_with_a_summary() -> None:
    messages = conversation()
    seen: list[int] = []

    def condenser(dropped: list[dict[str, Any]]) -> str:
        seen.append(len(dropped))
        return "The user asked about schedules."

    budget = TokenCounter().messages(messages) // 2
    result = compress(messages, budget_tokens=budget, stages=["condense"], condenser=condenser)
    assert seen and result.stages_applied == ["condense"]
    assert result.messages[1]["role"] == "system"
    assert "asked about schedules" in result.messages[1]["content"]


# --- extract and prune ---------------------------------------------------------------------


def test_prune_keeps_negations_numbers_and_content_words() -> None:
    text, dropped = prune_function_words("The plan is not to sell the 40 shares of the fund.")
    assert text == "plan not sell 40 shares fund."
    assert dropped == 6


@pytest.mark.parametrize("stages", [None, ["normalize", "dedupe", "trim", "extract"]])
def test_extraction_keeps_the_answer_at_a_third_of_the_tokens(stages: list[str] | None) -> None:
    document = long_document()
    messages = [{"role": "system", "content": "Answer from the document."}]
    messages.append(user(f"{document}\n\n{QUESTION}"))
    result = compress(messages, ratio=3.0, stages=stages)
    text = result.messages[1]["content"]
    assert "extract" in result.stages_applied
    assert result.tokens_after <= result.tokens_before / 3 * 1.03
    assert result.tokens_after >= result.tokens_before / 3 * 0.85
    assert text.endswith(QUESTION)  # the question inside the message is kept whole
    assert "pier 7" in text and "06:45" in text and "Lindholm" in text
    assert result.messages[0] == messages[0]


def test_kept_sentences_stay_in_their_original_order() -> None:
    document = long_document()
    result = compress([user(document)], ratio=2.0, query=QUESTION, stages=["extract"])
    kept = [s for s in result.messages[0]["content"].split("\n\n") if s.startswith("Item")]
    numbers = [int(s.split()[1]) for s in kept]
    assert numbers == sorted(numbers) and len(numbers) > 3


def test_code_blocks_survive_extraction_verbatim() -> None:
    code = "```python\ndef schedule(pier: int) -> str:\n    return f'pier {pier}'\n```"
    document = long_document(20) + "\n\n" + code + "\n\n" + long_document(20, answer_at=-1)
    result = compress([user(document)], ratio=4.0, query="How is the schedule computed?")
    assert code in result.messages[0]["content"]


def test_budget_alone_drives_extraction_of_a_single_long_message() -> None:
    document = long_document()
    budget = 600
    result = compress([user(f"{document}\n\n{QUESTION}")], budget_tokens=budget)
    assert result.tokens_after <= budget * 1.03
    assert "pier 7" in result.messages[0]["content"]


# --- compress() contract --------------------------------------------------------------------


def test_compress_reports_tokens_like_the_router_counts_them() -> None:
    messages = [user(long_document() + "\n\n" + QUESTION)]
    result = compress(messages, ratio=3.0)
    assert isinstance(result, CompressResult)
    assert result.tokens_before == count_message_tokens(messages)
    assert result.tokens_after == count_message_tokens(result.messages)
    assert result.saved_tokens == result.tokens_before - result.tokens_after
    assert result.ratio == pytest.approx(result.tokens_before / result.tokens_after)
    assert list(result.stage_tokens) == result.stages_applied
    assert result.query == QUESTION


def test_input_messages_are_not_modified() -> None:
    messages = [
        user([{"type": "text", "text": long_document()}, {"type": "text", "text": QUESTION}]),
    ]
    snapshot = copy.deepcopy(messages)
    result = compress(messages, ratio=3.0)
    assert messages == snapshot
    assert result.messages[0]["content"][1] == {"type": "text", "text": QUESTION}


def test_a_leading_instruction_joins_the_question() -> None:
    text = f"Read the minutes below and answer:\n\n{long_document()}\n\n{QUESTION}"
    result = compress([user(text)], ratio=3.0)
    assert result.query == f"Read the minutes below and answer:\n{QUESTION}"
    assert result.messages[0]["content"].startswith("Read the minutes below and answer:")


def test_a_question_on_the_last_line_is_found_and_kept() -> None:
    text = long_document().replace("\n\n", "\n") + "\n" + QUESTION
    result = compress([user(text)], ratio=3.0)
    assert result.query == QUESTION
    content = result.messages[0]["content"]
    assert content.endswith("\n" + QUESTION)
    assert "pier 7" in content


def test_a_question_before_the_document_is_found_and_kept() -> None:
    result = compress([user(f"{QUESTION}\n\n{long_document()}")], ratio=3.0)
    assert result.query == QUESTION
    content = result.messages[0]["content"]
    assert content.startswith(QUESTION + "\n\n")
    assert "pier 7" in content


def test_without_a_target_only_lossless_stages_run() -> None:
    messages = [user("Hello   there.\n\n\n\n" + long_document(8))]
    result = compress(messages)
    assert result.stages_applied == ["normalize"]
    assert result.tokens_after < result.tokens_before
    assert result.messages[0]["content"].startswith("Hello there.\n\n")


def test_tool_calls_and_unknown_fields_pass_through() -> None:
    call = {"id": "x", "type": "function", "function": {"name": "f", "arguments": '{"a":  1}'}}
    messages = [
        user(long_document()),
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "x", "content": json.dumps({"rows": [1, 2, 3]})},
    ]
    result = compress(messages, ratio=2.0)
    assert result.messages[1] == messages[1]
    assert result.messages[2] == messages[2]


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="ratio"):
        compress([user("hi")], ratio=0.5)
    with pytest.raises(ValueError, match="unknown compression stages"):
        compress([user("hi")], stages=["normalize", "summarise"])
    with pytest.raises(ValueError, match="budget_tokens"):
        compress([user("hi")], budget_tokens=-1)
