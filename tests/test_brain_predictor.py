"""The shipped learned predictor: contract with the router, monotonicity, explanations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from llmrouter.brain import LearnedPredictor
from llmrouter.brain.model import DEFAULT_WEIGHTS, PromptState
from llmrouter.policy.schema import BackendConfig
from llmrouter.routing.predictor import PromptProfile, QualityPredictor
from llmrouter.tokens import encode

GREETING = "Hi, how are you?"
OLYMPIAD = (
    "Determine, with a complete and rigorous proof, all functions f from the positive integers "
    "to the positive integers such that f(m^2 + f(n)) = f(m)^2 + n for all positive integers "
    "m and n. Proceed step by step: first show that f is injective, then compute f(1), then "
    "prove by strong induction that f(n) = n for every n, justifying every lemma, and finally "
    "show that no other solutions exist."
)


@pytest.fixture(scope="module")
def predictor() -> LearnedPredictor:
    return LearnedPredictor()


def backend(quality: float, model: str = "unknown-model", **extra: object) -> BackendConfig:
    return BackendConfig(
        name="b", model=model, quality=quality, base_url="http://127.0.0.1:9/v1", **extra
    )


def profile(predictor: LearnedPredictor, text: str) -> PromptProfile:
    return predictor.profile(text, encode(text))


def test_satisfies_the_router_protocol(predictor: LearnedPredictor) -> None:
    assert isinstance(predictor, QualityPredictor)
    result = profile(predictor, OLYMPIAD)
    assert isinstance(result, PromptProfile)
    assert 0.0 <= result.complexity <= 1.0
    assert isinstance(result.state, PromptState)
    assert 0 < len(result.signals) <= 5
    magnitudes = [abs(v) for _, v in result.signals]
    assert magnitudes == sorted(magnitudes, reverse=True)


def test_greeting_clears_the_floor_on_a_weak_backend(predictor: LearnedPredictor) -> None:
    assert predictor.probability(profile(predictor, GREETING), backend(0.35)) >= 0.7


def test_olympiad_proof_needs_a_strong_backend(predictor: LearnedPredictor) -> None:
    hard = profile(predictor, OLYMPIAD)
    weak = predictor.probability(hard, backend(0.35))
    strong = predictor.probability(hard, backend(0.9))
    assert weak < 0.7
    assert strong > weak + 0.15
    assert hard.complexity > profile(predictor, GREETING).complexity


@pytest.mark.parametrize("text", [GREETING, OLYMPIAD, "Write a Python function to sort a list."])
def test_probability_increases_with_rating(predictor: LearnedPredictor, text: str) -> None:
    prof = profile(predictor, text)
    probs = [predictor.probability(prof, backend(q)) for q in (0.1, 0.3, 0.5, 0.7, 0.9)]
    assert probs == sorted(probs)
    assert probs[0] < probs[-1]


def test_calibration_overrides_the_rating(predictor: LearnedPredictor) -> None:
    prof = profile(predictor, OLYMPIAD)
    low = predictor.probability(prof, backend(0.9, calibration={"ability": -3.0}))
    high = predictor.probability(prof, backend(0.1, calibration={"ability": 3.0}))
    assert low < predictor.probability(prof, backend(0.1)) < high


def test_known_model_ids_use_their_learned_ability(predictor: LearnedPredictor) -> None:
    prof = profile(predictor, OLYMPIAD)
    a = predictor.probability(prof, backend(0.2, model="gpt-4-1106-preview"))
    b = predictor.probability(prof, backend(0.8, model="openai/GPT-4-1106-preview"))
    assert a == pytest.approx(b)
    assert a > predictor.probability(prof, backend(0.2, model="mistral-7b-chat"))


def test_empty_and_huge_prompts(predictor: LearnedPredictor) -> None:
    empty = predictor.profile("", [])
    assert 0.0 <= empty.complexity <= 1.0
    text = "lorem ipsum dolor sit amet " * 4000
    huge = predictor.profile(text, encode(text))
    assert 0.0 <= predictor.probability(huge, backend(0.5)) <= 1.0


def test_profiles_from_another_predictor_are_accepted(predictor: LearnedPredictor) -> None:
    easy = PromptProfile(complexity=0.05)
    hard = PromptProfile(complexity=0.95)
    assert predictor.probability(easy, backend(0.5)) > predictor.probability(hard, backend(0.5))


def test_shipped_weights_are_small() -> None:
    total = sum(p.stat().st_size for p in Path(DEFAULT_WEIGHTS).parent.iterdir())
    assert total < 20 * 1024 * 1024


def test_brain_import_stays_light() -> None:
    code = (
        "import sys, llmrouter.brain; "
        "bad = [m for m in ('litellm', 'scipy', 'torch', 'sklearn') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
