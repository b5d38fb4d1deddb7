"""The per-request fast path of the brain gives the numpy path's numbers.

``BrainWeights.state`` (Python-int hashing for short prompts, one gather + one dot product,
the small dense parts on Python floats) must agree with ``state_numpy`` (whole-array numpy,
the previous implementation) on every kind of prompt, on both sides of the short-prompt
threshold; ``structural_features`` and ``hashed_ngram_list`` must agree with their
straightforward definitions.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from llmrouter.brain import LearnedPredictor
from llmrouter.brain.abilities import BackendParams
from llmrouter.brain.features import (
    STRUCTURAL_NAMES,
    hashed_ngram_list,
    hashed_ngrams,
    structural_features,
)
from llmrouter.brain.model import SHORT_PROMPT_TOKENS, PromptState
from llmrouter.policy.schema import BackendConfig
from llmrouter.tokens import encode

TOLERANCE = 1e-5


def reference_structural(text: str, n_tokens: int) -> tuple[float, ...]:
    """The features' definition, written plainly (the shipped version is tuned for speed)."""
    n_chars = max(len(text), 1)
    latex = text.count("\\") + text.count("$") + text.count("^") + text.count("_{")
    no_digits = str.maketrans("", "", "0123456789")
    digits = n_chars - len(text.translate(no_digits)) if text else 0
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


PIECES = [
    "Thanks!",
    "Good morning!",
    "Hello there, how are you today? request 123-4567",
    "What colour is the sky?",
    "Prove that there are infinitely many primes congruent to 3 mod 4.",
    "Let $f(x) = x^2 + 3x$. Compute $\\int_0^1 f(x)\\,dx$ and $\\frac{d}{dx} f$.",
    "```python\ndef add(a, b):\n    return a + b;\n```",
    "Résumé: naïve café, 東京都, Ελληνικά, русский текст, emoji 🚀🔥, Arabic ٣٤٥ digits.",
    "SELECT name FROM users WHERE id = 42;\nUPDATE t SET x = 1;",
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many in May.",
    "Question: Which of the following is a prime? A. 4 B. 6 C. 7 D. 9\nAnswer:",
    "   \n\t  ",
    "?",
    "1234567890",
]


def prompts() -> list[str]:
    rng = random.Random(7)
    out = ["", "a", " ", *PIECES]
    for _ in range(120):
        out.append(" ".join(rng.choice(PIECES) for _ in range(rng.randint(1, 4))))
    # Around the short-prompt threshold (token counts SHORT_PROMPT_TOKENS - 2 ... + 2).
    for extra in range(-2, 3):
        out.append("word " * (SHORT_PROMPT_TOKENS + extra))
    out.append("The quick brown fox jumps over the lazy dog. " * 200)  # ~2,000 tokens
    out.append("Consider the integral $\\int x^n dx$. " * 700)  # past the head/tail window
    return out


@pytest.fixture(scope="module")
def predictor() -> LearnedPredictor:
    return LearnedPredictor()


def test_threshold_prompts_straddle_it() -> None:
    counts = {len(encode("word " * (SHORT_PROMPT_TOKENS + k))) for k in range(-2, 3)}
    assert min(counts) <= SHORT_PROMPT_TOKENS < max(counts)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 17, 64, 200])
def test_python_hashing_matches_numpy(n: int) -> None:
    rng = random.Random(n)
    for high in (300, 200_000, 1 << 31):
        ids = [rng.randrange(high) for _ in range(n)]
        assert hashed_ngram_list(ids) == hashed_ngrams(ids).tolist()


def test_structural_features_match_their_definition() -> None:
    texts = [*prompts(), "\ud800 lone surrogate 12", "٣٤٥ 99", "a" * 5000 + "1"]
    for text in texts:
        for n_tokens in (0, 1, len(text), 2048, 2049, 10_000):
            assert structural_features(text, n_tokens) == reference_structural(text, n_tokens)


def _assert_same(fast: tuple[PromptState, list], slow: tuple[PromptState, list]) -> None:
    (a, named_a), (b, named_b) = fast, slow
    assert abs(a.difficulty - b.difficulty) <= TOLERANCE
    assert len(a.demands) == len(b.demands) and len(a.factors) == len(b.factors)
    assert max(abs(x - y) for x, y in zip(a.demands, b.demands, strict=True)) <= TOLERANCE
    for x, y in zip(a.factors, b.factors, strict=True):
        assert abs(x - y) <= TOLERANCE
    assert [name for name, _ in named_a] == [name for name, _ in named_b]
    for (_, x), (_, y) in zip(named_a, named_b, strict=True):
        assert abs(x - y) <= TOLERANCE


def test_state_matches_the_numpy_path(predictor: LearnedPredictor) -> None:
    weights = predictor.weights
    for text in prompts():
        ids = encode(text)
        slow = weights.state_numpy(text, ids)
        _assert_same(weights.state(text, ids), slow)
        # The same ids as a tuple and as a numpy array take the other branches.
        _assert_same(weights.state(text, tuple(ids)), slow)
        _assert_same(weights.state(text, np.asarray(ids, dtype=np.int64)), slow)


def _reference_signals(predictor: LearnedPredictor, text: str) -> list[tuple[str, float]]:
    """The largest contributions, the two digit features shown as one ("numbers") and a
    structural feature the prompt lacks named "no ..." (except length)."""
    ids = encode(text)
    _, contributions = predictor.weights.state_numpy(text, ids)
    values = dict(contributions)
    values["numbers"] += values.pop("digits")
    present = dict(zip(STRUCTURAL_NAMES, structural_features(text, len(ids)), strict=True))
    named = [
        (f"no {name}" if name != "length" and present.get(name, 1.0) == 0 else name, value)
        for name, value in values.items()
    ]
    ranked = sorted(named, key=lambda item: -abs(item[1]))
    return [(name, value) for name, value in ranked[:5] if abs(value) >= 0.05]


def test_profile_matches_the_numpy_path(predictor: LearnedPredictor) -> None:
    for text in prompts():
        ids = encode(text)
        profile = predictor.profile(text, ids)
        state, _ = predictor.weights.state_numpy(text, ids)
        assert abs(profile.complexity - predictor.weights.complexity(state.difficulty)) <= 1e-5
        expected = _reference_signals(predictor, text)
        assert [name for name, _ in profile.signals] == [name for name, _ in expected]
        for (_, shown), (_, value) in zip(profile.signals, expected, strict=True):
            # Rounded to 3 decimals: the same digits unless the two values straddle a
            # rounding boundary (they differ by float32 rounding only).
            near_boundary = abs(abs(value * 1000.0 - math.floor(value * 1000.0)) - 0.5) < 0.01
            assert shown == round(value, 3) or near_boundary


def _backend(**fields: object) -> BackendConfig:
    base: dict[str, object] = {"name": "b", "model": "unknown", "base_url": "http://127.0.0.1:9/v1"}
    base.update(fields)
    return BackendConfig(**base)  # type: ignore[arg-type]


def test_probability_matches_probability_of(predictor: LearnedPredictor) -> None:
    backends = [
        _backend(quality=0.35),
        _backend(quality=0.9),
        _backend(model="gpt-4-1106-preview"),
        _backend(model="openai/mixtral-8x7b-instruct-v0.1"),
        _backend(quality=0.6, calibration={"ability": 0.4, "discrimination": 1.1, "math": 0.2}),
    ]
    for text in prompts()[:40]:
        profile = predictor.profile(text, encode(text))
        assert isinstance(profile.state, PromptState)
        for backend in backends:
            expected = predictor.probability_of(profile.state, predictor.params(backend))
            assert abs(predictor.probability(profile, backend) - expected) <= 1e-12


def test_probability_follows_edits_of_a_backend(predictor: LearnedPredictor) -> None:
    profile = predictor.profile("Thanks!", encode("Thanks!"))
    backend = _backend(quality=0.35)
    before = predictor.probability(profile, backend)
    backend.quality = 0.9
    assert predictor.probability(profile, backend) > before
    backend.calibration = {"ability": -5.0}
    low = predictor.probability(profile, backend)
    assert low < before
    assert low == predictor.probability_of(profile.state, BackendParams(-5.0))
