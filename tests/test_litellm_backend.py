"""A provider that is not OpenAI-compatible, through litellm, against a loopback server."""

from __future__ import annotations

import subprocess
import sys

import pytest

from llmrouter import ChatCompletion, Router, UpstreamError

from conftest import PolicyFactory
from upstream import ANSWER, Upstream


@pytest.fixture
def router(
    make_policy: PolicyFactory, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> Router:
    monkeypatch.setenv("TEST_ANTHROPIC_KEY", "sk-ant-test-not-a-real-key")
    path = make_policy(
        [
            {
                "name": "claude",
                "provider": "anthropic",
                "model": "claude-haiku-4-5",
                "base_url": f"http://127.0.0.1:{upstream.port}",
                "api_key_env": "TEST_ANTHROPIC_KEY",
                "price": {"input_per_million": 1.0, "output_per_million": 5.0},
                "quality": 0.8,
            }
        ],
        cache={"enabled": False},
        fallback={"retries": 1, "backoff_initial_s": 0.01},
    )
    return Router(path)


def test_anthropic_call_is_translated_and_priced(router: Router, upstream: Upstream) -> None:
    result = router.complete([{"role": "user", "content": "Hi!"}], max_tokens=50)
    assert isinstance(result, ChatCompletion)
    assert result.choices[0].message.content == ANSWER
    info = result.router
    assert info.usage_source == "provider"
    assert (info.prompt_tokens, info.completion_tokens) == (21, 7)
    assert info.cost_usd == pytest.approx((21 * 1.0 + 7 * 5.0) / 1e6)
    request = upstream.requests[-1]
    assert request["path"].endswith("/v1/messages")
    assert request["body"]["model"] == "claude-haiku-4-5"


def test_litellm_errors_are_mapped_retried_and_recorded(router: Router, upstream: Upstream) -> None:
    upstream.play("429", "429")
    with pytest.raises(UpstreamError) as info:
        router.complete([{"role": "user", "content": "Hi!"}], max_tokens=50)
    assert info.value.kind == "rate_limited"
    assert router.ledger is not None
    (row,) = router.ledger.rows()
    assert row["outcome"] == "error" and row["error_kind"] == "rate_limited"
    assert row["attempts"] == 2


def test_policy_with_litellm_provider_does_not_import_litellm_until_called(
    make_policy: PolicyFactory,
) -> None:
    path = make_policy([{"name": "c", "provider": "anthropic", "model": "claude-haiku-4-5"}])
    code = (
        "import sys; from llmrouter import Router; "
        f"r = Router({str(path)!r}); r.route([{{'role': 'user', 'content': 'hi'}}]); "
        "print('litellm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
