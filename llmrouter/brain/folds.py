"""Cross-validation folds that keep every copy of a question in one fold.

The same question turns up in several sets under different wrapping: GSM8K's test questions
are in the LLMRouter set with an answer-format line appended, MBPP's with or without a source
URL, ARC's inside RouterBench's few-shot template. A fold keyed on the exact text puts such
copies in different folds, so a brain would train on a question (with other models' results
on it) and then be scored on it. ``fold_groups`` joins prompts that share a rare run of words
first, then gives each group one fold.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

__all__ = ["fold_groups", "fold_of"]

_WORD = re.compile(r"\w+")


def fold_of(text: str, folds: int = 5) -> int:
    """A stable fold for a prompt (by its whitespace-normalised text), so exact duplicates
    share a fold."""
    digest = hashlib.md5(" ".join(text.split()).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "little") % folds


def fold_groups(
    texts: Sequence[str], folds: int = 5, run: int = 12, max_share: int = 8
) -> list[int]:
    """A fold per prompt such that prompts sharing a rare ``run``-word sequence share a fold.

    Words are lower-cased ``\\w+`` tokens, so punctuation, case and spacing do not matter.
    A run found in more than ``max_share`` prompts is a template (a few-shot exemplar, an
    instruction line), not a question, and joins nothing. Prompts shorter than ``run`` words
    join only their exact duplicates. A group takes the ``fold_of`` of its smallest
    normalised text, so a prompt without copies keeps ``fold_of(text)`` and the assignment
    does not depend on the order of ``texts``.
    """
    holders: dict[int, list[int]] = {}
    for i, text in enumerate(texts):
        words = _WORD.findall(text.lower())
        seen = {hash(tuple(words[j : j + run])) for j in range(len(words) - run + 1)}
        for key in seen:
            holders.setdefault(key, []).append(i)

    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for members in holders.values():
        if 1 < len(members) <= max_share:
            first = root(members[0])
            for other in members[1:]:
                parent[root(other)] = first

    smallest: dict[int, str] = {}
    for i, text in enumerate(texts):
        normal = " ".join(text.split())
        group = root(i)
        if group not in smallest or normal < smallest[group]:
            smallest[group] = normal
    fold = {group: fold_of(normal, folds) for group, normal in smallest.items()}
    return [fold[root(i)] for i in range(len(texts))]
