"""Cutting a long text into units (sentences, clauses, chunks) and costing them in tokens.

A unit is a sentence or a line; a sentence over 20 words is cut after ``, ; :`` into clauses
of at least 4 words, and anything over 60 words into chunks. Code and JSON blocks are single
fixed units. Sentence ends and clause commas are found in one regex pass per block, because
per-sentence Python work is most of what segmentation costs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from llmrouter.compression.text import span_words, split_blocks
from llmrouter.compression.token_reuse import byte_offsets, token_starts

__all__ = ["Unit", "count_unit_tokens", "segment_units", "unit_words"]

# Sentences longer than this many words are split into clauses at , ; : ...
_CLAUSE_WORDS = 20
_MIN_CLAUSE_WORDS = 4
# ... and anything still longer (tables, lists without punctuation) into chunks.
_MAX_UNIT_WORDS = 60

# One pass finds every cut: a line break; . ! ? (with closing quotes or brackets) before
# spaces and an upper-case letter, a digit or an opening mark (the same rule as
# text.split_sentences); and , ; : before whitespace (clause candidates). The leading
# character class lets the regex engine skip quickly to candidates.
_CUT = re.compile(
    r"[\n.!?,;:](?:(?<=\n)|(?<=[.!?])[\"')\]]*[^\S\n]+(?=[\"'(\[A-Z0-9])|(?<=[,;:])(?=\s))"
)


@dataclass(slots=True)
class Unit:
    """A sentence, clause or protected block with its span in the original text."""

    start: int
    end: int
    text: str
    paragraph: int
    fixed: bool = False
    tokens: int = 0


def segment_units(text: str, *, preserve_code: bool) -> list[Unit]:
    """Units of prose blocks, in text order; code and JSON blocks stay whole and fixed."""
    units: list[Unit] = []
    for index, block in enumerate(split_blocks(text)):
        if block.protected and preserve_code:
            units.append(Unit(block.start, block.end, block.text, index, fixed=True))
            continue
        body = block.text
        cursor = 0
        commas: list[int] = []
        for cut in _CUT.finditer(body):
            stop = cut.end()
            if body[cut.start()] in ",;:":
                commas.append(stop)
                continue
            _sentence_units(body, cursor, stop, commas, block.start, index, units)
            commas = []
            cursor = stop
        _sentence_units(body, cursor, len(body), commas, block.start, index, units)
    return units


def _sentence_units(
    body: str,
    start: int,
    stop: int,
    commas: list[int],
    offset: int,
    paragraph: int,
    units: list[Unit],
) -> None:
    """Units of the sentence in ``body[start:stop]`` (stripped); ``commas`` are clause cuts."""
    piece = body[start:stop]
    stripped = piece.strip()
    if not stripped:
        return
    start += len(piece) - len(piece.lstrip())
    end = start + len(stripped)
    spans: Sequence[tuple[int, int]] = ((start, end),)
    # spaces + 1 is the word count of ordinary prose, and cheap to get
    if end - start >= 2 * _CLAUSE_WORDS and body.count(" ", start, end) >= _CLAUSE_WORDS:
        spans = []
        cursor = start
        for cut in commas:
            if cut >= end:  # a comma ending the line is no clause break
                break
            if len(body[cursor:cut].split()) >= _MIN_CLAUSE_WORDS:
                spans.append((cursor, cut))
                cursor = cut + 1
        if cursor < end and body[cursor:end].strip():
            spans.append((cursor, end))
    for c_start, c_end in spans:
        clause = body[c_start:c_end]
        if clause.count(" ") < _MAX_UNIT_WORDS:
            units.append(Unit(offset + c_start, offset + c_end, clause, paragraph))
        else:
            units.extend(_chunk(clause, offset + c_start, paragraph))


def _chunk(piece: str, start: int, paragraph: int) -> list[Unit]:
    """``piece`` (starting at ``start``) in runs of at most ``_MAX_UNIT_WORDS`` words."""
    pieces = piece.split(" ")
    units: list[Unit] = []
    cursor = start
    for offset in range(0, len(pieces), _MAX_UNIT_WORDS):
        part = " ".join(pieces[offset : offset + _MAX_UNIT_WORDS])
        units.append(Unit(cursor, cursor + len(part), part, paragraph))
        cursor += len(part) + 1
    return units


def unit_words(text: str, units: Sequence[Unit]) -> list[list[str]]:
    """Lower-cased words of each unit of ``text`` (as ``text.words``), in one pass."""
    return span_words(text, [(unit.start, unit.end) for unit in units])


def count_unit_tokens(
    text: str, units: Sequence[Unit], ids: Callable[[str], np.ndarray], model: str | None = None
) -> None:
    """Set each unit's token count from one encoding of the whole text.

    Encoding every sentence separately costs several times more; a token is charged to
    the unit its first byte falls in, whitespace before a unit to that unit.
    """
    if not units:
        return
    starts = token_starts(ids(text), model)
    # a unit is charged from the end of the previous one: the separator it needs when kept
    ends = byte_offsets(text, [unit.end for unit in units])
    positions = np.searchsorted(starts, ends, side="left")
    counts = np.maximum(np.diff(positions, prepend=0), 1)
    for unit, count in zip(units, counts.tolist(), strict=True):
        unit.tokens = count
