"""Failures of a real (scripted) upstream: retried, fallen back, or reported — and recorded once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from llmrouter import ChatCompletion, Router, StreamInterrupted, UpstreamError
from llmrouter.policy.schema import FallbackConfig
from llmrouter.resilience import CallBudget, Retrier
from llmrouter.streaming import AsyncCompletionStream, CompletionStream
from llmrouter.tokens import count_text_tokens

from conftest import PolicyFactory, two_tier
from upstream import ANSWER, USAGE, Step, Upstream

HELLO = [{"role": "user", "content": "Hi! How are you?"}]
FAST_FALLBACK = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05, "retries": 2}


@pytest.fixture
def router(make_policy: PolicyFactory, upstream: Upstream) -> Router:
    path = make_policy(
        two_tier(upstream.base_url, small={"timeout_s": 0.5}, large={"timeout_s": 0.5}),
        routing={"reference": "large"},
        fallback=FAST_FALLBACK,
        cache={"enabled": False},
    )
    return Router(path)


def rows(router: Router) -> list[dict[str, Any]]:
    assert router.ledger is not None
    return router.ledger.rows()


def complete(router: Router, **params: Any) -> ChatCompletion:
    result = router.complete(HELLO, **params)
    assert isinstance(result, ChatCompletion)
    return result


def test_success_is_priced_from_provider_usage(router: Router, upstream: Upstream) -> None:
    result = complete(router)
    assert result.choices[0].message.content == ANSWER
    info = result.router
    assert info.backend == "small" and info.usage_source == "provider"
    assert info.cost_usd == pytest.approx((12 * 0.10 + 5 * 0.40) / 1e6)
    assert info.baseline_cost_usd == pytest.approx((12 * 5.0 + 5 * 15.0) / 1e6)
    (row,) = rows(router)
    assert row["outcome"] == "ok" and row["attempts"] == 1
    assert row["prompt_tokens"] == USAGE["prompt_tokens"]
    assert row["cost_usd"] == pytest.approx(info.cost_usd)
    assert upstream.requests[0]["body"]["model"] == "gemma-3-270m"


def test_429_honours_retry_after(router: Router, upstream: Upstream) -> None:
    upstream.play(Step("429", retry_after="0.3"))
    started = time.monotonic()
    result = complete(router)
    assert time.monotonic() - started >= 0.3
    assert [a["outcome"] for a in result.router.attempts] == ["rate_limited", "ok"]
    (row,) = rows(router)
    assert row["outcome"] == "ok" and row["attempts"] == 2 and row["backend"] == "small"


@pytest.mark.parametrize(
    ("step", "kind"),
    [
        ("500", "server_error"),
        ("503", "server_error"),
        ("slow", "timeout"),
        ("reset", "connection"),
        ("malformed", "bad_response"),
    ],
)
def test_transient_failures_are_retried(
    router: Router, upstream: Upstream, step: str, kind: str
) -> None:
    upstream.play(Step(step, delay_s=1.0) if step == "slow" else step)
    result = complete(router)
    assert [a["outcome"] for a in result.router.attempts] == [kind, "ok"]
    assert result.router.backend == "small"
    (row,) = rows(router)
    assert row["outcome"] == "ok" and row["attempts"] == 2


def test_exhausted_retries_fall_back_to_the_next_candidate(
    router: Router, upstream: Upstream
) -> None:
    upstream.play("500", "500", "500")
    result = complete(router)
    assert result.router.backend == "large"
    assert result.router.outcome == "fallback"
    (row,) = rows(router)
    assert row["backend"] == "large" and row["fallback_from"] == "small"
    assert row["outcome"] == "fallback" and row["attempts"] == 4


def test_auth_error_falls_back_without_retrying(router: Router, upstream: Upstream) -> None:
    upstream.play("401")
    result = complete(router)
    assert [a["outcome"] for a in result.router.attempts] == ["auth_error", "ok"]
    assert result.router.backend == "large"


def test_all_backends_failing_is_one_clear_error_and_one_row(
    router: Router, upstream: Upstream
) -> None:
    upstream.play(*["503"] * 6)
    with pytest.raises(UpstreamError) as info:
        complete(router)
    assert info.value.kind == "server_error"
    assert info.value.status_code == 502
    assert "small" in str(info.value) and "large" in str(info.value)
    (row,) = rows(router)
    assert row["outcome"] == "error" and row["error_kind"] == "server_error"
    assert row["attempts"] == 6 and row["cost_usd"] == 0


def test_pinned_calls_do_not_fall_back(router: Router, upstream: Upstream) -> None:
    upstream.play("500", "500", "500")
    with pytest.raises(UpstreamError):
        complete(router, model="small")
    assert len(upstream.requests) == 3
    assert len(rows(router)) == 1


def test_missing_usage_is_counted_with_tiktoken(router: Router, upstream: Upstream) -> None:
    upstream.play("no_usage")
    result = complete(router)
    info = result.router
    assert info.usage_source == "tiktoken"
    assert info.completion_tokens == count_text_tokens(ANSWER)
    assert result.usage is not None and result.usage.completion_tokens == info.completion_tokens
    (row,) = rows(router)
    assert row["usage_source"] == "tiktoken"
    assert row["cost_usd"] == pytest.approx(
        (row["prompt_tokens"] * 0.10 + row["completion_tokens"] * 0.40) / 1e6
    )


def test_stream_succeeds_with_usage_in_final_chunk(router: Router, upstream: Upstream) -> None:
    stream = router.complete(HELLO, stream=True)
    assert isinstance(stream, CompletionStream)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == ANSWER
    assert stream.router.usage_source == "provider"
    assert stream.router.completion_tokens == USAGE["completion_tokens"]
    assert stream.router.ttft_ms is not None
    assert upstream.requests[0]["body"]["stream_options"] == {"include_usage": True}
    (row,) = rows(router)
    assert row["stream"] and row["outcome"] == "ok"


def test_stream_without_usage_is_counted(router: Router, upstream: Upstream) -> None:
    upstream.play("no_usage")
    stream = router.complete(HELLO, stream=True)
    assert isinstance(stream, CompletionStream)
    list(stream)
    assert stream.router.usage_source == "tiktoken"
    assert stream.router.completion_tokens == count_text_tokens(ANSWER)


def test_stream_cut_midway_is_an_error_never_a_short_success(
    router: Router, upstream: Upstream
) -> None:
    upstream.play("cut")
    stream = router.complete(HELLO, stream=True)
    assert isinstance(stream, CompletionStream)
    received = []
    with pytest.raises(StreamInterrupted):
        for chunk in stream:
            received.append(chunk)
    assert received, "the failure must come after the first chunk for this test to mean anything"
    with pytest.raises(AttributeError):
        _ = stream.router
    (row,) = rows(router)
    assert row["outcome"] == "error" and row["error_kind"] == "stream_interrupted"


def test_stream_failing_before_first_chunk_falls_back(router: Router, upstream: Upstream) -> None:
    upstream.play("500", "500", "500")
    stream = router.complete(HELLO, stream=True)
    assert isinstance(stream, CompletionStream)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == ANSWER
    assert stream.router.backend == "large"
    (row,) = rows(router)
    assert row["outcome"] == "fallback"


def test_stream_abandoned_by_the_caller_is_recorded(router: Router, upstream: Upstream) -> None:
    stream = router.complete(HELLO, stream=True)
    assert isinstance(stream, CompletionStream)
    next(stream)
    stream.close()
    (row,) = rows(router)
    assert row["outcome"] == "cancelled"


def test_circuit_opens_after_repeated_failures(
    make_policy: PolicyFactory, upstream: Upstream
) -> None:
    path = make_policy(
        two_tier(upstream.base_url),
        fallback={**FAST_FALLBACK, "retries": 0, "circuit_breaker": {"failure_threshold": 2}},
        cache={"enabled": False},
    )
    router = Router(path)
    upstream.play("500", "ok", "500", "ok")
    assert complete(router).router.backend == "large"
    assert complete(router).router.backend == "large"
    assert router.health.state("small") == "open"
    assert router.route(HELLO).backend == "large"


def test_api_key_is_sent_but_never_recorded(
    router: Router, upstream: Upstream, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = "sk-test-SECRET-123"
    monkeypatch.setenv("LARGE_API_KEY", secret)
    path = router.policy.source
    assert path is not None
    fresh = Router(path)
    complete(fresh, model="large")
    assert upstream.requests[-1]["auth"] == f"Bearer {secret}"
    fresh.close()
    for file in tmp_path.rglob("*"):
        if file.is_file():
            assert secret.encode() not in file.read_bytes(), file


async def test_async_twin_retries_and_streams(router: Router, upstream: Upstream) -> None:
    upstream.play("503")
    result = await router.acomplete(HELLO)
    assert isinstance(result, ChatCompletion)
    assert [a["outcome"] for a in result.router.attempts] == ["server_error", "ok"]
    upstream.play("cut")
    stream = await router.acomplete(HELLO, stream=True)
    assert isinstance(stream, AsyncCompletionStream)
    with pytest.raises(StreamInterrupted):
        async for _ in stream:
            pass
    stream = await router.acomplete(HELLO, stream=True)
    assert isinstance(stream, AsyncCompletionStream)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == ANSWER
    await router.aclose()
    outcomes = [r["outcome"] for r in rows(router)]
    assert outcomes == ["ok", "error", "ok"]


def test_concurrent_async_calls_each_leave_one_row(router: Router) -> None:
    async def many() -> None:
        await asyncio.gather(*(router.acomplete(HELLO) for _ in range(20)))

    asyncio.run(many())
    assert len(rows(router)) == 20


def test_max_completion_tokens_reaches_non_openai_servers_as_max_tokens(
    router: Router, upstream: Upstream
) -> None:
    complete(router, max_completion_tokens=7)
    body = upstream.requests[-1]["body"]
    assert body["max_tokens"] == 7 and "max_completion_tokens" not in body


def test_upstream_rejecting_the_request_is_the_callers_400_with_its_message(
    router: Router, upstream: Upstream
) -> None:
    upstream.play("400", "400")
    with pytest.raises(UpstreamError) as info:
        complete(router)
    assert info.value.status_code == 400
    assert "scripted 400" in str(info.value)


def test_persistent_rate_limit_is_a_429_with_retry_after(
    router: Router, upstream: Upstream
) -> None:
    upstream.play(*[Step("429", retry_after="0.01")] * 6)
    with pytest.raises(UpstreamError) as info:
        complete(router)
    assert info.value.status_code == 429
    assert info.value.retry_after == pytest.approx(0.01)


def test_caller_caps_that_exclude_everything_are_a_400(router: Router) -> None:
    from llmrouter import NoBackendAvailable

    with pytest.raises(NoBackendAvailable) as info:
        complete(router, max_cost_usd=1e-12)
    assert info.value.status_code == 400
    for _ in range(router.policy.fallback.circuit_breaker.failure_threshold):
        router.health.record_failure("small")
        router.health.record_failure("large")
    with pytest.raises(NoBackendAvailable) as unhealthy:
        complete(router)
    assert unhealthy.value.status_code == 503


async def test_cancelled_async_call_is_recorded(router: Router, upstream: Upstream) -> None:
    upstream.play(Step("ok", delay_s=0.4))
    task = asyncio.ensure_future(router.acomplete(HELLO))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (row,) = rows(router)
    assert row["outcome"] == "cancelled" and row["error_kind"] == "cancelled"


def _always(kind: str, retry_after: float | None = None) -> Any:
    calls: list[float] = []

    def attempt() -> None:
        calls.append(time.monotonic())
        raise UpstreamError("scripted failure", kind=kind, backend="b", retry_after=retry_after)

    return attempt, calls


def test_retrier_backs_off_exponentially_across_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first attempt runs outside tenacity; the waits still grow 1x, 2x, 4x."""
    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)
    config = FallbackConfig(retries=3, backoff_initial_s=0.01, backoff_max_s=10)
    attempt, calls = _always("server_error")
    with pytest.raises(UpstreamError):
        Retrier(config).call(CallBudget(60), attempt)
    assert len(calls) == 4
    assert [round(w, 2) for w in waits] == pytest.approx([0.015, 0.025, 0.045], abs=0.006)


def test_retrier_skips_waits_past_the_deadline_and_non_retryable_errors() -> None:
    config = FallbackConfig(retries=3, backoff_initial_s=0.01)
    late, late_calls = _always("rate_limited", retry_after=30)
    started = time.monotonic()
    with pytest.raises(UpstreamError):
        Retrier(config).call(CallBudget(5), late)
    assert len(late_calls) == 1 and time.monotonic() - started < 5
    denied, denied_calls = _always("auth")
    with pytest.raises(UpstreamError):
        Retrier(config).call(CallBudget(60), denied)
    assert len(denied_calls) == 1


async def test_async_retrier_succeeds_after_a_failure() -> None:
    config = FallbackConfig(retries=1, backoff_initial_s=0.001)
    outcomes: list[str] = []

    async def flaky() -> str:
        if not outcomes:
            outcomes.append("failed")
            raise UpstreamError("once", kind="connection", backend="b")
        outcomes.append("ok")
        return "answer"

    assert await Retrier(config).acall(CallBudget(10), flaky) == "answer"
    assert outcomes == ["failed", "ok"]
