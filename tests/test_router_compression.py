"""Compression inside the router: after routing, recorded in the ledger, opt-out per call."""

from __future__ import annotations

import pytest

from llmrouter import ChatCompletion, Router
from llmrouter.tokens import count_message_tokens

from conftest import PolicyFactory, two_tier
from upstream import Upstream

FILLER = [
    "The annual report describes the company's operations across several regions.",
    "Weather conditions in the northern warehouse delayed two shipments in March.",
    "The cafeteria menu was updated with more vegetarian options during the year.",
    "Employee headcount grew modestly, mostly in the customer support organisation.",
    "A new logo was introduced after a lengthy branding consultation process.",
]
KEY_FACT = "The audit found that the Lisbon subsidiary overstated revenue by 4.2 million euros."


def long_document() -> str:
    sentences = []
    for i in range(240):
        sentences.append(f"{FILLER[i % len(FILLER)]} (item {i})")
        if i == 150:
            sentences.append(KEY_FACT)
    return " ".join(sentences)


MESSAGES = [
    {
        "role": "user",
        "content": long_document()
        + "\n\nQuestion: By how much did the Lisbon subsidiary overstate revenue?",
    }
]


@pytest.fixture
def router(make_policy: PolicyFactory, upstream: Upstream) -> Router:
    path = make_policy(
        two_tier(upstream.base_url),
        cache={"enabled": False},
        compression={"enabled": True, "ratio": 3.0, "min_tokens": 500},
    )
    return Router(path)


def test_long_prompt_is_compressed_and_the_saving_recorded(
    router: Router, upstream: Upstream
) -> None:
    result = router.complete(MESSAGES)
    assert isinstance(result, ChatCompletion)
    sent = upstream.requests[-1]["body"]["messages"]
    before, after = count_message_tokens(MESSAGES), count_message_tokens(sent)
    assert after * 2 < before
    assert "4.2 million euros" in sent[-1]["content"]
    assert "Question: By how much" in sent[-1]["content"]
    info = result.router
    assert info.tokens_before_compression is not None
    assert info.tokens_before_compression > after
    backend = router.policy.backend(info.backend)
    assert backend is not None
    assert info.compression_saved_usd > 0
    assert info.compression_saved_usd == pytest.approx(
        (info.tokens_before_compression - after) * backend.resolved_price.input_per_million / 1e6,
        rel=0.05,
    )
    assert router.ledger is not None
    (row,) = router.ledger.rows()
    assert row["tokens_before_compression"] == info.tokens_before_compression
    assert row["compression_saved_usd"] == pytest.approx(info.compression_saved_usd)


def test_compression_can_be_skipped_per_call(router: Router, upstream: Upstream) -> None:
    result = router.complete(MESSAGES, compress=False)
    assert isinstance(result, ChatCompletion)
    assert upstream.requests[-1]["body"]["messages"] == MESSAGES
    assert result.router.tokens_before_compression is None


def test_short_prompts_are_left_alone(router: Router, upstream: Upstream) -> None:
    short = [{"role": "user", "content": "Hi  there,   how are you?"}]
    router.complete(short)
    assert upstream.requests[-1]["body"]["messages"] == short


def test_semantic_cache_hits_rephrasings_and_refuses_changed_numbers(
    make_policy: PolicyFactory, upstream: Upstream
) -> None:
    router = Router(
        make_policy(
            two_tier(upstream.base_url),
            cache={"semantic": {"enabled": True, "threshold": 0.9}},
        )
    )

    def ask(text: str) -> ChatCompletion:
        result = router.complete([{"role": "user", "content": text}])
        assert isinstance(result, ChatCompletion)
        return result

    assert ask("What is 37 times 12?").router.cache == "miss"
    rephrased = ask("Please, what is 37 times 12")
    assert rephrased.router.cache == "hit" and rephrased.router.cost_usd == 0
    assert ask("What is 37 times 13?").router.cache == "miss"
    assert ask("What is 37 times 12?").router.cache == "hit"
    assert len(upstream.requests) == 2


def test_condense_summarises_trimmed_turns_with_the_cheapest_backend(
    make_policy: PolicyFactory, upstream: Upstream
) -> None:
    router = Router(
        make_policy(
            two_tier(upstream.base_url),
            cache={"enabled": False},
            compression={
                "enabled": True,
                "stages": ["trim", "condense"],
                "budget_tokens": 300,
                "min_tokens": 100,
            },
        )
    )
    history: list[dict[str, str]] = []
    for i in range(12):
        history.append({"role": "user", "content": f"Tell me fact number {i} about the sea. " * 5})
        history.append({"role": "assistant", "content": f"Fact {i}: the sea is deep. " * 5})
    history.append({"role": "user", "content": "And one more?"})
    result = router.complete(history)
    assert isinstance(result, ChatCompletion)
    summary_request, main_request = upstream.requests
    assert summary_request["body"]["model"] == "gemma-3-270m"
    assert "Summarise this earlier part" in summary_request["body"]["messages"][0]["content"]
    sent = main_request["body"]["messages"]
    assert len(sent) < len(history)
    assert any(upstream.answer in (m.get("content") or "") for m in sent if m["role"] == "system")
    assert sent[-1] == history[-1]
    assert router.ledger is not None
    rows = router.ledger.rows()
    assert [r["tags"] for r in rows] == [["condense"], []]
