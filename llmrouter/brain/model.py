"""The brain's weights and the prompt half of the model: features -> difficulty and demands.

Weights live in two files side by side: ``NAME.npz`` (arrays) and ``NAME.json`` (readable
metadata: categories, per-model abilities, the rating-to-ability map). Loading happens once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import add, mul, sub
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from .features import (
    HASH_BITS,
    STRUCTURAL_NAMES,
    hashed_ngram_list,
    hashed_ngrams,
    structural_features,
)

__all__ = ["CATEGORIES", "DEFAULT_WEIGHTS", "SHORT_PROMPT_TOKENS", "BrainWeights", "PromptState"]

CATEGORIES: tuple[str, ...] = ("math", "code", "reasoning", "knowledge", "chat")
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "default"
# Up to this many tokens (given as a list or tuple) the n-gram buckets are hashed with Python
# ints: below it numpy's per-call overhead costs more than the Python loop (measured with
# benchmarks/bench_predictor.py; the crossover on the development machine is ~100 tokens).
SHORT_PROMPT_TOKENS = 64
_END = 1 + len(CATEGORIES)  # logits: difficulty, the demand categories, then the factors
assert len(CATEGORIES) == 5, "state_values unrolls the softmax over the five categories"


class PromptState(NamedTuple):
    """What ``probability()`` needs from a profiled prompt: difficulty, demands, factors.

    ``factors`` is the prompt's low-rank embedding; a backend's ``factors`` loadings dot it
    (prompt x model interaction). Empty for weights trained without factors. A named tuple:
    one is built per request, and it costs a third of a frozen dataclass.
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
    # Category-conditioned structural effects (weights version 3): ``interaction[c, j, :]``
    # adds ``demands[c] · structural[j]`` times that row to the difficulty and factor logits;
    # ``interaction_mean[j]`` is feature j's mean such term on the training prompts.
    interaction: NDArray[np.float32] | None = None
    interaction_mean: NDArray[np.float32] | None = None

    def __post_init__(self) -> None:
        self.prepare()

    def prepare(self) -> None:
        """Lay the arrays out for ``state()`` (called on construction; again after editing them).

        The structural weights and the bias are stored as extra rows under the n-gram
        embedding (``embedding`` stays a view of its first rows, so memory stays flat): one
        gather and one dot product then give every logit, and the small dense parts that
        follow (softmax over the demands, named contributions) run on Python floats, where a
        14-element numpy operation would cost ~1 µs each.
        """
        rows = self.embedding.shape[0]
        k = min(len(STRUCTURAL_NAMES), self.structural.shape[0])
        # float16, as the n-gram rows are stored: 7 MB less resident than float32. The
        # structural weights and the bias are rounded to float16 here too, so every path
        # (this one, the numpy reference, evaluation after training) uses the same values;
        # a prompt's difficulty moves by well under 1e-3 logits.
        self.structural = self.structural.astype(np.float16).astype(np.float32)
        self.bias = self.bias.astype(np.float16).astype(np.float32)
        extended = np.empty((rows + k + 1, self.embedding.shape[1]), dtype=np.float16)
        extended[:rows] = self.embedding
        extended[rows : rows + k] = self.structural[:k]
        extended[rows + k] = self.bias
        self._extended = extended
        self.embedding = extended[:rows]
        self._n_struct = k
        self._extra = list(range(rows, rows + k + 1))
        self._extra_array = np.arange(rows, rows + k + 1, dtype=np.int64)
        n = min(k, self.structural_mean.shape[0])
        self._names = (*STRUCTURAL_NAMES[:n], *CATEGORIES, "wording")
        self._struct_w0 = [float(w) for w in self.structural[:k, 0]]
        self._struct_mean = [float(m) for m in self.structural_mean[:n]]
        self._struct_w0_mean = [
            w * m for w, m in zip(self._struct_w0, self._struct_mean, strict=False)
        ]
        self._cat_diff = [float(v) for v in self.category_difficulty]
        self._cat_diff_mean = [
            v * float(m) for v, m in zip(self._cat_diff, self.demand_mean, strict=True)
        ]
        self._bias_wording = float(self.bias[0]) + float(self.meta.get("wording_mean", 0))
        self._inter: NDArray[np.float64] | None = None
        self._inter_mean = [0.0] * n
        if self.interaction is not None:
            inter = self.interaction[:, :k, :].astype(np.float16).astype(np.float32)
            self.interaction = inter
            c = inter.shape[0]
            # One k x (c·(k + factors)) matrix: structural · it, shaped (c, k + factors) and
            # weighted by the demands, gives in column j < k feature j's difficulty term and
            # in the rest the factor terms (two small dot products per prompt).
            per_feature = np.zeros((k, c, k))
            per_feature[np.arange(k), :, np.arange(k)] = inter[:, :, 0].T
            factor_terms = inter[:, :, _END:].transpose(1, 0, 2)
            self._inter = np.concatenate([per_feature, factor_terms], axis=2).reshape(k, -1)
            if self.interaction_mean is not None:
                self._inter_mean = [float(v) for v in self.interaction_mean[:n]]
        self._center = float(self.meta.get("difficulty_center", 0.0))
        self._scale = float(self.meta.get("difficulty_scale", 1.0))

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
            interaction=loaded.get("interaction"),
            interaction_mean=loaded.get("interaction_mean"),
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
        extra: dict[str, Any] = {}
        if self.interaction is not None:
            extra["interaction"] = self.interaction
            if self.interaction_mean is not None:
                extra["interaction_mean"] = self.interaction_mean
        np.savez_compressed(
            target.with_suffix(".npz"),
            **extra,
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
        """(hashed part, structural vector, total logits) of one prompt.

        The total leaves out the demand x structural terms (``interaction``), which need the
        demands first: ``state_numpy`` adds them.
        """
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
        """The prompt's difficulty and demands, plus every named contribution to difficulty.

        Same values as ``state_numpy`` (to float32 rounding) at a fraction of its cost.
        """
        state, values, _ = self.state_values(text, token_ids)
        return state, list(zip(self._names, values, strict=True))

    @property
    def contribution_names(self) -> tuple[str, ...]:
        """The names of the values ``state_values`` returns, in order."""
        return self._names

    def state_values(
        self, text: str, token_ids: Sequence[int]
    ) -> tuple[PromptState, list[float], tuple[float, ...]]:
        """``state`` with the contributions as bare values, ordered as ``contribution_names``,
        and the prompt's structural features (a zero one is a feature the prompt lacks)."""
        n = len(token_ids)
        struct = structural_features(text, n)
        if len(struct) > self._n_struct:  # weights trained on a prefix of today's features
            struct = struct[: self._n_struct]
        # Python-int hashing needs Python ints (numpy integers would overflow, not wrap).
        if (
            n <= SHORT_PROMPT_TOKENS
            and type(token_ids) in (list, tuple)
            and (not n or type(token_ids[0]) is int)
        ):
            index: Any = hashed_ngram_list(token_ids)
            count = len(index)
            coef = np.array(
                [1.0 / count] * count + [*struct, 1.0] if count else [*struct, 1.0],
                dtype=np.float32,
            )
            index += self._extra
        else:
            array = hashed_ngrams(token_ids)
            count = array.shape[0]
            coef = np.empty(count + len(self._extra), dtype=np.float32)
            coef[:count] = 1.0 / count if count else 0.0
            coef[count:] = (*struct, 1.0)
            index = np.concatenate((array, self._extra_array))
        # (n-gram mean, structural features, 1) . (embedding rows, structural weights, bias)
        rows = self._extended.take(index, axis=0)
        if count > SHORT_PROMPT_TOKENS:  # numpy's float16 dot is a slow loop; BLAS is not
            rows = rows.astype(np.float32)
        total: list[float] = coef.dot(rows).tolist()
        # Softmax over the five demand logits, unrolled (a loop costs twice as much here).
        z0, z1, z2, z3, z4 = total[1:_END]
        top = max(z0, z1, z2, z3, z4)
        exp = math.exp
        e0, e1, e2, e3, e4 = (
            exp(z0 - top),
            exp(z1 - top),
            exp(z2 - top),
            exp(z3 - top),
            exp(z4 - top),
        )
        inv = 1.0 / (e0 + e1 + e2 + e3 + e4)
        demands = (e0 * inv, e1 * inv, e2 * inv, e3 * inv, e4 * inv)
        v0, v1, v2, v3, v4 = self._cat_diff
        difficulty = total[0] + (
            demands[0] * v0 + demands[1] * v1 + demands[2] * v2 + demands[3] * v3 + demands[4] * v4
        )
        # w·(x - mean) as w·x - w·mean, with the products by the means computed at load.
        values = list(map(sub, map(mul, self._struct_w0, struct), self._struct_w0_mean))
        factors = total[_END:]
        if self._inter is not None:
            k = self._n_struct
            by_category = coef[count : count + k].dot(self._inter).reshape(len(demands), -1)
            extra: list[float] = np.dot(demands, by_category).tolist()
            per_feature = extra[:k]
            difficulty += sum(per_feature)
            values = list(map(add, values, map(sub, per_feature, self._inter_mean)))
            factors = list(map(add, factors, extra[k:]))
        values += map(sub, map(mul, self._cat_diff, demands), self._cat_diff_mean)
        # The n-gram part of the difficulty logit: the total less its structural part and bias.
        values.append(total[0] - sum(map(mul, struct, self._struct_w0)) - self._bias_wording)
        return PromptState(difficulty, demands, tuple(factors)), values, struct

    def state_numpy(
        self, text: str, token_ids: Sequence[int]
    ) -> tuple[PromptState, list[tuple[str, float]]]:
        """``state`` computed with whole-array numpy arithmetic (the reference for tests)."""
        hashed, struct, total = self.logits(text, token_ids)
        end = 1 + len(CATEGORIES)
        cat_logits = total[1:end] - total[1:end].max()
        expo = np.exp(cat_logits)
        demands = expo / expo.sum()
        difficulty = float(total[0] + demands @ self.category_difficulty)
        # Whole-array arithmetic, then tolist(): per-element numpy scalars cost ~30 µs a call.
        n = min(len(STRUCTURAL_NAMES), struct.shape[0], self.structural_mean.shape[0])
        structural = self.structural[:n, 0] * (struct[:n] - self.structural_mean[:n])
        factors = total[end:]
        if self.interaction is not None:
            k = self.interaction.shape[1]
            # demands ⊗ structural times the interaction rows, per logit column.
            terms = np.einsum("c,j,cjw->jw", demands, struct[:k], self.interaction)
            difficulty += float(terms[:, 0].sum())
            structural = structural + terms[:n, 0] - np.asarray(self._inter_mean[:n])
            factors = factors + terms[:, end:].sum(axis=0)
        by_demand = self.category_difficulty * (demands - self.demand_mean)
        contributions = list(zip(STRUCTURAL_NAMES, structural.tolist(), strict=False))
        contributions += zip(CATEGORIES, by_demand.tolist(), strict=True)
        contributions.append(
            ("wording", float(hashed[0]) - float(self.meta.get("wording_mean", 0)))
        )
        state = PromptState(difficulty, tuple(demands.tolist()), tuple(factors.tolist()))
        return state, contributions

    def complexity(self, difficulty: float) -> float:
        """Difficulty squashed to [0, 1]: 0.5 is the median training prompt."""
        z = (difficulty - self._center) / self._scale
        return 1.0 / (1.0 + math.exp(-z)) if z > -700.0 else 0.0
