"""Removing repeated paragraphs and retrieved chunks, exact or near-duplicate.

Messages are scanned newest first, so the copy that survives is the latest one: trimming
keeps the latest turns, and a copy kept in a turn that trimming later drops would be lost.
Within one message the first copy survives. Near-duplicates are blocks whose word 3-gram
sets overlap by Jaccard ≥ 0.8 (a re-retrieved chunk with a changed header, say) and
whose numbers are identical: a near copy with different figures is kept.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import chain, compress, repeat

from llmrouter.compression.messages import Message, map_text
from llmrouter.compression.text import split_blocks

__all__ = ["NEAR_DUPLICATE_JACCARD", "dedupe_messages"]

NEAR_DUPLICATE_JACCARD = 0.8
# Short blocks ("Thanks!", "Yes.") legitimately repeat; only longer ones are deduplicated.
_MIN_WORDS = 8
_DIGITS = re.compile(r"\d+")
# every ASCII byte that is not a digit becomes a space: a regex scan costs ~10 times more
_ASCII_NON_DIGIT = bytes.maketrans(
    bytes(range(128)), bytes(c if 0x30 <= c <= 0x39 else 0x20 for c in range(128))
)
_SAMPLE_ABOVE = 48
_MAX_NEAR_WORDS = 400
_OMITTED = "(repeated content omitted)"


class _Seen:
    """Shingle sets of kept blocks, indexed by shingle for candidate lookup.

    Each shingle maps to the first block that had it; only shingles seen again get a list
    of the later blocks, so indexing a block is one C-level dict update, and Python only
    loops over the (few) shingles it shares with earlier blocks.
    """

    def __init__(self) -> None:
        self.exact: set[str] = set()
        self.shingles: list[frozenset[str]] = []
        self.numbers: list[tuple[str, ...]] = []
        self.first: dict[str, int] = {}
        self.later: dict[str, list[int]] = {}
        self.known: set[str] = set()  # first's keys: set & set is C-level

    def is_duplicate(self, block_words: list[str]) -> bool:
        key = " ".join(block_words)
        if key in self.exact:
            return True
        if len(block_words) > _MAX_NEAR_WORDS:
            # near copies of very long blocks are rare; exact copies were checked above
            self.exact.add(key)
            return False
        triples: Iterable[tuple[str, str, str]]
        triples = zip(block_words, block_words[1:], block_words[2:], strict=False)
        if len(block_words) > _SAMPLE_ABOVE:
            # shingles anchored on a content-defined sample of words (the same in every copy
            # and every process) estimate Jaccard well on long blocks at a third of the cost;
            # the anchor test (word length divisible by 3) runs as C-level maps
            anchors = map((0).__eq__, map((3).__rmod__, map(len, block_words)))
            triples = compress(triples, anchors)
        # "w1 w2 w3" (words hold no spaces): strings, unlike tuples, are not tracked by the
        # garbage collector
        shingles = frozenset(map(" ".join, triples))
        shared = shingles & self.known
        # shingles shared with each earlier block, counted by C-level Counter updates
        counts = Counter(map(self.first.__getitem__, shared))
        counts.update(chain.from_iterable(map(self.later.get, shared, repeat(()))))
        numbers = _numbers(key)
        for candidate, common in counts.items():
            union = len(shingles) + len(self.shingles[candidate]) - common
            # a near copy with other figures is an update, not a duplicate
            similar = bool(union) and common / union >= NEAR_DUPLICATE_JACCARD
            if similar and self.numbers[candidate] == numbers:
                return True
        self.exact.add(key)
        position = len(self.shingles)
        self.shingles.append(shingles)
        self.numbers.append(numbers)
        fresh = shingles - shared
        self.first.update(dict.fromkeys(fresh, position))
        self.known |= fresh
        for shingle in shared:
            self.later.setdefault(shingle, []).append(position)
        return False


def _numbers(text: str) -> tuple[str, ...]:
    """The runs of digits in ``text`` (as ``\\d+``); ASCII text by byte translation."""
    if not text.isascii():
        return tuple(_DIGITS.findall(text))
    return tuple(text.encode().translate(_ASCII_NON_DIGIT).decode().split())


def dedupe_messages(messages: Sequence[Message], *, preserve_code: bool = True) -> int:
    """Drop repeated blocks in place; returns how many blocks were removed."""
    seen = _Seen()
    removed = 0

    def rewrite(text: str) -> str:
        nonlocal removed
        blocks = split_blocks(text)
        kept: list[str] = []
        dropped = 0
        for block in blocks:
            # whitespace-split lower-case words: copies match exactly, punctuation included
            block_words = block.text.lower().split()
            eligible = len(block_words) >= _MIN_WORDS and not (block.protected and preserve_code)
            if eligible and seen.is_duplicate(block_words):
                dropped += 1
                continue
            kept.append(block.text)
        if not dropped:
            return text
        removed += dropped
        return "\n\n".join(kept) if kept else _OMITTED

    for message in reversed(messages):
        map_text(message, rewrite)
    return removed
