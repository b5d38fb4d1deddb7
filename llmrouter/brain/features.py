"""Prompt features that cost microseconds: hashed token n-grams plus a few structural counts.

Hashed unigrams and bigrams of tiktoken ids carry the topic and phrasing; the structural
features carry what n-grams see poorly (length, LaTeX density, code blocks, numbers). Long
prompts contribute only their head and tail n-grams so cost stays bounded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "HASH_BITS",
    "STRUCTURAL_NAMES",
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

_NO_DIGITS = str.maketrans("", "", "0123456789")

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


def structural_features(text: str, n_tokens: int) -> tuple[float, ...]:
    """Dense features in the order of ``STRUCTURAL_NAMES``, each roughly in [0, 3]."""
    n_chars = max(len(text), 1)
    latex = text.count("\\") + text.count("$") + text.count("^") + text.count("_{")
    digits = n_chars - len(text.translate(_NO_DIGITS)) if text else 0
    code = text.count("```") + text.count("def ") + text.count("    return") + text.count(";\n")
    questions = text.count("?")
    sentences = text.count(". ") + text.count(".\n") + questions
    return (
        math.log1p(n_tokens) / 4.0,
        max(math.log2(max(n_tokens, 1) / 2048.0), 0.0) / 2.0,
        math.log1p(1000.0 * latex / n_chars) / 4.0,
        math.log1p(1000.0 * digits / n_chars) / 5.0,
        math.log1p(code),
        math.log1p(questions),
        math.log1p(sentences) / 2.0,
        math.log1p(digits) / 3.0,
    )
