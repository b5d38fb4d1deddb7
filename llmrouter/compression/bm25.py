"""Okapi BM25 over the sentences of one document.

The "corpus" is the document itself, so IDF says which query words are specific to a
few passages; no external statistics or downloads are involved.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

__all__ = ["bm25_scores", "idf_table"]


def idf_table(units: Sequence[Sequence[str]]) -> dict[str, float]:
    """BM25's non-negative IDF for every term that occurs in ``units``."""
    df: Counter[str] = Counter()
    for terms in units:
        df.update(set(terms))
    n = len(units)
    return {term: math.log(1.0 + (n - freq + 0.5) / (freq + 0.5)) for term, freq in df.items()}


def bm25_scores(
    units: Sequence[Sequence[str]],
    query: Sequence[str],
    idf: dict[str, float] | None = None,
    k1: float = 1.2,
    b: float = 0.75,
) -> list[float]:
    """Score each unit (a list of terms) against the query terms."""
    if not units:
        return []
    idf = idf if idf is not None else idf_table(units)
    query_weights: Counter[str] = Counter(term for term in query if term in idf)
    if not query_weights:
        return [0.0] * len(units)
    avg_len = sum(len(terms) for terms in units) / len(units) or 1.0
    wanted = set(query_weights)
    scores: list[float] = []
    for terms in units:
        if wanted.isdisjoint(terms):
            scores.append(0.0)
            continue
        tf = Counter(terms)
        norm = k1 * (1.0 - b + b * len(terms) / avg_len)
        score = 0.0
        for term, qtf in query_weights.items():
            freq = tf.get(term)
            if freq:
                # repeated query words count sub-linearly
                score += idf[term] * (1.0 + math.log(qtf)) * freq * (k1 + 1.0) / (freq + norm)
        scores.append(score)
    return scores
