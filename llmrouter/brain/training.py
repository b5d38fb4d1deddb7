"""Fit the brain from labelled prompts: a demand classifier, then an item-response model.

Stage 1 learns demand categories (maths, code, ...) from the task labels the data carries.
Stage 2 fits, jointly by L-BFGS, the prompt difficulty (linear in the same features, the
demands and the demand x structural products) and each training model's ability and
per-demand skill:

    P(model m answers prompt i well) = sigmoid(ability_m + skills_m · demands_i - difficulty_i)

Ordinal difficulty labels (MATH levels) enter as pseudo-models "level <= k" with their own
thresholds, so they shape the difficulty scale the same way real results do. Deterministic
given the seed: no sampling beyond a seeded initialisation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from llmrouter.tokens import encode

from .abilities import canonical_model_id
from .convert import category_of_task
from .dataset import MAX_LEVEL, Record
from .features import HASH_BITS, STRUCTURAL_NAMES, hashed_ngrams, structural_features
from .folds import fold_of
from .model import CATEGORIES, BrainWeights
from .optimize import lbfgs

__all__ = ["FeatureMatrix", "TrainConfig", "featurize", "fold_of", "train"]

_LEVEL_PREFIX = "__level_le_"
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    l2_hashed: float = 1e-7
    l2_structural: float = 1e-4
    l2_skills: float = 1e-5
    l2_category: float = 3e-3
    level_weight: float = 0.5
    min_category_df: int = 5
    max_iter: int = 600
    factors: int = 8
    l2_factor_prompt: float = 1e-6
    l2_factor_model: float = 1e-4
    l2_discrimination: float = 1e-3
    # n-gram buckets present in more than this share of the training prompts are left out
    # (weight 0). Punctuation and function words act as 1/length proxies, which extrapolate
    # badly to very short prompts; 0.25 was tried (docs/brain.md) and lost more than it won
    # in cross-validation, so the default keeps every bucket.
    max_df: float = 1.0
    # n-gram buckets present in fewer training prompts than this keep weight 0 in the
    # difficulty and the factors (as the demand classifier's ``min_category_df``): a rare
    # bucket's weight can only memorise its few prompts. 5 was tried (docs/brain.md) and
    # did not win in cross-validation, so the default (1) keeps every bucket seen.
    min_df: int = 1
    # Category-conditioned structural effects: the difficulty (and, with
    # ``interaction_factors``, the prompt factors) also get a term demands ⊗ structural, so
    # what makes a prompt hard can depend on its kind (length in a word problem, not in a
    # trivia question). The L2 of those weights; 0.0 turns the terms off (weights version 2).
    l2_interaction: float = 1e-4
    interaction_factors: bool = True
    # L2 of the factor columns' interaction weights (None: ``l2_interaction``).
    l2_interaction_factors: float | None = None
    rating_anchors: tuple[tuple[str, float], ...] = (
        ("gpt-4-1106-preview", 0.9),
        ("mistral-7b-chat", 0.35),
    )


@dataclass
class FeatureMatrix:
    """Row-normalised hashed n-gram counts (CSR) and the dense structural features."""

    hashed: sp.csr_matrix
    structural: FloatArray
    texts: list[str] = field(repr=False, default_factory=list)


def featurize(texts: Sequence[str], progress: Callable[[int], None] | None = None) -> FeatureMatrix:
    indptr = [0]
    indices: list[NDArray[np.int64]] = []
    data: list[FloatArray] = []
    rows: list[tuple[float, ...]] = []
    for text in texts:
        ids = encode(text)
        buckets = hashed_ngrams(ids)
        uniq, counts = np.unique(buckets, return_counts=True)
        indices.append(uniq)
        data.append(counts / max(buckets.shape[0], 1))
        indptr.append(indptr[-1] + uniq.shape[0])
        rows.append(structural_features(text, len(ids)))
        if progress is not None:
            progress(1)
    hashed = sp.csr_matrix(
        (
            np.concatenate(data) if data else np.zeros(0),
            np.concatenate(indices) if indices else np.zeros(0, dtype=np.int64),
            np.asarray(indptr),
        ),
        shape=(len(texts), 1 << HASH_BITS),
    )
    structural = np.asarray(rows, dtype=np.float64).reshape(len(texts), len(STRUCTURAL_NAMES))
    return FeatureMatrix(hashed, structural, list(texts))


def _drop_common(feats: FeatureMatrix, max_df: float) -> FeatureMatrix:
    """The features with the buckets of more than ``max_df`` of the prompts zeroed.

    Rows keep their normalisation (counts / all n-grams of the prompt), as at inference,
    where a zero-weight bucket still counts in the average.
    """
    if max_df >= 1.0 or feats.hashed.shape[0] == 0:
        return feats
    df = np.bincount(feats.hashed.indices, minlength=feats.hashed.shape[1])
    common = df > max_df * feats.hashed.shape[0]
    if not common.any():
        return feats
    hashed = feats.hashed.copy()
    hashed.data[common[hashed.indices]] = 0.0
    hashed.eliminate_zeros()
    return FeatureMatrix(hashed, feats.structural, feats.texts)


def _dense(structural: FloatArray, demands: FloatArray, config: TrainConfig) -> FloatArray:
    """The IRT's dense features: structural, then (if enabled) demands ⊗ structural.

    Column ``k + c·k + j`` is ``demands[c] · structural[j]`` (``BrainWeights.interaction``
    stores the weights of these columns as ``[c, j]``).
    """
    if not config.l2_interaction:
        return structural
    outer = (demands[:, :, None] * structural[:, None, :]).reshape(structural.shape[0], -1)
    return np.hstack([structural, outer])


def _softmax(z: FloatArray) -> FloatArray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def _fit_categories(
    feats: FeatureMatrix, labels: NDArray[np.int64], config: TrainConfig
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Class-balanced multinomial logistic regression on the labelled rows."""
    mask = labels >= 0
    x, s, y = feats.hashed[mask], feats.structural[mask], labels[mask]
    # Only n-grams seen in several labelled prompts can generalise; the rest stay at 0,
    # which also keeps the optimisation small.
    df = np.bincount(x.indices, minlength=x.shape[1])
    columns = np.flatnonzero(df >= config.min_category_df)
    x = x[:, columns]
    n, c = x.shape[0], len(CATEGORIES)
    d, k = x.shape[1], s.shape[1]
    freq = np.bincount(y, minlength=c).astype(np.float64)
    class_weight = np.where(freq > 0, (n / (c * np.maximum(freq, 1.0))) ** 0.5, 0.0)
    w = class_weight[y]
    w = w / w.sum()
    onehot = np.zeros((n, c))
    onehot[np.arange(n), y] = 1.0

    def loss(theta: FloatArray) -> tuple[float, FloatArray]:
        e = theta[: d * c].reshape(d, c)
        ws = theta[d * c : d * c + k * c].reshape(k, c)
        b = theta[d * c + k * c :]
        z = x @ e + s @ ws + b
        p = _softmax(z)
        logp = np.log(np.maximum(p, 1e-12))
        value = -float((w[:, None] * onehot * logp).sum())
        value += config.l2_hashed * float((e**2).sum()) + config.l2_structural * float(
            (ws**2).sum()
        )
        g = w[:, None] * (p - onehot)
        grad = np.concatenate(
            [
                (x.T @ g + 2 * config.l2_hashed * e).ravel(),
                (s.T @ g + 2 * config.l2_structural * ws).ravel(),
                g.sum(axis=0),
            ]
        )
        return value, grad

    theta, _, _ = lbfgs(loss, np.zeros(d * c + k * c + c), max_iter=config.max_iter // 2)
    embedding = np.zeros((feats.hashed.shape[1], c))
    embedding[columns] = theta[: d * c].reshape(d, c)
    return (
        embedding,
        theta[d * c : d * c + k * c].reshape(k, c),
        theta[d * c + k * c :],
    )


@dataclass
class _Observations:
    prompt: NDArray[np.int64]
    model: NDArray[np.int64]
    target: FloatArray
    weight: FloatArray
    models: list[str]
    pseudo: NDArray[np.bool_]


def _observations(records: Sequence[Record], config: TrainConfig) -> _Observations:
    models: dict[str, int] = {}
    prompt: list[int] = []
    model: list[int] = []
    target: list[float] = []
    weight: list[float] = []
    for i, record in enumerate(records):
        for name, score in record.scores.items():
            prompt.append(i)
            model.append(models.setdefault(canonical_model_id(name), len(models)))
            target.append(score)
            weight.append(1.0)
        if record.level is not None:
            for k in range(1, MAX_LEVEL):
                prompt.append(i)
                model.append(models.setdefault(f"{_LEVEL_PREFIX}{k}", len(models)))
                target.append(1.0 if record.level <= k else 0.0)
                weight.append(config.level_weight)
    names = list(models)
    return _Observations(
        prompt=np.asarray(prompt, dtype=np.int64),
        model=np.asarray(model, dtype=np.int64),
        target=np.asarray(target, dtype=np.float64),
        weight=np.asarray(weight, dtype=np.float64),
        models=names,
        pseudo=np.asarray([n.startswith(_LEVEL_PREFIX) for n in names], dtype=bool),
    )


def _sum_rows_by(group: NDArray[np.int64], values: FloatArray, groups: int) -> FloatArray:
    """Each column of ``values`` summed per group (rows of group ``g`` into row ``g``)."""
    return (
        np.column_stack(
            [
                np.bincount(group, weights=values[:, j], minlength=groups)
                for j in range(values.shape[1])
            ]
        )
        .reshape(groups, values.shape[1])
        .astype(np.float64)
    )


def _fit_irt(
    feats: FeatureMatrix, demands: FloatArray, obs: _Observations, config: TrainConfig
) -> dict[str, Any]:
    """Joint L-BFGS fit of the prompt side (difficulty, factors) and every model's parameters.

    logit = ability_m + skills_m · demands - discrimination_m · difficulty + loadings_m · factors
    where factors (rank ``config.factors``) are linear in the features, like a matrix
    factorisation router whose prompt embedding is learned from hashed n-grams.
    """
    # Buckets absent from the data keep weight 0 anyway; leaving them out is exact and fast.
    df = np.bincount(feats.hashed.indices, minlength=feats.hashed.shape[1])
    columns = np.flatnonzero(df >= max(config.min_df, 1))
    x, s = feats.hashed[:, columns], _dense(feats.structural, demands, config)
    xt = x.T.tocsr()
    k0 = feats.structural.shape[1]
    # Per-weight L2 of the dense block: main effects, then the demand x structural terms.
    l2_s = np.full(s.shape[1], config.l2_structural)
    l2_s[k0:] = config.l2_interaction
    l2_sf = np.full((s.shape[1], 1), config.l2_factor_prompt)
    sf_mask = np.ones((s.shape[1], 1))
    if not config.interaction_factors:
        sf_mask[k0:] = 0.0
    l2_sf[k0:] = (
        config.l2_interaction
        if config.l2_interaction_factors is None
        else config.l2_interaction_factors
    )
    n, d = x.shape
    k, c, m, f = s.shape[1], len(CATEGORIES), len(obs.models), config.factors
    w = obs.weight / obs.weight.sum()
    real = (~obs.pseudo).astype(np.float64)
    obs_demands = demands[obs.prompt]
    sizes = [d, k, 1, c, m, m * c, m, d * f, k * f, m * f]
    cuts = np.cumsum([0, *sizes])

    def unpack(theta: FloatArray) -> list[FloatArray]:
        return [theta[cuts[i] : cuts[i + 1]] for i in range(len(sizes))]

    def per_model(values: FloatArray) -> FloatArray:
        return _sum_rows_by(obs.model, values, m)

    def per_prompt(values: FloatArray) -> FloatArray:
        return _sum_rows_by(obs.prompt, values, n)

    def loss(theta: FloatArray) -> tuple[float, FloatArray]:
        wh, ws, b0, v, ability, skills_flat, disc_flat, e_flat, sf_flat, u_flat = unpack(theta)
        skills = skills_flat.reshape(m, c) * real[:, None]
        disc = 1.0 + disc_flat * real
        emb, sf = e_flat.reshape(d, f), sf_flat.reshape(k, f) * sf_mask
        loadings = u_flat.reshape(m, f) * real[:, None]
        difficulty = x @ wh + s @ ws + b0[0] + demands @ v
        factors = x @ emb + s @ sf
        obs_factors = factors[obs.prompt]
        obs_loadings = loadings[obs.model]
        logit = (
            ability[obs.model]
            + (skills[obs.model] * obs_demands).sum(axis=1)
            - disc[obs.model] * difficulty[obs.prompt]
            + (obs_loadings * obs_factors).sum(axis=1)
        )
        p = 1.0 / (1.0 + np.exp(-np.clip(logit, -35.0, 35.0)))
        eps = 1e-12
        value = -float(
            (w * (obs.target * np.log(p + eps) + (1 - obs.target) * np.log(1 - p + eps))).sum()
        )
        value += config.l2_hashed * float(wh @ wh) + float((l2_s * ws) @ ws)
        value += config.l2_skills * float((skills**2).sum()) + config.l2_category * float(v @ v)
        value += 1e-6 * float(ability @ ability)
        value += config.l2_discrimination * float((disc_flat * real) @ disc_flat)
        value += config.l2_factor_prompt * float(e_flat @ e_flat) + float((l2_sf * sf**2).sum())
        value += config.l2_factor_model * float((loadings**2).sum())
        g = w * (p - obs.target)
        g_diff = -np.bincount(obs.prompt, weights=g * disc[obs.model], minlength=n)
        g_ability = np.bincount(obs.model, weights=g, minlength=m) + 2e-6 * ability
        g_skills = per_model(g[:, None] * obs_demands)
        g_skills = (g_skills + 2 * config.l2_skills * skills) * real[:, None]
        by_model = np.bincount(obs.model, weights=g * difficulty[obs.prompt], minlength=m)
        g_disc = (2 * config.l2_discrimination * disc_flat - by_model) * real
        g_factors = per_prompt(g[:, None] * obs_loadings)
        g_emb = xt @ g_factors + 2 * config.l2_factor_prompt * emb
        g_sf = (s.T @ g_factors + 2 * l2_sf * sf) * sf_mask
        g_u = (per_model(g[:, None] * obs_factors) + 2 * config.l2_factor_model * loadings) * real[
            :, None
        ]
        grad = np.concatenate(
            [
                xt @ g_diff + 2 * config.l2_hashed * wh,
                s.T @ g_diff + 2 * l2_s * ws,
                [g_diff.sum()],
                demands.T @ g_diff + 2 * config.l2_category * v,
                g_ability,
                g_skills.ravel(),
                g_disc,
                g_emb.ravel(),
                g_sf.ravel(),
                g_u.ravel(),
            ]
        )
        return value, grad

    rng = np.random.default_rng(config.seed)
    theta0 = np.zeros(cuts[-1])
    theta0[cuts[5] : cuts[6]] = rng.normal(0, 0.01, m * c)
    # Loadings start small and random so the bilinear term leaves its saddle point at zero.
    theta0[cuts[9] : cuts[10]] = rng.normal(0, 0.1, m * f)
    theta, value, iterations = lbfgs(loss, theta0, max_iter=config.max_iter)
    wh, ws, b0, v, ability, skills_flat, disc_flat, e_flat, sf_flat, u_flat = unpack(theta)
    hashed = np.zeros(feats.hashed.shape[1])
    hashed[columns] = wh
    factor_hashed = np.zeros((feats.hashed.shape[1], f))
    factor_hashed[columns] = e_flat.reshape(d, f)
    return {
        "hashed": hashed,
        "structural": ws,
        "bias": float(b0[0]),
        "category_difficulty": v,
        "ability": ability,
        "skills": skills_flat.reshape(m, c) * real[:, None],
        "discrimination": 1.0 + disc_flat * real,
        "factor_hashed": factor_hashed,
        "factor_structural": sf_flat.reshape(k, f) * sf_mask,
        "loadings": u_flat.reshape(m, f) * real[:, None],
        "loss": value,
        "iterations": iterations,
    }


def train(
    records: Sequence[Record],
    config: TrainConfig | None = None,
    feats: FeatureMatrix | None = None,
) -> BrainWeights:
    """Train a brain on labelled records (``feats`` may be passed to reuse featurisation)."""
    config = config or TrainConfig()
    if feats is None:
        feats = featurize([r.text for r in records])
    feats = _drop_common(feats, config.max_df)
    index = {name: i for i, name in enumerate(CATEGORIES)}
    labels = np.asarray(
        [index.get(category_of_task(r.task) or "", -1) for r in records], dtype=np.int64
    )
    if (labels >= 0).sum() == 0:
        labels = np.full(len(records), index["knowledge"], dtype=np.int64)
    emb_c, struct_c, bias_c = _fit_categories(feats, labels, config)
    demands = _softmax(feats.hashed @ emb_c + feats.structural @ struct_c + bias_c)
    obs = _observations(records, config)
    if obs.prompt.shape[0] == 0:
        raise ValueError("no scores or levels in the training data")
    fit = _fit_irt(feats, demands, obs, config)
    dense = _dense(feats.structural, demands, config)
    k0 = feats.structural.shape[1]
    difficulty = (
        feats.hashed @ fit["hashed"]
        + dense @ fit["structural"]
        + fit["bias"]
        + demands @ fit["category_difficulty"]
    )
    hashed_part = feats.hashed @ fit["hashed"]
    # Centre the prompt factors on the training prompts and move each model's mean factor
    # term into its ability: the same predictions for every training model, but `ability`
    # now means the ability at an average prompt, which is what the rating anchors and a
    # new backend (no loadings) need.
    factor_mean = np.asarray(
        (feats.hashed @ fit["factor_hashed"] + dense @ fit["factor_structural"]).mean(axis=0)
    ).ravel()
    fit["ability"] = fit["ability"] + fit["loadings"] @ factor_mean
    models = {
        name: {
            "ability": round(float(fit["ability"][i]), 4),
            "discrimination": round(float(fit["discrimination"][i]), 4),
            **{c: round(float(fit["skills"][i, j]), 4) for j, c in enumerate(CATEGORIES)},
            "factors": [round(float(u), 4) for u in fit["loadings"][i]],
        }
        for i, name in enumerate(obs.models)
        if not obs.pseudo[i]
    }
    typical = {"demands": demands.mean(axis=0), "difficulty": float(difficulty.mean())}
    meta: dict[str, Any] = {
        "version": 2,
        "factors": config.factors,
        "seed": config.seed,
        "difficulty_center": round(float(np.median(difficulty)), 4),
        "difficulty_scale": round(float(np.std(difficulty)) or 1.0, 4),
        "wording_mean": round(float(hashed_part.mean()), 4),
        "models": models,
        "rating_map": _rating_map(models, config, typical),
        "typical_prompt": {
            "difficulty": round(typical["difficulty"], 4),
            "demands": [round(float(d), 4) for d in typical["demands"]],
        },
        "level_thresholds": {
            name.removeprefix(_LEVEL_PREFIX): round(float(fit["ability"][i]), 4)
            for i, name in enumerate(obs.models)
            if obs.pseudo[i]
        },
        "training": {
            "prompts": len(records),
            "observations": int(obs.prompt.shape[0]),
            "loss": round(fit["loss"], 5),
            "iterations": fit["iterations"],
        },
    }
    embedding = np.column_stack([fit["hashed"], emb_c, fit["factor_hashed"]]).astype(np.float32)
    structural = np.column_stack(
        [fit["structural"][:k0], struct_c, fit["factor_structural"][:k0]]
    ).astype(np.float32)
    interaction = interaction_mean = None
    if dense.shape[1] > k0:
        # [category, structural feature, logit column]; the demand columns stay 0 (the
        # demands are computed before this term, from the n-grams and structural features).
        n_cat, width = len(CATEGORIES), structural.shape[1]
        interaction = np.zeros((n_cat, k0, width), dtype=np.float32)
        interaction[:, :, 0] = fit["structural"][k0:].reshape(n_cat, k0)
        interaction[:, :, 1 + n_cat :] = fit["factor_structural"][k0:].reshape(n_cat, k0, -1)
        meta["version"] = 3
        # Each structural feature's mean interaction contribution to the difficulty.
        by_feature = (demands @ interaction[:, :, 0]) * feats.structural
        interaction_mean = by_feature.mean(axis=0).astype(np.float32)
    return BrainWeights(
        embedding=embedding,
        structural=structural,
        bias=np.concatenate([[fit["bias"]], bias_c, -factor_mean]).astype(np.float32),
        category_difficulty=np.asarray(fit["category_difficulty"], dtype=np.float32),
        structural_mean=feats.structural.mean(axis=0).astype(np.float32),
        demand_mean=demands.mean(axis=0).astype(np.float32),
        meta=meta,
        interaction=interaction,
        interaction_mean=interaction_mean,
    )


def plain_ability(model: dict[str, Any], typical: dict[str, Any]) -> float:
    """The ability a plain backend (discrimination 1, no skills, no loadings) needs to match
    ``model``'s mean logit over the training prompts (factors are centred, so they add 0)."""
    skills = np.asarray([model[c] for c in CATEGORIES], dtype=np.float64)
    return float(
        model["ability"]
        + skills @ np.asarray(typical["demands"], dtype=np.float64)
        - (model["discrimination"] - 1.0) * typical["difficulty"]
    )


def _rating_map(
    models: dict[str, dict[str, Any]], config: TrainConfig, typical: dict[str, Any]
) -> dict[str, Any]:
    """Line through two (rating, ability) anchors; a default line when they are absent.

    A rating describes a plain backend, so each anchor model enters with its plain-backend
    equivalent (``plain_ability``), not its raw ability: with per-model skills,
    discrimination and loadings the raw numbers sit on different footings.
    """
    (hi_name, hi_rating), (lo_name, lo_rating) = config.rating_anchors
    hi, lo = models.get(hi_name), models.get(lo_name)
    if hi is None or lo is None:
        return {"slope": 1.5, "intercept": 0.0, "anchors": []}
    hi_ability, lo_ability = plain_ability(hi, typical), plain_ability(lo, typical)
    if hi_ability <= lo_ability:
        return {"slope": 1.5, "intercept": 0.0, "anchors": []}

    def logit(q: float) -> float:
        return math.log(q / (1 - q))

    slope = (hi_ability - lo_ability) / (logit(hi_rating) - logit(lo_rating))
    intercept = hi_ability - slope * logit(hi_rating)
    return {
        "slope": round(slope, 4),
        "intercept": round(intercept, 4),
        "anchors": [[hi_name, hi_rating], [lo_name, lo_rating]],
        "anchor_abilities": [round(hi_ability, 4), round(lo_ability, 4)],
    }
