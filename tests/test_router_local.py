"""End to end on the real local model (llama.cpp serving Gemma 3 270M)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llmrouter import ChatCompletion, Router
from llmrouter.streaming import AsyncCompletionStream, CompletionStream

from conftest import PolicyFactory, two_tier
from test_routing import PROOF

GREETING = [{"role": "user", "content": "Hi! How are you today?"}]
SAMPLING = {"temperature": 0.8, "seed": 1, "max_tokens": 16}


@pytest.fixture
def policy_path(make_policy: PolicyFactory, local_llm: str) -> Path:
    return make_policy(two_tier(local_llm), routing={"quality_floor": 0.7, "reference": "large"})


@pytest.fixture
def router(policy_path: Path) -> Router:
    return Router(policy_path)


def price(row: dict[str, Any], prices: dict[str, tuple[float, float]]) -> float:
    inp, out = prices[row["backend"]]
    return (row["prompt_tokens"] * inp + row["completion_tokens"] * out) / 1e6


PRICES = {"small": (0.10, 0.40), "large": (5.00, 15.00)}


def test_cheap_for_easy_strong_for_hard_and_exact_ledger(router: Router, policy_path: Path) -> None:
    easy = router.complete(GREETING, **SAMPLING)
    hard = router.complete(PROOF, **SAMPLING)
    assert isinstance(easy, ChatCompletion) and isinstance(hard, ChatCompletion)
    assert easy.router.backend == "small"
    assert hard.router.backend == "large"
    for result in (easy, hard):
        assert result.usage is not None and result.usage.prompt_tokens > 0
        assert result.router.usage_source == "provider"
        assert result.router.cache == "miss"
    assert easy.usage is not None and easy.usage.completion_tokens > 0
    router.close()

    ledger_rows = Router(policy_path).ledger
    assert ledger_rows is not None
    rows = ledger_rows.rows()
    assert [r["backend"] for r in rows] == ["small", "large"]
    for row in rows:
        assert row["cost_usd"] == pytest.approx(price(row, PRICES))
        assert row["baseline_cost_usd"] == pytest.approx(
            (row["prompt_tokens"] * 5.0 + row["completion_tokens"] * 15.0) / 1e6
        )
        assert row["prompt"] is None  # prompts are not stored unless the policy opts in

    out = subprocess.run(
        [sys.executable, "-m", "llmrouter", "spend", "--json", "--policy", str(policy_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(out.stdout)
    assert report["calls"] == 2
    assert report["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in rows))
    assert report["baseline_cost_usd"] == pytest.approx(sum(r["baseline_cost_usd"] for r in rows))
    by_backend = {b["key"]: b for b in report["by_backend"]}
    assert by_backend["small"]["cost_usd"] == pytest.approx(rows[0]["cost_usd"])
    assert report["saved_usd"] == pytest.approx(report["baseline_cost_usd"] - report["cost_usd"])


def test_real_stream_yields_chunks_and_metadata(router: Router) -> None:
    stream = router.complete(GREETING, stream=True, **SAMPLING)
    assert isinstance(stream, CompletionStream)
    chunks = list(stream)
    assert len(chunks) >= 3
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    info = stream.router
    assert info.backend == "small"
    assert info.ttft_ms is not None and info.ttft_ms <= info.latency_ms
    # llama.cpp's server sends no usage in streams: the router counts and says so.
    assert info.usage_source == "tiktoken"
    assert info.completion_tokens > 0 and text


def test_exact_cache_hit_costs_nothing_and_replays_streams(router: Router) -> None:
    first = router.complete(GREETING, **SAMPLING)
    second = router.complete(GREETING, **SAMPLING)
    assert isinstance(first, ChatCompletion) and isinstance(second, ChatCompletion)
    assert first.router.cache == "miss" and second.router.cache == "hit"
    assert second.router.cost_usd == 0
    assert second.router.baseline_cost_usd > 0
    assert second.choices[0].message.content == first.choices[0].message.content
    replay = router.complete(GREETING, stream=True, **SAMPLING)
    assert isinstance(replay, CompletionStream)
    text = "".join(c.choices[0].delta.content or "" for c in replay if c.choices)
    assert text == first.choices[0].message.content
    assert replay.router.cache == "hit"
    # Anything that changes the output changes the key; users do not share entries.
    other = router.complete(GREETING, **{**SAMPLING, "temperature": 0.7})
    tenant = router.complete(GREETING, user="tenant-b", **SAMPLING)
    skipped = router.complete(GREETING, cache=False, **SAMPLING)
    assert isinstance(other, ChatCompletion) and other.router.cache == "miss"
    assert isinstance(tenant, ChatCompletion) and tenant.router.cache == "miss"
    assert isinstance(skipped, ChatCompletion) and skipped.router.cache == "off"
    assert router.ledger is not None
    caches = [r["cache"] for r in router.ledger.rows()]
    assert caches == ["miss", "hit", "hit", "miss", "miss", "off"]


async def test_async_real_completion_and_stream(router: Router) -> None:
    result = await router.acomplete(GREETING, **SAMPLING)
    assert isinstance(result, ChatCompletion)
    assert result.router.backend == "small" and result.usage is not None
    stream = await router.acomplete(GREETING, stream=True, cache=False, **SAMPLING)
    assert isinstance(stream, AsyncCompletionStream)
    chunks = [c async for c in stream]
    assert chunks and stream.router.backend == "small"


def test_pinned_backend_is_used_and_recorded(router: Router) -> None:
    result = router.complete(GREETING, model="large", **SAMPLING)
    assert isinstance(result, ChatCompletion)
    assert result.router.backend == "large"
    assert result.router.decision is not None and result.router.decision.pinned
    assert result.router.cost_usd == pytest.approx(result.router.baseline_cost_usd)


def test_cli_complete_streams_and_summarises(policy_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmrouter",
            "complete",
            "Hi! How are you today?",
            "--policy",
            str(policy_path),
            "--max-tokens",
            "12",
            "--temperature",
            "0.8",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "[small]" in out.stderr and "cost $" in out.stderr and "saved $" in out.stderr
