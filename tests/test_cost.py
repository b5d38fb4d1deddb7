"""Exact cost: every kind of token at its own price, from real-shaped provider payloads.

OpenAI (cached input, reasoning), Anthropic (cache writes and reads; native and through
litellm), and local OpenAI-compatible servers (llama.cpp, Ollama). Prices come from
litellm's price data or the policy's overrides; streamed calls are priced from the final
usage chunk, else counted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from canned_upstream import CannedUpstream

from llmrouter import Router
from llmrouter.accounting import measure_spend, parse_usage
from llmrouter.policy import load_policy
from llmrouter.policy.prices import _price_table
from llmrouter.policy.schema import Price

FIXTURES = Path(__file__).parent / "fixtures" / "usage"
ALL = sorted(p.name for p in FIXTURES.glob("*.json"))


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


@pytest.mark.parametrize("name", ALL)
def test_usage_of_every_provider_shape_is_read_exactly(name: str) -> None:
    data = fixture(name)
    parsed = parse_usage(data["response"]["usage"])
    assert parsed is not None
    expected = data["expected"]
    assert parsed.prompt_tokens == expected["prompt_tokens"]
    assert parsed.completion_tokens == expected["completion_tokens"]
    assert parsed.cached_tokens == expected["cached_tokens"]
    assert parsed.cache_write_tokens == expected["cache_write_tokens"]
    assert parsed.reasoning_tokens == expected["reasoning_tokens"]


def _litellm_price(model: str) -> Price:
    """A policy backend with no price: filled from litellm's data, as users get it."""
    policy = load_policy_from(
        {
            "backends": [
                {"name": "b", "provider": "openai", "model": model, "api_key_env": "NOPE"},
            ]
        }
    )
    return policy.backends[0].resolved_price


def load_policy_from(data: dict[str, Any]) -> Any:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.yaml"
        path.write_text(yaml.safe_dump(data))
        return load_policy(path)


# Dollars by hand from litellm's per-token prices, so a formula slip cannot hide.
HAND = {
    # gpt-4o: $2.50 in, $1.25 cached in, $10 out per million.
    "openai_gpt4o_cached.json": (86 * 2.50 + 1920 * 1.25 + 300 * 10.0) / 1e6,
    # o3-mini: $1.10 in, $4.40 out; reasoning tokens are output tokens at the output price.
    "openai_o3mini_reasoning.json": (13 * 1.10 + 1356 * 4.40) / 1e6,
    # gpt-4o-mini: $0.15 in, $0.075 cached, $0.60 out.
    "openai_stream_final_chunk.json": (163 * 0.15 + 1024 * 0.075 + 74 * 0.60) / 1e6,
    # claude-sonnet-4-5: $3 in, $3.75 cache write, $0.30 cache read, $15 out.
    "anthropic_messages_cache_write.json": (21 * 3.0 + 188086 * 3.75 + 393 * 15.0) / 1e6,
    "anthropic_messages_cache_read.json": (24 * 3.0 + 188086 * 0.30 + 161 * 15.0) / 1e6,
    "anthropic_via_litellm.json": (32 * 3.0 + 1536 * 0.30 + 412 * 3.75 + 57 * 15.0) / 1e6,
}


@pytest.mark.parametrize("name", sorted(HAND))
def test_cloud_payloads_priced_with_litellm_data(name: str) -> None:
    data = fixture(name)
    entry = _price_table()[data["model"]]
    price = _litellm_price(data["model"])
    assert price.input_per_million == pytest.approx(entry["input_cost_per_token"] * 1e6)
    if "cache_creation_input_token_cost" in entry:
        assert price.cache_write_per_million == pytest.approx(
            entry["cache_creation_input_token_cost"] * 1e6
        )
    spend = measure_spend(data["response"]["usage"], 0, "", price, price)
    assert spend.usage_source == "provider"
    assert spend.cost_usd == pytest.approx(HAND[name], rel=1e-12)
    # The baseline is the same tokens at list price, without the provider's cache discounts.
    usage = data["expected"]
    assert spend.baseline_cost_usd == pytest.approx(
        price.cost(usage["prompt_tokens"], usage["completion_tokens"]), rel=1e-12
    )


@pytest.mark.parametrize("name", ["llamacpp_local.json", "ollama_openai_compat.json"])
def test_local_servers_cost_nothing_unless_the_policy_prices_them(name: str) -> None:
    data = fixture(name)
    usage = data["response"]["usage"]
    local = load_policy_from(
        {
            "backends": [
                {
                    "name": "l",
                    "base_url": "http://127.0.0.1:8080/v1",
                    "model": "m",
                    "context_window": 8192,
                }
            ]
        }
    )
    free = local.backends[0].resolved_price
    assert measure_spend(usage, 0, "", free, free).cost_usd == 0.0
    amortised = Price(input_per_million=0.10, output_per_million=0.40)
    expected = data["expected"]
    assert measure_spend(usage, 0, "", amortised, amortised).cost_usd == pytest.approx(
        (expected["prompt_tokens"] * 0.10 + expected["completion_tokens"] * 0.40) / 1e6
    )


def test_reasoning_tokens_at_their_own_price_when_the_data_has_one() -> None:
    price = Price(input_per_million=1.0, output_per_million=2.0, reasoning_per_million=8.0)
    usage = fixture("openai_o3mini_reasoning.json")["response"]["usage"]
    spend = measure_spend(usage, 0, "", price, price)
    assert spend.reasoning_tokens == 1344
    assert spend.cost_usd == pytest.approx((13 * 1.0 + 12 * 2.0 + 1344 * 8.0) / 1e6)
    entry = _price_table()["gemini-2.5-flash"]
    assert "output_cost_per_reasoning_token" in entry  # litellm has some: they are read
    from llmrouter.policy.prices import lookup_model

    info = lookup_model("gemini-2.5-flash")
    assert info is not None
    assert info.reasoning_per_million == pytest.approx(
        entry["output_cost_per_reasoning_token"] * 1e6
    )


def test_policy_override_beats_litellm_data() -> None:
    policy = load_policy_from(
        {
            "backends": [
                {
                    "name": "b",
                    "provider": "openai",
                    "model": "gpt-4o",
                    "price": {"input_per_million": 1.0, "output_per_million": 1.0},
                }
            ]
        }
    )
    assert policy.backends[0].resolved_price.input_per_million == 1.0
    assert policy.backends[0].resolved_price.cached_input_per_million is None


# --- through the Router: the ledger row carries the exact cost -----------------------------------

PRICE = {
    "input_per_million": 3.0,
    "output_per_million": 15.0,
    "cached_input_per_million": 0.30,
    "cache_write_per_million": 3.75,
}


@pytest.fixture
def anthropic_like() -> Iterator[CannedUpstream]:
    server = CannedUpstream(fixture("anthropic_via_litellm.json")["response"]["usage"]).start()
    yield server
    server.stop()


def _router(tmp_path: Path, base_url: str, **backend: Any) -> Router:
    policy = {
        "backends": [
            {
                "name": "claude",
                "base_url": base_url,
                "model": "claude-sonnet-4-5",
                "price": PRICE,
                "context_window": 200_000,
                **backend,
            }
        ],
        "cache": {"enabled": False},
        "ledger": {"url": f"sqlite:///{tmp_path / 'ledger.db'}"},
    }
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    return Router(path)


EXPECTED = (32 * 3.0 + 1536 * 0.30 + 412 * 3.75 + 57 * 15.0) / 1e6


def test_router_records_cache_reads_and_writes_at_their_prices(
    tmp_path: Path, anthropic_like: CannedUpstream
) -> None:
    router = _router(tmp_path, anthropic_like.base_url)
    completion = router.complete([{"role": "user", "content": "refund window?"}])
    assert completion.router.cost_usd == pytest.approx(EXPECTED)
    assert completion.router.cached_tokens == 1536
    assert router.ledger is not None
    rows = router.ledger.rows()
    router.close()
    assert len(rows) == 1
    assert rows[0]["cost_usd"] == pytest.approx(EXPECTED)
    assert rows[0]["usage_source"] == "provider"


def test_streamed_call_priced_from_the_final_usage_chunk(
    tmp_path: Path, anthropic_like: CannedUpstream
) -> None:
    router = _router(tmp_path, anthropic_like.base_url)
    stream = router.complete([{"role": "user", "content": "refund window?"}], stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "Canned answer."
    assert stream.router.cost_usd == pytest.approx(EXPECTED)
    router.close()


def test_streamed_call_without_usage_is_counted(
    tmp_path: Path, anthropic_like: CannedUpstream
) -> None:
    router = _router(tmp_path, anthropic_like.base_url, stream_usage=False)
    stream = router.complete([{"role": "user", "content": "refund window?"}], stream=True)
    for _ in stream:
        pass
    info = stream.router
    assert info.usage_source == "tiktoken"
    assert info.completion_tokens > 0
    assert info.cost_usd == pytest.approx(
        (info.prompt_tokens * 3.0 + info.completion_tokens * 15.0) / 1e6
    )
    router.close()
