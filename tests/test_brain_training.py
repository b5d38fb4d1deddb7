"""Training on small synthetic data: it learns difficulty and abilities, reproducibly."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest

from llmrouter.brain.abilities import resolve_params
from llmrouter.brain.dataset import Record
from llmrouter.brain.folds import fold_groups, fold_of
from llmrouter.brain.model import CATEGORIES, BrainWeights, PromptState
from llmrouter.brain.predictor import LearnedPredictor
from llmrouter.brain.training import (
    TrainConfig,
    _drop_common,
    featurize,
    plain_ability,
    train,
)
from llmrouter.tokens import encode

EASY = ["apple", "river", "green", "table", "music", "garden", "bread", "window"]
HARD = ["eigenvalue", "homotopy", "cohomology", "manifold", "tensor", "lemma", "ideal", "sheaf"]
ABILITIES = {"weak-model": -1.0, "mid-model": 0.5, "strong-model": 2.0}


def synthetic(n: int, seed: int) -> tuple[list[Record], list[float]]:
    rng = random.Random(seed)
    records, truth = [], []
    for i in range(n):
        hard = rng.randint(0, 6)
        words = rng.choices(HARD, k=hard) + rng.choices(EASY, k=8 - hard)
        rng.shuffle(words)
        difficulty = -2.0 + 0.8 * hard
        scores = {
            m: float(rng.random() < 1 / (1 + math.exp(-(a - difficulty))))
            for m, a in ABILITIES.items()
        }
        records.append(Record(id=f"s{i}", text=" ".join(words), scores=scores))
        truth.append(difficulty)
    return records, truth


@pytest.fixture(scope="module")
def trained() -> BrainWeights:
    records, _ = synthetic(400, seed=1)
    # An eight-word vocabulary puts every word in most prompts: keep common buckets here.
    return train(records, TrainConfig(max_iter=80, max_df=1.0))


def test_learns_model_order(trained: BrainWeights) -> None:
    # Judged by the predicted chance of success on unseen prompts: a raw ability is not
    # comparable across models whose discrimination, skills and loadings differ.
    records, _ = synthetic(200, seed=7)
    states = [trained.state(r.text, encode(r.text))[0] for r in records]
    chance = {
        m: sum(
            LearnedPredictor.probability_of(s, resolve_params(m, 0.5, None, trained.meta))
            for s in states
        )
        / len(states)
        for m in ABILITIES
    }
    assert chance["weak-model"] + 0.05 < chance["mid-model"] < chance["strong-model"] - 0.05


def test_difficulty_generalises_to_unseen_prompts(trained: BrainWeights) -> None:
    records, truth = synthetic(200, seed=2)
    predicted = [trained.state(r.text, encode(r.text))[0].difficulty for r in records]
    assert np.corrcoef(predicted, truth)[0, 1] > 0.6


def test_training_is_reproducible() -> None:
    records, _ = synthetic(120, seed=3)
    a = train(records, TrainConfig(max_iter=20, seed=7))
    b = train(records, TrainConfig(max_iter=20, seed=7))
    assert np.array_equal(a.embedding, b.embedding)
    assert a.meta == b.meta


def test_save_and_load_round_trip(trained: BrainWeights, tmp_path: object) -> None:
    from pathlib import Path

    stem = trained.save(Path(str(tmp_path)) / "brain")
    predictor = LearnedPredictor(stem)
    text = "eigenvalue homotopy sheaf lemma tensor"
    state = predictor.profile(text, encode(text)).state
    expected = trained.state(text, encode(text))[0]
    assert state.difficulty == pytest.approx(expected.difficulty, abs=1e-2)


def test_levels_alone_train_a_difficulty_scale() -> None:
    rng = random.Random(4)
    records = []
    for i in range(200):
        level = rng.randint(1, 5)
        words = rng.choices(HARD, k=level) + rng.choices(EASY, k=6 - level)
        records.append(Record(id=f"l{i}", text=" ".join(words), level=level))
    weights = train(records, TrainConfig(max_iter=60))
    easy = weights.state("apple river green table bread", encode("apple river green table bread"))
    hard = weights.state(
        "eigenvalue homotopy sheaf lemma tensor", encode("eigenvalue homotopy sheaf lemma tensor")
    )
    assert hard[0].difficulty > easy[0].difficulty


def test_folds_are_stable_and_whitespace_blind() -> None:
    assert fold_of("What is  2+2?") == fold_of("What is 2+2?")
    assert {fold_of(f"prompt {i}") for i in range(100)} == set(range(5))


def _question(i: int) -> str:
    rng = random.Random(i)
    words = [rng.choice(EASY + HARD) for _ in range(20)]
    return f"Question {i}: " + " ".join(words) + "?"


def test_fold_groups_keep_a_question_and_its_rewrapped_copy_together() -> None:
    """The same question in two sets, once bare and once under a shared few-shot template
    with an answer-format line: the copies share a fold whatever their exact-text folds."""
    template = "Answer like the examples. " + " ".join(EASY * 3) + "\n\n"
    bare = [_question(i) for i in range(200)]
    wrapped = [f"{template}{q.upper()}\nPut your final answer in \\boxed{{}}." for q in bare]
    texts = bare + wrapped
    folds = fold_groups(texts)
    assert folds[:200] == folds[200:]
    # The copies' own folds disagree often: without the grouping they would leak.
    assert sum(fold_of(b) != fold_of(w) for b, w in zip(bare, wrapped, strict=True)) > 100
    # A prompt without copies keeps its own fold, and the template joins nothing:
    # every fold still gets prompts.
    lone = "A question nobody else asks, about " + " ".join(HARD) + " and more words here"
    assert fold_groups([*texts, lone])[-1] == fold_of(lone)
    assert set(folds) == set(range(5))
    # The assignment does not depend on the order of the prompts.
    assert fold_groups(texts[::-1])[::-1] == folds


def test_factors_learn_a_prompt_by_model_interaction() -> None:
    """Two models of equal ability, each good on a different topic: the factors separate them."""
    rng = random.Random(5)
    records = []
    for i in range(300):
        topic = rng.random() < 0.5
        words = rng.choices(HARD if topic else EASY, k=6)
        scores = {
            "left-model": float(rng.random() < (0.9 if topic else 0.2)),
            "right-model": float(rng.random() < (0.2 if topic else 0.9)),
        }
        records.append(Record(id=f"f{i}", text=" ".join(words), scores=scores))
    # Six-word vocabularies: every word is in more than a quarter of the prompts, so keep
    # the common buckets here (max_df=1.0); the shipped default drops them.
    weights = train(records, TrainConfig(max_iter=150, factors=2, max_df=1.0))
    predictor = LearnedPredictor(weights)
    left = resolve_params("left-model", 0.5, None, weights.meta)
    right = resolve_params("right-model", 0.5, None, weights.meta)
    hard = predictor.profile("sheaf lemma tensor ideal", encode("sheaf lemma tensor ideal"))
    easy = predictor.profile("apple river bread table", encode("apple river bread table"))
    assert isinstance(hard.state, PromptState) and isinstance(easy.state, PromptState)
    assert len(hard.state.factors) == 2
    p = LearnedPredictor.probability_of
    assert p(hard.state, left) > p(hard.state, right) + 0.3
    assert p(easy.state, right) > p(easy.state, left) + 0.3


def test_common_buckets_are_dropped_without_renormalising() -> None:
    texts = ["the cat sat.", "the dog ran.", "the fish swam.", "a bird flew"]
    feats = featurize(texts)
    kept = _drop_common(feats, 0.5)
    common = np.bincount(feats.hashed.indices, minlength=feats.hashed.shape[1]) > 2
    assert common.any()
    assert not np.isin(kept.hashed.indices, np.flatnonzero(common)).any()
    # Surviving entries keep their value (count / all n-grams of the prompt).
    dense, before = kept.hashed.toarray(), feats.hashed.toarray()
    assert np.array_equal(dense[:, ~common], before[:, ~common])
    assert _drop_common(feats, 1.0) is feats


def test_factors_are_centred_and_ratings_match_the_anchor_models() -> None:
    """Training models keep their predictions; a plain backend rated like an anchor model
    gets that model's mean logit over the training prompts."""
    records, _ = synthetic(300, seed=6)
    config = TrainConfig(
        max_iter=120,
        factors=2,
        max_df=1.0,
        rating_anchors=(("strong-model", 0.9), ("weak-model", 0.35)),
    )
    weights = train(records, config)
    states = [weights.state(r.text, encode(r.text))[0] for r in records]
    factors = np.asarray([s.factors for s in states])
    assert np.abs(factors.mean(axis=0)).max() < 1e-3
    typical = weights.meta["typical_prompt"]
    # Within float16 rounding: the weights are held (and shipped) in float16.
    assert typical["difficulty"] == pytest.approx(np.mean([s.difficulty for s in states]), rel=1e-3)

    def mean_logit(params: object) -> float:
        total = 0.0
        for s in states:
            p = LearnedPredictor.probability_of(s, params)  # type: ignore[arg-type]
            p = min(max(p, 1e-12), 1 - 1e-12)
            total += math.log(p / (1 - p))
        return total / len(states)

    for model, rating in config.rating_anchors:
        known = resolve_params(model, 0.5, None, weights.meta)
        rated = resolve_params("some-new-model", rating, None, weights.meta)
        assert rated.ability == pytest.approx(
            plain_ability(weights.meta["models"][model], typical), abs=1e-3
        )
        assert mean_logit(rated) == pytest.approx(mean_logit(known), abs=0.02)


def test_structural_effects_can_depend_on_the_prompts_kind(tmp_path: Path) -> None:
    """Length makes maths word problems hard and leaves trivia alone: the demand x structural
    terms learn that, and the fast path, the numpy path and a saved copy agree on them."""
    rng = random.Random(8)
    records = []
    for i in range(400):
        maths = i % 2 == 0
        n = rng.randint(2, 40)
        words = rng.choices(["apples", "cost", "each", "total", "sum", "3", "7"], k=n)
        if not maths:
            words = rng.choices(["capital", "river", "king", "year", "born", "city"], k=n)
        # Longer maths prompts are harder; trivia difficulty does not depend on length.
        difficulty = -1.0 + (0.12 * n if maths else 1.5)
        p = 1 / (1 + math.exp(difficulty))
        scores = {"model": float(rng.random() < p), "other": float(rng.random() < p)}
        task = "gsm8k" if maths else "mmlu/geography"
        records.append(Record(id=f"k{i}", text=" ".join(words), scores=scores, task=task))
    weights = train(records, TrainConfig(max_iter=150, factors=2, l2_interaction=1e-4))
    assert weights.interaction is not None and weights.meta["version"] == 3
    # interaction[category, feature, 0]: the demand x structural weight in the difficulty.
    length, maths, knowledge = 0, CATEGORIES.index("math"), CATEGORIES.index("knowledge")
    assert weights.interaction[maths, length, 0] - weights.interaction[knowledge, length, 0] > 1.0
    assert train(records, TrainConfig(max_iter=5, l2_interaction=0.0)).interaction is None
    loaded = BrainWeights.load(weights.save(tmp_path / "brain"))
    assert loaded.interaction is not None
    for text in ("apples cost 3 each total 7", "capital river " * 20, "", "sum"):
        fast, slow = weights.state(text, encode(text)), weights.state_numpy(text, encode(text))
        again = loaded.state(text, encode(text))
        assert again[0].difficulty == pytest.approx(fast[0].difficulty, abs=1e-9)
        assert again[0].factors == pytest.approx(fast[0].factors, abs=1e-9)
        assert fast[0].difficulty == pytest.approx(slow[0].difficulty, abs=1e-5)
        assert np.allclose(fast[0].factors, slow[0].factors, atol=1e-5)
        assert np.allclose([v for _, v in fast[1]], [v for _, v in slow[1]], atol=1e-5)
    # The contributions still add up to the difficulty, up to a constant.
    totals = []
    for text in ("apples cost 3 each total 7", "capital river " * 20, "sum"):
        state, named = weights.state(text, encode(text))
        totals.append(state.difficulty - sum(v for _, v in named))
    assert max(totals) - min(totals) < 1e-4
