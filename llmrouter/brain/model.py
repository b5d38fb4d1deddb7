"""The brain's weights and the prompt half of the model: features -> difficulty and demands.

Weights live in two files side by side: ``NAME.npz`` (arrays) and ``NAME.json`` (readable
metadata: categories, per-model abilities, the rating-to-ability map). Loading happens once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .features import HASH_BITS, STRUCTURAL_NAMES, hashed_ngrams, structural_features

__all__ = ["CATEGORIES", "DEFAULT_WEIGHTS", "BrainWeights", "PromptState"]

CATEGORIES: tuple[str, ...] = ("math", "code", "reasoning", "knowledge", "chat")
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "default"


@dataclass(frozen=True)
class PromptState:
    """What ``probability()`` needs from a profiled prompt: difficulty, demands, factors.

    ``factors`` is the prompt's low-rank embedding; a backend's ``factors`` loadings dot it
    (prompt x model interaction). Empty for weights trained without factors.
    """

    difficulty: float
    demands: tuple[float, ...]
    factors: tuple[float, ...] = ()


@dataclass
class BrainWeights:
    """Arrays and metadata of a trained brain.

    ``embedding[:, 0]`` and ``structural[:, 0]`` give the difficulty; the next
    ``len(CATEGORIES)`` columns the demand-category logits and the rest (if any) the prompt
    factors. ``category_difficulty`` adds each category's mean difficulty.
    """

    embedding: NDArray[np.float32]
    structural: NDArray[np.float32]
    bias: NDArray[np.float32]
    category_difficulty: NDArray[np.float32]
    structural_mean: NDArray[np.float32]
    demand_mean: NDArray[np.float32]
    meta: dict[str, Any] = field(default_factory=dict)

    # -- persistence -------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path = DEFAULT_WEIGHTS) -> BrainWeights:
        """Load ``path.npz`` + ``path.json`` (``path`` may name either file or the stem)."""
        stem = Path(path)
        if stem.is_dir():
            stem = stem / "default"
        if stem.suffix in (".npz", ".json"):
            stem = stem.with_suffix("")
        with np.load(stem.with_suffix(".npz")) as arrays:
            loaded = {k: np.asarray(arrays[k], dtype=np.float32) for k in arrays.files}
        meta = json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))
        if meta.get("hash_bits") != HASH_BITS or tuple(meta.get("categories", ())) != CATEGORIES:
            raise ValueError(f"{stem}: weights were trained with another feature layout")
        return cls(
            embedding=loaded["embedding"],
            structural=loaded["structural"],
            bias=loaded["bias"],
            category_difficulty=loaded["category_difficulty"],
            structural_mean=loaded["structural_mean"],
            demand_mean=loaded["demand_mean"],
            meta=meta,
        )

    def save(self, stem: str | Path) -> Path:
        """Write ``stem.npz`` (float16 embedding, to keep the package small) and ``stem.json``."""
        target = Path(stem)
        target.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            target.with_suffix(".npz"),
            embedding=self.embedding.astype(np.float16),
            structural=self.structural,
            bias=self.bias,
            category_difficulty=self.category_difficulty,
            structural_mean=self.structural_mean,
            demand_mean=self.demand_mean,
        )
        meta = dict(self.meta, hash_bits=HASH_BITS, categories=list(CATEGORIES))
        meta["structural_names"] = list(STRUCTURAL_NAMES)
        text = json.dumps(meta, indent=1, sort_keys=True)
        target.with_suffix(".json").write_text(text + "\n", encoding="utf-8")
        return target

    # -- the prompt side ---------------------------------------------------------------------

    def logits(
        self, text: str, token_ids: Sequence[int]
    ) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
        """(hashed part, structural vector, total logits) of one prompt."""
        buckets = hashed_ngrams(token_ids)
        if buckets.shape[0]:
            # take + dot: summing a (n, 6) gather along axis 0 is ~10x slower in numpy.
            rows = self.embedding.take(buckets, axis=0)
            hashed = np.full(buckets.shape[0], 1.0 / buckets.shape[0], dtype=np.float32) @ rows
        else:
            hashed = np.zeros(self.embedding.shape[1], dtype=np.float32)
        struct = np.asarray(structural_features(text, len(token_ids)), dtype=np.float32)
        # Weights trained on a prefix of today's structural features stay usable.
        struct = struct[: self.structural.shape[0]]
        return hashed, struct, self.bias + hashed + struct @ self.structural

    def state(
        self, text: str, token_ids: Sequence[int]
    ) -> tuple[PromptState, list[tuple[str, float]]]:
        """The prompt's difficulty and demands, plus every named contribution to difficulty."""
        hashed, struct, total = self.logits(text, token_ids)
        end = 1 + len(CATEGORIES)
        cat_logits = total[1:end] - total[1:end].max()
        expo = np.exp(cat_logits)
        demands = expo / expo.sum()
        difficulty = float(total[0] + demands @ self.category_difficulty)
        # Whole-array arithmetic, then tolist(): per-element numpy scalars cost ~30 µs a call.
        n = min(len(STRUCTURAL_NAMES), struct.shape[0], self.structural_mean.shape[0])
        structural = self.structural[:n, 0] * (struct[:n] - self.structural_mean[:n])
        by_demand = self.category_difficulty * (demands - self.demand_mean)
        contributions = list(zip(STRUCTURAL_NAMES, structural.tolist(), strict=False))
        contributions += zip(CATEGORIES, by_demand.tolist(), strict=True)
        contributions.append(
            ("wording", float(hashed[0]) - float(self.meta.get("wording_mean", 0)))
        )
        state = PromptState(difficulty, tuple(demands.tolist()), tuple(total[end:].tolist()))
        return state, contributions

    def complexity(self, difficulty: float) -> float:
        """Difficulty squashed to [0, 1]: 0.5 is the median training prompt."""
        center = float(self.meta.get("difficulty_center", 0.0))
        scale = float(self.meta.get("difficulty_scale", 1.0))
        return 1.0 / (1.0 + math.exp(-(difficulty - center) / scale))
