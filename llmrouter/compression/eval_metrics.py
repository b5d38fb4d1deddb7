"""What a compressed document kept: evidence recall and ROUGE-L recall.

Evidence is the set of content words of the gold answers that occur in the full
document and not in the question: words the question carries (including the option
text of a multiple-choice question) would survive any compression and prove nothing.
Words are compared unstemmed, exactly as written, so the metric cannot be gamed by the
compressor's own stemmer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from llmrouter.compression.text import STOPWORDS, words

__all__ = ["evidence_recall", "evidence_words", "lcs_length", "rouge_l_recall"]


def _content(text: str) -> set[str]:
    return {w for w in words(text) if w not in STOPWORDS and (len(w) > 1 or w.isdigit())}


def evidence_words(document: str, question: str, answers: Iterable[str]) -> set[str]:
    """Answer words that the document holds and the question does not."""
    answer_words: set[str] = set()
    for answer in answers:
        answer_words |= _content(answer)
    return (answer_words & set(words(document))) - set(words(question))


def evidence_recall(evidence: set[str], compressed: str) -> float | None:
    """Share of ``evidence`` still present in ``compressed``; None when there is none."""
    if not evidence:
        return None
    kept = set(words(compressed))
    return len(evidence & kept) / len(evidence)


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Longest common subsequence length, bit-parallel (Hyyrö 2004): O(len(a)·len(b)/64)."""
    if not a or not b:
        return 0
    masks: dict[str, int] = {}
    for position, token in enumerate(b):
        masks[token] = masks.get(token, 0) | (1 << position)
    full = (1 << len(b)) - 1
    v = full
    for token in a:
        u = v & masks.get(token, 0)
        v = ((v + u) | (v - u)) & full
    return len(b) - v.bit_count()


def rouge_l_recall(reference: str, candidate: str) -> float:
    """LCS-based recall of ``reference``'s words in ``candidate``: how much of it survives."""
    ref = words(reference)
    if not ref:
        return 0.0
    return lcs_length(ref, words(candidate)) / len(ref)
