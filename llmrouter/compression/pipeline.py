"""``compress()``: run the configured stages over a chat request and account for tokens.

Stage order is fixed (normalize, dedupe, trim/condense, extract/prune) because each one
makes the next cheaper and safer: extraction should never spend budget on a duplicate, and
trimming should see the conversation after clean-up.

``ratio`` is a target reduction factor: ``ratio=3.0`` aims at about a third of the original
prompt tokens. ``budget_tokens`` is a hard ceiling (e.g. the context window minus the
completion). With both, the smaller target wins. Without either, only the lossless stages
(normalize, dedupe) change anything.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmrouter import tokens
from llmrouter.compression.dedupe import dedupe_messages
from llmrouter.compression.extract import extract_text
from llmrouter.compression.messages import (
    Message,
    TokenCounter,
    copy_messages,
    is_system,
    map_text,
    texts,
)
from llmrouter.compression.normalize import normalize_text
from llmrouter.compression.question import question_ranges
from llmrouter.compression.segment import Unit
from llmrouter.compression.text import content_words
from llmrouter.compression.trim import Condenser, strip_pins, trim_messages

__all__ = ["DEFAULT_STAGES", "STAGES", "CompressResult", "compress"]

STAGES = ("normalize", "dedupe", "trim", "extract", "prune", "condense")
DEFAULT_STAGES = ("normalize", "dedupe", "trim", "extract", "prune")
# Texts shorter than this are left to the other stages: extraction needs sentences to choose.
MIN_EXTRACT_TOKENS = 200
MIN_SYSTEM_EXTRACT_TOKENS = 2000
_WHOLE_TEXT_REQUEST = re.compile(
    r"\b(summar\w*|overview|tl;?dr|gist|outline|main (?:points|ideas|findings)|"
    r"key (?:points|ideas|takeaways|findings))\b",
    re.IGNORECASE,
)


@dataclass
class CompressResult:
    """Compressed messages and where the tokens went."""

    messages: list[dict[str, Any]]
    tokens_before: int
    tokens_after: int
    stages_applied: list[str] = field(default_factory=list)
    # tokens of the whole prompt after each stage that changed something
    stage_tokens: dict[str, int] = field(default_factory=dict)
    query: str | None = None
    dropped_messages: int = 0

    @property
    def saved_tokens(self) -> int:
        return self.tokens_before - self.tokens_after

    @property
    def ratio(self) -> float:
        """Achieved reduction factor (tokens before / tokens after)."""
        return self.tokens_before / self.tokens_after if self.tokens_after else float("inf")


def compress(
    messages: Sequence[Mapping[str, Any]],
    ratio: float | None = None,
    budget_tokens: int | None = None,
    query: str | None = None,
    *,
    stages: Iterable[str] | None = None,
    preserve_code: bool = True,
    pinned: Collection[int] = (),
    condenser: Condenser | None = None,
    model: str | None = None,
) -> CompressResult:
    """Compress a chat request; the input list is not modified.

    ``stages`` picks from :data:`STAGES` (default :data:`DEFAULT_STAGES`); "prune" drops
    function words from the background sentences extraction keeps, "condense" replaces
    trimmed turns by ``condenser``'s summary. ``pinned`` indexes messages trimming keeps
    (a message with ``"pinned": True`` is kept too; the key is removed from the output).
    ``query`` defaults to the latest user message's question.
    """
    chosen = _check(ratio, budget_tokens, stages)
    counter = TokenCounter(model)
    work = copy_messages(messages)
    before = counter.messages(work)
    result = CompressResult(work, before, before)
    target = _target(before, ratio, budget_tokens)

    def record(stage: str) -> None:
        result.stages_applied.append(stage)
        result.stage_tokens[stage] = counter.messages(result.messages)

    if "normalize" in chosen:
        originals = _message_texts(work)
        changed = [
            map_text(m, lambda t: normalize_text(t, preserve_code=preserve_code)) for m in work
        ]
        if any(changed):
            _derive(counter, originals, work)
            record("normalize")
    if "dedupe" in chosen:
        originals = _message_texts(work)
        if dedupe_messages(work, preserve_code=preserve_code):
            _derive(counter, originals, work)
            record("dedupe")
    if budget_tokens is not None and ("trim" in chosen or "condense" in chosen):
        use_condenser = condenser if "condense" in chosen else None
        kept, dropped = trim_messages(
            work, budget_tokens, counter, pinned=pinned, condenser=use_condenser
        )
        if dropped:
            result.messages = work = kept
            result.dropped_messages = len(dropped)
            record("condense" if use_condenser is not None else "trim")
    strip_pins(work)
    question = query if query is not None else _latest_question(work, counter)
    result.query = question or None
    over_target = target is not None and counter.messages(work) > target
    if "extract" in chosen and target is not None and over_target:
        prune = "prune" in chosen
        if _extract(work, target, question, counter, preserve_code, prune=prune):
            record("extract")
    result.tokens_after = counter.messages(work)
    return result


def _message_texts(messages: Sequence[Message]) -> list[str]:
    return [tokens.message_text(message) for message in messages]


def _derive(counter: TokenCounter, originals: Sequence[str], messages: Sequence[Message]) -> None:
    """Tell the counter which texts a stage rewrote, so it re-encodes only what changed."""
    for old, new in zip(originals, _message_texts(messages), strict=True):
        counter.derive(new, old)


def _check(
    ratio: float | None, budget_tokens: int | None, stages: Iterable[str] | None
) -> frozenset[str]:
    if ratio is not None and not ratio >= 1.0:
        raise ValueError(f"ratio is a reduction factor and must be >= 1, got {ratio}")
    if budget_tokens is not None and budget_tokens < 0:
        raise ValueError(f"budget_tokens must be >= 0, got {budget_tokens}")
    chosen = frozenset(DEFAULT_STAGES if stages is None else stages)
    unknown = chosen - set(STAGES)
    if unknown:
        raise ValueError(f"unknown compression stages {sorted(unknown)}; known: {list(STAGES)}")
    return chosen


def _target(before: int, ratio: float | None, budget_tokens: int | None) -> int | None:
    targets = [int(before / ratio)] if ratio is not None else []
    if budget_tokens is not None:
        targets.append(budget_tokens)
    return min(targets) if targets else None


def _latest_user(messages: Sequence[Message]) -> int | None:
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].get("role") == "user":
            return index
    return None


def _latest_question(messages: Sequence[Message], counter: TokenCounter) -> str:
    """The latest user text, or just its question part when it also carries a document."""
    index = _latest_user(messages)
    if index is None:
        return ""
    text = "\n".join(texts(messages[index]))
    if counter.text(text) < MIN_EXTRACT_TOKENS:
        return text
    return "\n".join(text[start:end] for start, end in question_ranges(text, counter.text))


def _extract(
    work: list[Message],
    target: int,
    question: str,
    counter: TokenCounter,
    preserve_code: bool,
    *,
    prune: bool,
) -> bool:
    """Shrink the long texts proportionally until the prompt meets ``target`` tokens."""
    latest_user = _latest_user(work)
    sizes: dict[tuple[int, int], int] = {}
    for m_index, message in enumerate(work):
        # a system prompt is instructions unless it is long enough to carry documents
        minimum = MIN_SYSTEM_EXTRACT_TOKENS if is_system(message) else MIN_EXTRACT_TOKENS
        for t_index, text in enumerate(texts(message)):
            size = counter.text(text)
            if size >= minimum:
                sizes[(m_index, t_index)] = size
    if not sizes:
        return False
    excess = counter.messages(work) - target
    keep_share = max(0.0, 1.0 - excess / sum(sizes.values()))
    # a request about the whole text has no passage to favour: coverage alone decides
    query_terms = [] if _WHOLE_TEXT_REQUEST.search(question) else content_words(question)
    changed = False
    for m_index, message in enumerate(work):
        position = -1

        def rewrite(text: str, m_index: int = m_index) -> str:
            nonlocal position
            position += 1
            size = sizes.get((m_index, position))
            if size is None:
                return text
            # the question sits in the last text of the latest user message
            last_text = position == len(texts(work[m_index])) - 1
            asked = m_index == latest_user and last_text
            keep = _question_keeper(text, counter) if asked else None
            return extract_text(
                text,
                int(size * keep_share),
                query_terms,
                counter.ids,
                model=counter.model,
                preserve_code=preserve_code,
                prune=prune,
                keep=keep,
                derive=counter.derive,
            )

        changed |= map_text(message, rewrite)
    return changed


def _question_keeper(
    text: str, counter: TokenCounter
) -> Callable[[Sequence[Unit]], Collection[int]]:
    """Mark the units of the question (and its introduction) as fixed."""
    ranges = question_ranges(text, counter.text)

    def keep(units: Sequence[Unit]) -> set[int]:
        # units are in text order: each range covers a contiguous run of them
        starts = [unit.start for unit in units]
        kept: set[int] = set()
        for start, end in ranges:
            kept.update(range(bisect_left(starts, start), bisect_left(starts, end)))
        return kept

    return keep
