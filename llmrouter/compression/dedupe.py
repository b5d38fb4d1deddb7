"""Removing repeated paragraphs and retrieved chunks, exact or near-duplicate.

Messages are scanned newest first, so the copy that survives is the latest one: trimming
keeps the latest turns, and a copy kept in a turn that trimming later drops would be lost.
Within one message the first copy survives. Near-duplicates are blocks whose word 3-gram
sets overlap by Jaccard ≥ 0.8 (a re-retrieved chunk with a changed header, say) and
whose numbers are identical: a near copy with different figures is kept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from llmrouter.compression.messages import Message, map_text
from llmrouter.compression.text import split_blocks

__all__ = ["NEAR_DUPLICATE_JACCARD", "dedupe_messages"]

NEAR_DUPLICATE_JACCARD = 0.8
# Short blocks ("Thanks!", "Yes.") legitimately repeat; only longer ones are deduplicated.
_MIN_WORDS = 8
_DIGITS = re.compile(r"\d+")
_SAMPLE_ABOVE = 48
_MAX_NEAR_WORDS = 400
_OMITTED = "(repeated content omitted)"


class _Seen:
    """Shingle sets of kept blocks, indexed by shingle for candidate lookup."""

    def __init__(self) -> None:
        self.exact: set[str] = set()
        self.shingles: list[frozenset[tuple[str, str, str]]] = []
        self.numbers: list[tuple[str, ...]] = []
        self.index: dict[tuple[str, str, str], list[int]] = {}

    def is_duplicate(self, block_words: list[str]) -> bool:
        key = " ".join(block_words)
        if key in self.exact:
            return True
        if len(block_words) > _MAX_NEAR_WORDS:
            # near copies of very long blocks are rare; exact copies were checked above
            self.exact.add(key)
            return False
        if len(block_words) > _SAMPLE_ABOVE:
            # shingles anchored on a content-defined sample of words (the same in every copy
            # and every process) estimate Jaccard well on long blocks at a third of the cost
            anchors = [i for i, w in enumerate(block_words[:-2]) if len(w) % 3 == 0]
            shingles = frozenset(
                (block_words[i], block_words[i + 1], block_words[i + 2]) for i in anchors
            )
        else:
            shingles = frozenset(zip(block_words, block_words[1:], block_words[2:], strict=False))
        counts: dict[int, int] = {}
        for shingle in shingles:
            for candidate in self.index.get(shingle, ()):
                counts[candidate] = counts.get(candidate, 0) + 1
        numbers = tuple(_DIGITS.findall(key))
        for candidate, shared in counts.items():
            union = len(shingles) + len(self.shingles[candidate]) - shared
            # a near copy with other figures is an update, not a duplicate
            similar = bool(union) and shared / union >= NEAR_DUPLICATE_JACCARD
            if similar and self.numbers[candidate] == numbers:
                return True
        self.exact.add(key)
        position = len(self.shingles)
        self.shingles.append(shingles)
        self.numbers.append(numbers)
        for shingle in shingles:
            self.index.setdefault(shingle, []).append(position)
        return False


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
