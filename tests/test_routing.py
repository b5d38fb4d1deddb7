"""The decision rule, with no calls: exclusions, the floor, cost, pinning."""

from __future__ import annotations

import pytest

from llmrouter import ContextTooLarge, InvalidRequest, NoBackendAvailable, Router, UnknownBackend

from conftest import PolicyFactory, two_tier

GREETING = [{"role": "user", "content": "Hi! How are you?"}]
PROOF = [
    {
        "role": "user",
        "content": (
            "Prove that there are infinitely many primes p with p ≡ 3 (mod 4). Give a rigorous "
            "multi-step proof: first state the lemma about products of primes congruent to 1 "
            "mod 4, then derive a contradiction step by step, and justify every step. Then "
            "show that the same argument fails for p ≡ 1 (mod 4), and explain which step "
            "breaks and why. Finally, derive a bound on the n-th such prime."
        ),
    }
]
URL = "http://127.0.0.1:9/v1"


@pytest.fixture
def router(make_policy: PolicyFactory) -> Router:
    return Router(make_policy(two_tier(URL), routing={"quality_floor": 0.7, "reference": "large"}))


def test_greeting_goes_to_the_cheap_backend(router: Router) -> None:
    decision = router.route(GREETING)
    assert decision.backend == "small"
    small = decision.candidate("small")
    assert small is not None and small.predicted_quality >= 0.7
    assert "cheapest" in decision.reason


def test_hard_proof_goes_to_the_strong_backend(router: Router) -> None:
    decision = router.route(PROOF)
    assert decision.backend == "large"
    small, large = decision.candidate("small"), decision.candidate("large")
    assert small is not None and large is not None
    assert small.predicted_quality < 0.7
    assert large.predicted_quality > small.predicted_quality
    assert decision.complexity > router.route(GREETING).complexity


def test_candidates_carry_quality_cost_and_reason(router: Router) -> None:
    decision = router.route(GREETING)
    names = [c.name for c in decision.candidates]
    assert sorted(names) == ["large", "small"]
    for candidate in decision.candidates:
        assert 0 < candidate.predicted_quality < 1
        assert candidate.estimated_cost_usd > 0
        assert candidate.excluded_reason is None
    small, large = decision.candidate("small"), decision.candidate("large")
    assert small is not None and large is not None
    assert small.estimated_cost_usd < large.estimated_cost_usd
    # Cost = prompt tokens × input price + expected output tokens × output price.
    expected = (decision.prompt_tokens * 0.10 + 256 * 0.40) / 1e6
    assert small.estimated_cost_usd == pytest.approx(expected)


def test_quality_floor_is_a_monotone_knob(router: Router) -> None:
    prompt = [{"role": "user", "content": "Compare quicksort and mergesort and analyze tradeoffs."}]
    chosen = [router.route(prompt, quality_floor=f / 10).backend for f in range(11)]
    costs = {"small": 0, "large": 1}
    assert [costs[c] for c in chosen] == sorted(costs[c] for c in chosen)
    assert chosen[0] == "small" and chosen[-1] == "large"


def test_capabilities_exclude_backends(router: Router) -> None:
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {}}}]
    decision = router.route(GREETING, tools=tools)
    assert decision.backend == "large"
    small = decision.candidate("small")
    assert small is not None and small.excluded_reason == "lacks capability: tools"
    json_mode = router.route(GREETING, response_format={"type": "json_object"})
    assert json_mode.backend == "large"
    image = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        }
    ]
    with pytest.raises(NoBackendAvailable, match="vision"):
        router.route(image)


def test_context_window_excludes_and_explains(router: Router) -> None:
    long_prompt = [{"role": "user", "content": "word " * 9000}]
    with pytest.raises(ContextTooLarge) as info:
        router.route(long_prompt)
    message = str(info.value)
    assert "8192" in message and "too many" in message
    assert "'small'" in message or "'large'" in message


def test_max_tokens_counts_against_the_window(router: Router) -> None:
    prompt = [{"role": "user", "content": "word " * 4000}]
    assert router.route(prompt).backend in ("small", "large")
    with pytest.raises(ContextTooLarge, match="max_tokens"):
        router.route(prompt, max_tokens=5000)


def test_cost_cap_excludes_expensive_backends(router: Router) -> None:
    decision = router.route(PROOF, max_cost_usd=0.001)
    assert decision.backend == "small"
    large = decision.candidate("large")
    assert large is not None and large.excluded_reason is not None
    assert "max_cost_usd" in large.excluded_reason


def test_latency_cap_uses_observed_speed(router: Router) -> None:
    router.latency.observe("large", ttft_ms=2000, total_ms=6000, completion_tokens=200)
    decision = router.route(PROOF, max_latency_ms=1000)
    large = decision.candidate("large")
    assert large is not None and "max_latency_ms" in (large.excluded_reason or "")
    assert decision.backend == "small"


def test_open_circuit_excludes_a_backend(router: Router) -> None:
    for _ in range(router.policy.fallback.circuit_breaker.failure_threshold):
        router.health.record_failure("large")
    decision = router.route(PROOF)
    assert decision.backend == "small"
    large = decision.candidate("large")
    assert large is not None and "circuit open" in (large.excluded_reason or "")


def test_pinning_a_backend(router: Router) -> None:
    decision = router.route(PROOF, model="small")
    assert decision.backend == "small" and decision.pinned
    with pytest.raises(UnknownBackend) as info:
        router.route(GREETING, model="gpt-9")
    assert "small" in str(info.value) and "large" in str(info.value)
    assert info.value.status_code == 404


@pytest.mark.parametrize(
    "messages",
    [[], "hello", [{"role": "wizard", "content": "x"}], [{"role": "user", "content": 3}], [1]],
)
def test_bad_messages_are_rejected_clearly(router: Router, messages: object) -> None:
    with pytest.raises(InvalidRequest) as info:
        router.route(messages)  # type: ignore[arg-type]
    assert info.value.status_code == 400
    assert info.value.param is not None and info.value.param.startswith("messages")


def test_bad_options_are_rejected(router: Router) -> None:
    with pytest.raises(InvalidRequest, match="quality_floor"):
        router.route(GREETING, quality_floor=2)
    with pytest.raises(InvalidRequest, match="max_cost_usd"):
        router.route(GREETING, max_cost_usd=-1)
