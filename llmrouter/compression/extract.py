"""Query-aware extraction: keep the sentences of a long text that matter, in order.

Each sentence is valued by BM25 relevance to the question (smoothed over its neighbours,
because answers often sit in the sentence after the one that repeats the question's words)
plus how many document-specific words it adds that the kept text does not yet contain.
The coverage term is what keeps summaries and vague questions answerable: a kept text that
preserves most of a document's distinctive vocabulary has kept most of its facts. Sentences
are picked greedily by value per token (lazy greedy: coverage gains only shrink) until the
token target is met, then emitted in their original order.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llmrouter.compression.bm25 import bm25_scores, idf_table
from llmrouter.compression.text import (
    STOPWORDS,
    content_words,
    split_blocks,
    split_sentences,
    words,
)

__all__ = ["Unit", "extract_text", "segment_units", "select_units"]

# Sentences longer than this (tables, lists without punctuation) are cut into chunks.
_MAX_UNIT_WORDS = 60
# Weight of a neighbour's relevance in a sentence's own relevance.
_NEIGHBOUR_WEIGHT = 0.5
# Relevance versus coverage; both are normalised to [0, 1] first.
_RELEVANCE_WEIGHT = 1.0
_COVERAGE_WEIGHT = 1.0


@dataclass
class Unit:
    """A sentence (or a protected block) with its span in the original text."""

    start: int
    end: int
    text: str
    paragraph: int
    fixed: bool = False
    tokens: int = 0


def segment_units(text: str, *, preserve_code: bool) -> list[Unit]:
    """Sentences of prose blocks; code and JSON blocks stay whole and fixed."""
    units: list[Unit] = []
    for index, block in enumerate(split_blocks(text)):
        if block.protected and preserve_code:
            units.append(Unit(block.start, block.end, block.text, index, fixed=True))
            continue
        for start, end in split_sentences(block.text):
            units.extend(_chunk(text, block.start + start, block.start + end, index))
    return units


def _chunk(text: str, start: int, end: int, paragraph: int) -> list[Unit]:
    piece = text[start:end]
    tokens = piece.split(" ")
    if len(tokens) <= _MAX_UNIT_WORDS:
        return [Unit(start, end, piece, paragraph)]
    units: list[Unit] = []
    cursor = start
    for offset in range(0, len(tokens), _MAX_UNIT_WORDS):
        part = " ".join(tokens[offset : offset + _MAX_UNIT_WORDS])
        units.append(Unit(cursor, cursor + len(part), part, paragraph))
        cursor += len(part) + 1
    return units


def select_units(
    units: Sequence[Unit],
    budget: int,
    query_terms: Sequence[str],
) -> set[int]:
    """Indices of the non-fixed units to keep within ``budget`` tokens."""
    terms = [content_words(unit.text) for unit in units]
    idf = idf_table(terms)
    relevance = _smoothed(bm25_scores(terms, query_terms, idf))
    top_relevance = max(relevance, default=0.0) or 1.0
    # coverage counts surface words: every distinct word kept may be a fact kept
    term_sets = [_surface(unit.text) for unit in units]
    weight = _coverage_weights(term_sets)
    gains = [sum(weight[term] for term in ts) for ts in term_sets]
    top_gain = max(gains, default=0.0) or 1.0

    def value(index: int, gain: float) -> float:
        score = (
            _RELEVANCE_WEIGHT * relevance[index] / top_relevance
            + _COVERAGE_WEIGHT * gain / top_gain
        )
        return score / max(units[index].tokens, 1)

    heap = [
        (-value(i, gains[i]), i) for i, unit in enumerate(units) if not unit.fixed and unit.tokens
    ]
    heapq.heapify(heap)
    covered: set[str] = set()
    chosen: set[int] = set()
    spent = 0
    while heap:
        negative, index = heapq.heappop(heap)
        if spent + units[index].tokens > budget:
            continue
        fresh = sum(weight[term] for term in term_sets[index] - covered)
        current = value(index, fresh)
        if heap and current < -heap[0][0] - 1e-12:
            heapq.heappush(heap, (-current, index))  # stale: re-queue with its true value
            continue
        chosen.add(index)
        covered |= term_sets[index]
        spent += units[index].tokens
    return chosen


def _surface(text: str) -> set[str]:
    return {w for w in words(text) if w not in STOPWORDS}


COVERAGE_MODE = "uniform"


def _coverage_weights(term_sets: Sequence[set[str]]) -> dict[str, float]:
    df: dict[str, int] = {}
    for ts in term_sets:
        for term in ts:
            df[term] = df.get(term, 0) + 1
    if COVERAGE_MODE == "uniform":
        return dict.fromkeys(df, 1.0)
    n = len(term_sets)
    if COVERAGE_MODE == "logtf":
        return {t: math.log(1.0 + f) for t, f in df.items()}
    if COVERAGE_MODE == "sqrttf":
        return {t: math.sqrt(f) for t, f in df.items()}
    return {t: math.log(1.0 + n / f) for t, f in df.items()}


_WINDOW = 1
_DECAY = 0.5


def _smoothed(scores: Sequence[float]) -> list[float]:
    """Each score raised to the decayed best score within ``_WINDOW`` sentences."""
    out = list(scores)
    n = len(scores)
    for i in range(n):
        best = scores[i]
        for d in range(1, int(_WINDOW) + 1):
            factor = _DECAY**d
            if i - d >= 0:
                best = max(best, scores[i - d] * factor)
            if i + d < n:
                best = max(best, scores[i + d] * factor)
        out[i] = scores[i] + best
    return out


def extract_text(
    text: str,
    target_tokens: int,
    query_terms: Sequence[str],
    count_tokens: Callable[[str], int],
    *,
    preserve_code: bool = True,
    keep: Callable[[Sequence[Unit]], set[int]] | None = None,
) -> str:
    """``text`` cut to about ``target_tokens`` tokens, most relevant sentences first.

    ``keep`` may mark extra units as fixed (e.g. the question inside the same message).
    """
    units = segment_units(text, preserve_code=preserve_code)
    if not units:
        return text
    for unit in units:
        unit.tokens = count_tokens(unit.text)
    if keep is not None:
        for index in keep(units):
            units[index].fixed = True
    fixed_tokens = sum(unit.tokens for unit in units if unit.fixed)
    chosen = select_units(units, max(target_tokens - fixed_tokens, 0), query_terms)
    kept = [i for i, unit in enumerate(units) if unit.fixed or i in chosen]
    return _join(text, units, kept)


def _join(text: str, units: Sequence[Unit], kept: Sequence[int]) -> str:
    """Kept units with the separator their original context had (newline or space)."""
    parts: list[str] = []
    previous: Unit | None = None
    for index in kept:
        unit = units[index]
        if previous is not None:
            if unit.paragraph != previous.paragraph:
                parts.append("\n\n")
            else:
                # the whitespace that preceded this unit in the original text
                gap = text[units[index - 1].end : unit.start] if index else " "
                parts.append("\n" if "\n" in gap else " ")
        parts.append(unit.text)
        previous = unit
    return "".join(parts)
