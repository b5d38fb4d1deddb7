"""Prompt embeddings for the semantic cache: a local hashed bag of words, or any function.

The local representation needs no model and no download: the prompt is canonicalised
(case, punctuation, whitespace and politeness formulas removed, numbers kept), then
word unigrams and bigrams are hashed with a sign into a fixed number of dimensions,
weighted sub-linearly and L2-normalised. It recognises the same question reworded
superficially, which is what a cache may safely reuse; deeper paraphrase needs a real
embedding model, which callers can pass as ``Embedder``.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Any

import numpy as np

__all__ = ["Embedder", "HashingEmbedder", "canonical_words", "normalize_rows"]

# Takes a batch of texts, returns one vector per text (any array-like of floats).
Embedder = Callable[[Sequence[str]], Any]

_TOKEN = re.compile(r"\d+(?:[.,/]\d+)*|[^\W\d_]+|[^\w\s]", re.UNICODE)
# Courtesy and framing words that do not change what is asked.
_FILLER = frozenset(
    """
    please pls kindly thanks thank thx hi hello hey dear there could would can you help me i
    i'm im my need want wondering wonder question quick following problem answer tell let
    know like just sure ok okay
    """.split()  # noqa: SIM905
)
_PUNCTUATION_KEPT = frozenset("+-*/×÷^=<>≤≥%$€£")


def canonical_words(text: str) -> list[str]:
    """Lower-cased words and numbers without punctuation (operators stay) or filler."""
    out: list[str] = []
    for token in _TOKEN.findall(text.lower()):
        if token[0].isalnum():
            if token not in _FILLER:
                out.append(token.replace(",", "") if token[0].isdigit() else token)
        elif token in _PUNCTUATION_KEPT:
            out.append(token)
    return out


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (matrix / norms).astype(np.float32)


class HashingEmbedder:
    """Signed feature hashing of word unigrams and bigrams; CPU only, deterministic."""

    def __init__(self, dim: int = 256, bigram_weight: float = 0.5) -> None:
        if dim < 16:
            raise ValueError("dim must be at least 16")
        self.dim = dim
        self.bigram_weight = bigram_weight

    def embed_words(self, words: Sequence[str]) -> np.ndarray:
        """The unit vector of already canonicalised words."""
        features: Counter[str] = Counter(words)
        bigrams: Counter[str] = Counter(f"{a} {b}" for a, b in pairwise(words))
        indices: list[int] = []
        weights: list[float] = []
        for table, scale in ((features, 1.0), (bigrams, self.bigram_weight)):
            for feature, count in table.items():
                digest = zlib.crc32(feature.encode())
                indices.append((digest >> 1) % self.dim)
                weight = scale * (1.0 + math.log(count)) if count > 1 else scale
                weights.append(weight if digest & 1 else -weight)
        if not indices:
            return np.zeros(self.dim, dtype=np.float32)
        vector = np.bincount(indices, weights, minlength=self.dim).astype(np.float32)
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm else vector

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed_words(canonical_words(text))

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.embed_one(text) for text in texts])
