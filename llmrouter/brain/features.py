"""Prompt features that cost microseconds: hashed token n-grams plus a few structural counts.

Hashed unigrams and bigrams of tiktoken ids carry the topic and phrasing; the structural
features carry what n-grams see poorly (length, LaTeX density, code blocks, numbers). Long
prompts contribute only their head and tail n-grams so cost stays bounded.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from itertools import pairwise

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "HASH_BITS",
    "STRUCTURAL_NAMES",
    "hashed_ngram_list",
    "hashed_ngrams",
    "structural_features",
]

HASH_BITS = 18
_MASK = (1 << HASH_BITS) - 1
_HEAD = 512
_TAIL = 3072
# Odd 64-bit multipliers (Knuth/Fibonacci hashing); arithmetic wraps in uint64.
_UNI = np.uint64(0x9E3779B97F4A7C15)
_BI = np.uint64(0xC2B2AE3D27D4EB4F)
_SHIFT = np.uint64(64 - HASH_BITS)
# The same constants as Python ints, for prompts too short to amortise numpy's per-call cost.
_UNI_INT = int(_UNI)
_BI_INT = int(_BI)
_SHIFT_INT = 64 - HASH_BITS
_WORD = (1 << 64) - 1
_BI_UNI_INT = _BI_INT * _UNI_INT & _WORD
_SEVEN_UNI_INT = 7 * _UNI_INT & _WORD
_TABLE_SIZE = 1 << 18
_UNIGRAMS: array | None = None
_DIGIT_BYTES = b"0123456789"

STRUCTURAL_NAMES: tuple[str, ...] = (
    "length",
    "long_context",
    "latex",
    "numbers",
    "code_block",
    "questions",
    "sentences",
    "digits",
)


def _window(ids: NDArray[np.uint64]) -> NDArray[np.uint64]:
    if ids.shape[0] <= _HEAD + _TAIL:
        return ids
    return np.concatenate((ids[:_HEAD], ids[-_TAIL:]))


def hashed_ngrams(token_ids: Sequence[int]) -> NDArray[np.int64]:
    """Bucket indices of the prompt's token unigrams and bigrams (with repeats)."""
    ids = _window(np.asarray(token_ids, dtype=np.uint64))
    if ids.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    uni = (ids + np.uint64(1)) * _UNI
    bi = (ids[:-1] * _BI + ids[1:] + np.uint64(7)) * _UNI
    both = np.concatenate((uni, bi)) >> _SHIFT
    return both.astype(np.int64)


def _unigram_table() -> array:
    """Unigram bucket of every token id below 2^18 (1 MB; covers the o200k/cl100k vocabularies)."""
    global _UNIGRAMS
    if _UNIGRAMS is None:
        ids = np.arange(_TABLE_SIZE, dtype=np.uint64)
        buckets = ((ids + np.uint64(1)) * _UNI) >> _SHIFT
        _UNIGRAMS = array("i", buckets.astype(np.int32).tobytes())
    return _UNIGRAMS


def hashed_ngram_list(token_ids: Sequence[int]) -> list[int]:
    """``hashed_ngrams`` with Python ints (same buckets, same order), for short prompts.

    Unigram buckets come from a table; bigrams use (a·BI + b + 7)·UNI = a·(BI·UNI) + b·UNI
    + 7·UNI, reduced modulo 2^64 as uint64 arithmetic does (Python ints do not wrap).
    Callers keep this to prompts shorter than the n-gram window (no head/tail cut here).
    """
    table = _UNIGRAMS if _UNIGRAMS is not None else _unigram_table()
    word, shift = _WORD, _SHIFT_INT
    try:
        out = [table[t] for t in token_ids]
    except IndexError:  # an id past the table
        uni = _UNI_INT
        out = [((t + 1) * uni & word) >> shift for t in token_ids]
    if len(token_ids) > 1:
        both, uni, seven = _BI_UNI_INT, _UNI_INT, _SEVEN_UNI_INT
        out += [((a * both + b * uni + seven) & word) >> shift for a, b in pairwise(token_ids)]
    return out


def structural_features(text: str, n_tokens: int) -> tuple[float, ...]:
    """Dense features in the order of ``STRUCTURAL_NAMES``, each roughly in [0, 3].

    Runs once per request: counts are bound methods, zero counts skip their logarithm
    (log1p(0) is 0.0 exactly), and ASCII digits are counted on the UTF-8 bytes (multi-byte
    characters never contain bytes 0x30-0x39), which is several times cheaper than
    ``str.translate``.
    """
    count = text.count
    n_chars = len(text) or 1
    latex = count("\\") + count("$") + count("^") + count("_{")
    if text:
        raw = text.encode("utf-8", "surrogatepass")
        digits = len(raw) - len(raw.translate(None, _DIGIT_BYTES))
    else:
        digits = 0
    code = count("```") + count("def ") + count("    return") + count(";\n")
    questions = count("?")
    sentences = count(". ") + count(".\n") + questions
    log1p = math.log1p
    return (
        log1p(n_tokens) / 4.0,
        math.log2(n_tokens / 2048.0) / 2.0 if n_tokens > 2048 else 0.0,
        log1p(1000.0 * latex / n_chars) / 4.0 if latex else 0.0,
        log1p(1000.0 * digits / n_chars) / 5.0 if digits else 0.0,
        log1p(code) if code else 0.0,
        log1p(questions) if questions else 0.0,
        log1p(sentences) / 2.0 if sentences else 0.0,
        log1p(digits) / 3.0 if digits else 0.0,
    )
