"""Okapi BM25 over the sentences of one document.

The "corpus" is the document itself, so IDF says which query words are specific to a
few passages; no external statistics or downloads are involved.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

__all__ = ["bm25_scores"]


def bm25_scores(
    units: Sequence[Sequence[str]],
    query: Sequence[str],
    lengths: Sequence[int] | None = None,
    k1: float = 1.2,
    b: float = 0.75,
) -> list[float]:
    """Score each unit (a list of terms) against the query terms.

    With ``lengths``, ``units`` may hold only the terms that occur in the query (the rest
    cannot score), and ``lengths`` their full lengths: the same scores, less work.
    """
    if not units:
        return []
    query_weights = Counter(query)
    wanted = set(query_weights)
    sizes = list(lengths) if lengths is not None else [len(terms) for terms in units]
    n = len(units)
    # most units share no term with the query: only the others are counted and scored
    matches: dict[int, Counter[str]] = {}
    df: Counter[str] = Counter()
    for index, terms in enumerate(units):
        if terms and not wanted.isdisjoint(terms):
            tf = Counter(term for term in terms if term in wanted)
            df.update(tf.keys())
            matches[index] = tf
    idf = {term: math.log(1.0 + (n - freq + 0.5) / (freq + 0.5)) for term, freq in df.items()}
    avg_len = sum(sizes) / n or 1.0
    scores = [0.0] * n
    for index, found in matches.items():
        norm = k1 * (1.0 - b + b * sizes[index] / avg_len)
        score = 0.0
        for term, freq in found.items():
            # repeated query words count sub-linearly
            weight = 1.0 + math.log(query_weights[term])
            score += idf[term] * weight * freq * (k1 + 1.0) / (freq + norm)
        scores[index] = score
    return scores
