"""Splitting prompt text into blocks and sentences, and into words for lexical scoring.

Every stage works on the same segmentation so that code, JSON and tool schemas are
recognised once and never touched by a stage that only understands prose.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = [
    "STOPWORDS",
    "Block",
    "content_words",
    "looks_like_code",
    "span_words",
    "split_blocks",
    "split_sentences",
    "stem",
    "words",
]

# A compact English stop list: function words that carry no evidence on their own.
STOPWORDS: frozenset[str] = frozenset(
    """
    a about above after again against all am an and any are aren't as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just let me more most my myself no nor not of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    also may might must shall s t d ll m re ve y o don didn doesn isn wasn weren won wouldn
    shouldn couldn hasn haven hadn mustn via per upon within without however thus therefore etc
    e g ie eg
    """.split()  # noqa: SIM905
)

_WORD = re.compile(r"\w+", re.UNICODE)
# ASCII characters that are not word characters (\w: letters, digits, underscore) become
# spaces; index 128 stands for every non-ASCII code point, decided one by one.
_ASCII_NON_WORD = bytes.maketrans(
    bytes(range(128)),
    bytes(c if chr(c).isalnum() or c == 0x5F else 0x20 for c in range(128)),
)
_ASCII_WORD_CODES = np.array(
    [chr(c).isalnum() or c == 0x5F for c in range(128)] + [False], dtype=bool
)
_FENCE = re.compile(r"^(```|~~~)[^\n]*\n.*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
_BLANK_LINES = re.compile(r"\n[ \t]*\n")
_LEADING_BLANK_LINES = re.compile(r"(?:[ \t]*\n)+")
# A sentence ends at . ! ? (optionally followed by closing quotes/brackets) before whitespace
# and an upper-case letter, digit or opening mark; or at a line break.
_SENTENCE_MARK = re.compile(r"[.!?][\"')\]]*|\n")
_SPACES = re.compile(r"\s+")
_SENTENCE_STARTS = frozenset("\"'([ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_CODE_LINE = re.compile(
    r"^\s*(def |class |import |from \S+ import|return\b|if .*:$|for .*:$|while .*:$|#include|"
    r"function\b|const |let |var |public |private |\}|\{|<\?php|SELECT |INSERT |"
    r"[A-Za-z_][\w.]*\(.*\);?$)"
)
_SUFFIXES = (
    "ization",
    "ational",
    "fulness",
    "iveness",
    "ations",
    "ation",
    "ments",
    "ment",
    "ness",
    "ings",
    "ing",
    "ies",
    "ied",
    "ers",
    "ed",
    "es",
    "er",
    "ly",
    "s",
)


@dataclass(frozen=True)
class Block:
    """A run of text between blank lines, or a whole fenced code block.

    ``start``/``end`` index the original string so stages can rebuild text exactly.
    ``protected`` blocks (code, JSON) are kept verbatim by lossy stages.
    """

    start: int
    end: int
    text: str
    kind: str  # "prose" | "code" | "json"

    @property
    def protected(self) -> bool:
        return self.kind != "prose"


def looks_like_json(text: str) -> bool:
    stripped = text.strip()
    if len(stripped) < 2 or stripped[0] not in "[{" or stripped[-1] not in "]}":
        return False
    try:
        json.loads(stripped)
    except ValueError:
        return False
    return True


def looks_like_code(text: str) -> bool:
    """Unfenced code: most non-empty lines look like statements or are indented."""
    lines = [line for line in text.split("\n") if line.strip()]
    if len(lines) < 2:
        return False
    codey = sum(
        1
        for line in lines
        if _CODE_LINE.match(line) or line.rstrip().endswith((";", "{", "}", "):"))
    )
    return codey / len(lines) >= 0.5


def _classify(text: str) -> str:
    if looks_like_json(text):
        return "json"
    if looks_like_code(text):
        return "code"
    return "prose"


def split_blocks(text: str) -> list[Block]:
    """Blocks in order; fenced code is one block even when it contains blank lines."""
    return list(_split_blocks(text))


@lru_cache(maxsize=16)
def _split_blocks(text: str) -> tuple[Block, ...]:
    # memoised: normalisation, de-duplication and extraction segment the same text
    blocks: list[Block] = []
    cursor = 0
    # the fence regex tries every line start; a substring test rules it out far faster
    fences = _FENCE.finditer(text) if "```" in text or "~~~" in text else ()
    for fence in fences:
        blocks.extend(_split_paragraphs(text, cursor, fence.start()))
        blocks.append(Block(fence.start(), fence.end(), fence.group(0), "code"))
        cursor = fence.end()
    blocks.extend(_split_paragraphs(text, cursor, len(text)))
    return tuple(blocks)


def _split_paragraphs(text: str, start: int, end: int) -> list[Block]:
    blocks: list[Block] = []
    cursor = start
    segment = text[start:end]
    for gap in _BLANK_LINES.finditer(segment):
        _append_block(blocks, text, cursor, start + gap.start())
        cursor = start + gap.end()
    _append_block(blocks, text, cursor, end)
    return blocks


def _append_block(blocks: list[Block], text: str, start: int, end: int) -> None:
    piece = text[start:end]
    if not piece.strip():
        return
    # drop surrounding blank lines but keep the first line's indentation
    lead = _LEADING_BLANK_LINES.match(piece)
    offset = lead.end() if lead else 0
    body = piece[offset:].rstrip()
    blocks.append(Block(start + offset, start + offset + len(body), body, _classify(body)))


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) spans of sentences and lines in ``text``; whitespace between is excluded.

    A sentence ends at . ! ? (with any closing quotes or brackets) followed by whitespace
    and an upper-case letter, a digit or an opening mark; a line break always ends one.
    """
    spans: list[tuple[int, int]] = []
    cursor = 0
    # candidates by a plain character class (fast), confirmed by looking ahead in Python
    for mark in _SENTENCE_MARK.finditer(text):
        end = mark.end()
        if end <= cursor:
            continue
        if mark.group() == "\n":
            _append_span(spans, text, cursor, mark.start())
            cursor = end
            continue
        gap = _SPACES.match(text, end)
        if gap is None or "\n" in gap.group():
            continue  # not followed by spaces, or the line break ends it anyway
        if gap.end() < len(text) and text[gap.end()] in _SENTENCE_STARTS:
            _append_span(spans, text, cursor, end)
            cursor = gap.end()
    _append_span(spans, text, cursor, len(text))
    return spans


def _append_span(spans: list[tuple[int, int]], text: str, start: int, end: int) -> None:
    piece = text[start:end]
    body = piece.strip()
    if body:
        start += len(piece) - len(piece.lstrip())
        spans.append((start, start + len(body)))


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light suffix stripper: enough to match "restructuring" with "restructure"."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters, digits and underscores)."""
    return _WORD.findall(text.lower())


def span_words(text: str, spans: Sequence[tuple[int, int]]) -> list[list[str]]:
    """``words(text[start:end])`` for every span, at a fraction of the cost of a regex per span.

    Non-word characters of the lower-cased text are blanked once (a byte translation for
    ASCII text; else per code point, testing each distinct non-ASCII character once), then
    each span is split on whitespace.
    """
    lowered = text.lower()
    # a character that lower-cases to two ("İ") moves offsets; capital sigma lower-cases by
    # context (final "ς"), which a span may not share with the whole text
    if len(lowered) != len(text) or "\u03a3" in text:
        return [words(text[start:end]) for start, end in spans]
    if lowered.isascii():
        cleaned = lowered.encode().translate(_ASCII_NON_WORD).decode()
    else:
        cleaned = _blank_non_word(lowered)
    return [cleaned[start:end].split() for start, end in spans]


def _blank_non_word(text: str) -> str:
    """``text`` with every non-word character (not \\w) replaced by a space, via code points."""
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    word = _ASCII_WORD_CODES[np.minimum(codes, 128)]
    high = codes >= 128
    if high.any():
        distinct = np.unique(codes[high])
        # \w is str.isalnum() plus "_", exactly as re defines it
        alnum = np.array([chr(code).isalnum() for code in distinct.tolist()], dtype=bool)
        word[high] = alnum[np.searchsorted(distinct, codes[high])]
    blanked = np.where(word, codes, np.uint32(32)).astype(np.uint32)
    return blanked.tobytes().decode("utf-32-le", "surrogatepass")


def content_words(text: str) -> list[str]:
    """Stemmed words minus stop words: the terms lexical relevance is computed on."""
    return [stem(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS]
