"""The guarded semantic cache: hits on rewordings, refusals on changed meaning."""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import llmrouter.cache.semantic as semantic_module
from llmrouter.cache.embedding import HashingEmbedder, canonical_words
from llmrouter.cache.guards import conflicts, extract_facts
from llmrouter.cache.semantic import SemanticCache
from llmrouter.cache.semantic_eval import (
    change_number,
    evaluate_cache,
    polite_preamble,
    reorder_clauses,
    toggle_negation,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
GSM8K = SHARED / "routing" / "routellm" / "gsm8k" / "gsm8k_responses.csv"

PROBLEM = (
    "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning. "
    "She sells the rest at the Springfield market for $2 per egg. "
    "How much does she make every day?"
)


def ask(text: str, system: str | None = None) -> list[dict[str, Any]]:
    messages = [{"role": "system", "content": system}] if system else []
    return [*messages, {"role": "user", "content": text}]


@pytest.fixture
def cache() -> SemanticCache:
    cache = SemanticCache()
    cache.put(ask(PROBLEM), "18")
    cache.put(ask("What is 37 × 12?"), "444")
    return cache


@pytest.mark.parametrize(
    "variant",
    [
        PROBLEM.lower(),
        PROBLEM.replace(" ", "  ").replace(".", "") + "\n",
        "Hi! Could you please help me with this? " + PROBLEM,
        "How much does she make every day? " + PROBLEM.rsplit(" How", 1)[0],
    ],
)
def test_rewordings_hit(cache: SemanticCache, variant: str) -> None:
    result = cache.lookup(ask(variant))
    assert result.hit and result.value == "18"
    assert result.similarity >= cache.threshold


@pytest.mark.parametrize(
    ("variant", "guard"),
    [
        (PROBLEM.replace("16", "17"), "numbers"),
        (PROBLEM.replace("three", "four"), "numbers"),
        (PROBLEM.replace("She eats", "She does not eat"), "negation"),
        (PROBLEM.replace("Springfield", "Shelbyville"), "entities"),
        (PROBLEM.replace("per day", "per week"), "units"),
        (PROBLEM.replace("every day?", "every day at most?"), "contrast"),
    ],
)
def test_changed_meaning_is_refused_by_the_right_guard(
    cache: SemanticCache, variant: str, guard: str
) -> None:
    result = cache.lookup(ask(variant))
    assert not result.hit and result.value is None
    if result.similarity >= cache.threshold:
        assert guard in result.refused_by
    assert guard in conflicts(extract_facts(PROBLEM), extract_facts(variant))


def test_the_classic_false_hit_is_refused(cache: SemanticCache) -> None:
    assert cache.get(ask("What is 37 × 13?")) is None
    assert cache.get(ask("what is 37 × 12")) == "444"
    assert cache.get(ask("What is 37 + 12?")) is None


def test_code_and_math_must_match_exactly() -> None:
    a = extract_facts("Why does `sorted(xs, key=len)` fail?")
    b = extract_facts("Why does `sorted(xs, key=abs)` fail?")
    assert "code" in conflicts(a, b)
    c = extract_facts("Solve $x^2 + y = z$.")
    d = extract_facts("Solve $x^2 - y = z$.")
    assert "code" in conflicts(c, d)
    assert conflicts(extract_facts("Solve $x^2+y = z$."), c) == []


def test_digits_inside_names_count_as_numbers() -> None:
    assert "numbers" in conflicts(
        extract_facts("plot x_1 and d2"), extract_facts("plot x_11 and d2")
    )


def test_namespaces_and_conversation_context_are_isolated(cache: SemanticCache) -> None:
    cache.put(ask("Name a prime number.", system="Be terse."), "7", namespace="tenant-a/gpt")
    assert cache.get(ask("Name a prime number.", system="Be terse."), namespace="tenant-a/gpt")
    assert (
        cache.get(ask("Name a prime number.", system="Be terse."), namespace="tenant-b/gpt") is None
    )
    assert (
        cache.get(ask("Name a prime number.", system="Be verbose."), namespace="tenant-a/gpt")
        is None
    )
    assert cache.get(ask("Name a prime number."), namespace="tenant-a/gpt") is None
    assert cache.get(ask(PROBLEM), namespace="tenant-a/gpt") is None


def test_prompts_with_images_are_not_cached_and_images_in_context_count() -> None:
    cache = SemanticCache()

    def with_image(url: str) -> list[dict[str, Any]]:
        parts = [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": url}},
        ]
        return [{"role": "user", "content": parts}]

    cache.put(with_image("https://example.invalid/cat.png"), "a cat")
    assert len(cache) == 0
    assert cache.get(with_image("https://example.invalid/dog.png")) is None
    follow_up = [{"role": "assistant", "content": "A cat."}, *ask("What colour is it?")]
    cache.put([*with_image("https://example.invalid/cat.png"), *follow_up], "grey")
    assert cache.get([*with_image("https://example.invalid/cat.png"), *follow_up]) == "grey"
    assert cache.get([*with_image("https://example.invalid/dog.png"), *follow_up]) is None


def test_threshold_is_respected() -> None:
    strict = SemanticCache(threshold=1.0)
    strict.put(ask("List the planets of the solar system in order"), "...")
    assert strict.get(ask("list the planets of the solar system in order")) == "..."
    assert strict.get(ask("List the planets of the solar system in order, briefly")) is None
    with pytest.raises(ValueError):
        SemanticCache(threshold=0)


def test_ttl_and_eviction() -> None:
    now = [1000.0]
    cache = SemanticCache(max_entries=2, ttl=60, clock=lambda: now[0])
    cache.put(ask("first question about tides"), 1)
    cache.put(ask("second question about winds"), 2)
    cache.put(ask("third question about clouds"), 3)
    assert len(cache) == 2
    assert cache.get(ask("first question about tides")) is None
    assert cache.get(ask("third question about clouds")) == 3
    now[0] += 61
    assert cache.get(ask("third question about clouds")) is None


def test_putting_the_same_prompt_replaces_its_value(cache: SemanticCache) -> None:
    cache.put(ask(PROBLEM), "eighteen")
    assert cache.get(ask(PROBLEM)) == "eighteen"
    assert len(cache) == 2


def test_an_embedding_function_can_be_supplied() -> None:
    calls: list[Sequence[str]] = []

    def embed(texts: Sequence[str]) -> list[list[float]]:
        calls.append(texts)
        # a stand-in for /v1/embeddings: which animal the text is about
        return [[float("cat" in t.lower()), float("dog" in t.lower()), 0.1] for t in texts]

    cache = SemanticCache(threshold=0.95, embed=embed)
    cache.put(ask("Tell me about cats."), "meow")
    assert cache.get(ask("Describe a cat for me")) == "meow"
    assert cache.get(ask("Tell me about dogs.")) is None
    assert all(len(batch) == 1 for batch in calls)


def test_indexed_search_finds_the_same_entries_as_exhaustive_search(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(semantic_module, "_EXACT_SEARCH_ROWS", 50)
    rng = random.Random(5)
    words = [f"w{i}" for i in range(3000)]
    prompts = [" ".join(rng.choices(words, k=12)) + f" item {i}" for i in range(400)]
    cache = SemanticCache()
    for index, prompt in enumerate(prompts):
        cache.put(ask(prompt), index)
    for index in range(0, 400, 37):
        assert cache.get(ask("Please, " + prompts[index].upper())) == index
        assert cache.get(ask(prompts[index].replace(f"item {index}", "item 9999"))) is None


def test_compaction_after_eviction_keeps_live_entries_searchable() -> None:
    cache = SemanticCache(max_entries=100)
    for i in range(400):
        cache.put(ask(f"question number {i} about topic {i * 7}"), i)
    assert len(cache) == 100
    assert cache.get(ask("question number 399 about topic 2793")) == 399
    assert cache.get(ask("question number 10 about topic 70")) is None


def test_local_embedding_is_deterministic_and_normalised() -> None:
    embedder = HashingEmbedder(dim=64)
    vectors = embedder(["Hello, World!", "hello world", "something else entirely"])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert np.allclose(vectors[0], vectors[1])
    assert canonical_words("Please, what is 2 + 2?") == ["what", "is", "2", "+", "2"]


def test_perturbations_do_what_they_say() -> None:
    rng = random.Random(0)
    changed = change_number(PROBLEM, rng)
    assert changed is not None and changed != PROBLEM
    assert extract_facts(changed).numbers != extract_facts(PROBLEM).numbers
    negated = toggle_negation("The sum is even. What is x?", rng)
    assert negated == "The sum is not even. What is x?"
    assert toggle_negation(negated, rng) == "The sum is even. What is x?"
    assert toggle_negation("Why isn't $a$ prime?", rng) == "Why is $a$ prime?"
    assert reorder_clauses("A is 3. B is 4. What is A+B?", rng) == "What is A+B? A is 3. B is 4."
    assert polite_preamble("X", rng).endswith("X")


@pytest.mark.skipif(not GSM8K.exists(), reason="needs ../shared/data (GSM8K)")
def test_gsm8k_sample_has_no_false_hits_and_most_rewordings_hit() -> None:
    with GSM8K.open(encoding="utf-8", newline="") as handle:
        prompts = [row["prompt"] for row in csv.DictReader(handle)][:150]
    report = evaluate_cache(prompts, SemanticCache(), seed=1)
    assert report.trials["number"] + report.trials["negation"] >= 250
    assert report.false_hit_examples == []
    assert report.rate(["whitespace", "casing", "punctuation", "reorder", "preamble"]) >= 0.5
