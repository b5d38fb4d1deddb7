"""Multi-turn conversations stay on their backend unless a turn needs a stronger one."""

from __future__ import annotations

from typing import Any

import pytest

from llmrouter import ChatCompletion, Router
from llmrouter.routing import ConversationMemory

from conftest import PolicyFactory, two_tier
from test_routing import PROOF
from upstream import ANSWER, Upstream


@pytest.fixture
def router(make_policy: PolicyFactory, upstream: Upstream) -> Router:
    return Router(make_policy(two_tier(upstream.base_url), cache={"enabled": False}))


def turn(router: Router, messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    result = router.complete(messages)
    assert isinstance(result, ChatCompletion)
    reply = {"role": "assistant", "content": result.choices[0].message.content}
    return result.router.backend, [*messages, reply]


def test_easy_follow_up_stays_on_the_strong_backend(router: Router) -> None:
    backend, history = turn(router, list(PROOF))
    assert backend == "large"
    follow_up = [*history, {"role": "user", "content": "Nice, thanks."}]
    # A fresh conversation with the same short question would go to the cheap backend...
    assert router.route([follow_up[-1]]).backend == "small"
    # ...but this one stays where its history is cached.
    decision = router.route(follow_up)
    assert decision.backend == "large"
    assert "conversation stays on large" in decision.reason
    assert "prompt cache" in decision.reason


def test_hard_turn_moves_a_cheap_conversation_up(router: Router) -> None:
    backend, history = turn(router, [{"role": "user", "content": "Hi! How are you?"}])
    assert backend == "small"
    assert router.route([*history, {"role": "user", "content": "Nice, thanks."}]).backend == (
        "small"
    )
    hard = [*history, *PROOF]
    decision = router.route(hard)
    assert decision.backend == "large"
    assert "conversation stays" not in decision.reason


def test_resent_history_with_extra_fields_is_recognised(router: Router) -> None:
    _, history = turn(router, list(PROOF))
    history[-1] = {**history[-1], "refusal": None, "name": None}
    history[-1].pop("name")
    decision = router.route([*history, {"role": "user", "content": "ok"}])
    assert decision.backend == "large"
    assert history[-1]["content"] == ANSWER


def test_stickiness_can_be_turned_off(make_policy: PolicyFactory, upstream: Upstream) -> None:
    router = Router(
        make_policy(
            two_tier(upstream.base_url),
            routing={"sticky_conversations": False},
            cache={"enabled": False},
        )
    )
    _, history = turn(router, list(PROOF))
    assert router.route([*history, {"role": "user", "content": "Nice, thanks."}]).backend == "small"


# A hard question with ~2,200 tokens of context: long enough for a provider to cache it
# (1,024 tokens and up), so the next turn's prompt starts with a cached prefix.
NOTES = " ".join(
    f"Lemma {i}: if q_{i} divides N and every prime factor is 1 (mod 4), then N is 1 (mod 4)."
    for i in range(40)
)
LONG_PROOF = [{"role": "user", "content": f"{PROOF[0]['content']}\n\nWorking notes:\n{NOTES}"}]
CACHED = {
    "price": {"input_per_million": 5.0, "output_per_million": 15.0, "cached_input_per_million": 0.5}
}


def _priced(make_policy: PolicyFactory, upstream: Upstream, **routing: Any) -> Router:
    """Two tiers whose strong backend reads cached prompt tokens at a tenth of its price."""
    policy = make_policy(
        two_tier(upstream.base_url, large=CACHED), routing=routing, cache={"enabled": False}
    )
    return Router(policy)


def test_the_conversations_backend_is_priced_with_its_cached_prefix(
    make_policy: PolicyFactory, upstream: Upstream
) -> None:
    router = _priced(make_policy, upstream)
    backend, history = turn(router, list(LONG_PROOF))
    assert backend == "large"
    follow_up = [*history, {"role": "user", "content": "Nice, thanks."}]
    decision = router.route(follow_up)
    assert decision.backend == "large"
    fresh = _priced(make_policy, upstream).route(follow_up).candidate("large")
    stay = decision.candidate("large")
    assert stay is not None and fresh is not None
    # The previous prompt (the long question, not the reply, which no prompt held) is read
    # at $0.50/M instead of $5/M.
    saved_tokens = (fresh.estimated_cost_usd - stay.estimated_cost_usd) * 1e6 / 4.5
    asked = turn_tokens(LONG_PROOF)
    assert 0.9 * asked < saved_tokens < 1.1 * asked
    assert saved_tokens < decision.prompt_tokens - 10  # the reply and the new turn: full price
    assert "prompt tokens in its prompt cache save $" in decision.reason


def turn_tokens(messages: list[dict[str, Any]]) -> int:
    from llmrouter.tokens import count_message_tokens

    return count_message_tokens(messages)


def test_a_short_prefix_is_not_discounted(make_policy: PolicyFactory, upstream: Upstream) -> None:
    """Providers cache only prompts of 1,024 tokens and more."""
    router = _priced(make_policy, upstream)
    _, history = turn(router, list(PROOF))
    decision = router.route([*history, {"role": "user", "content": "Nice, thanks."}])
    assert decision.backend == "large"
    assert "its prompt cache is not counted" in decision.reason


def test_an_expired_prompt_cache_is_not_discounted(
    make_policy: PolicyFactory, upstream: Upstream
) -> None:
    router = _priced(make_policy, upstream, prompt_cache_ttl_s=300)
    now = [1000.0]
    router.conversations = ConversationMemory(clock=lambda: now[0])
    _, history = turn(router, list(LONG_PROOF))
    follow_up = [*history, {"role": "user", "content": "Nice, thanks."}]
    warm = router.route(follow_up).candidate("large")
    now[0] += 301
    cold = router.route(follow_up)
    assert cold.backend == "large"  # still stays: the conversation keeps its backend
    assert "expired (301 s idle)" in cold.reason
    cold_large = cold.candidate("large")
    assert warm is not None and cold_large is not None
    assert cold_large.estimated_cost_usd > warm.estimated_cost_usd


def test_cost_mode_lets_a_conversation_move_to_a_cheaper_backend(
    make_policy: PolicyFactory, upstream: Upstream
) -> None:
    router = _priced(make_policy, upstream, sticky_conversations="cost")
    _, history = turn(router, list(LONG_PROOF))
    follow_up = [*history, {"role": "user", "content": "Nice, thanks."}]
    decision = router.route(follow_up)
    assert decision.backend == "small"
    assert "leaves large, the conversation's backend, and its prompt cache" in decision.reason
    # With a near-priced small backend, staying with the cached question is the cheaper.
    close = {"price": {"input_per_million": 4.0, "output_per_million": 15.0}}
    router = Router(
        make_policy(
            two_tier(upstream.base_url, small=close, large=CACHED),
            routing={"sticky_conversations": "cost"},
            cache={"enabled": False},
        )
    )
    _, history = turn(router, list(LONG_PROOF))
    stay = router.route([*history, {"role": "user", "content": "Nice, thanks."}])
    assert stay.backend == "large" and "in its prompt cache save" in stay.reason
    assert not stay.reason.startswith("conversation stays")  # it won on cost, not by rule


def test_a_tool_loop_stays_and_an_empty_content_echo_is_recognised(
    make_policy: PolicyFactory, upstream: Upstream
) -> None:
    """A tool result is not a user turn, but the loop is a conversation: its next request
    goes back to the backend that made the call, however the client echoes that call."""
    policy = make_policy(
        two_tier(upstream.base_url, small={"capabilities": ["tools"]}),
        routing={"quality_floor": 0.4},
        cache={"enabled": False},
    )
    router = Router(policy)
    call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    asked = [{"role": "user", "content": "What is the capital of France?"}]
    reply = {"role": "assistant", "content": None, "tool_calls": [call]}
    router.conversations.remember(asked, reply, "large")
    for echoed in (None, "", "  "):
        loop = [
            *asked,
            {"role": "assistant", "content": echoed, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "Paris"},
        ]
        fresh = Router(policy).route(loop)
        assert fresh.backend == "small"  # without the memory: the cheap backend
        decision = router.route(loop)
        assert decision.backend == "large", echoed
        assert decision.reason.startswith("conversation stays on large")


def test_replicas_share_which_backend_a_conversation_is_on(
    make_policy: PolicyFactory, upstream: Upstream
) -> None:
    """Behind a load balancer the next turn lands on another replica: it stays put too."""
    from services import fresh_redis

    from llmrouter.shared.conversations import SharedConversationMemory

    with fresh_redis() as (url, prefix):
        shared = {"redis_url": url, "key_prefix": prefix}
        policy = make_policy(
            two_tier(upstream.base_url), cache={"enabled": False}, shared_state=shared
        )
        a, b = Router(policy), Router(policy)
        try:
            backend, history = turn(a, list(PROOF))
            assert backend == "large"
            assert isinstance(a.conversations, SharedConversationMemory)
            a.conversations.flush()
            follow_up = [*history, {"role": "user", "content": "Nice, thanks."}]
            decision = b.route(follow_up)
            assert decision.backend == "large"
            assert decision.reason.startswith("conversation stays on large")
            # A conversation neither replica answered is new to both.
            other = [*PROOF, {"role": "assistant", "content": "?"}, follow_up[-1]]
            assert b.route(other).backend == "small"
        finally:
            a.close()
            b.close()


def test_a_reply_from_the_routers_cache_leaves_no_provider_cache(
    make_policy: PolicyFactory, upstream: Upstream
) -> None:
    """Asked the same long question again, the router answers from its own cache: the
    provider never read that prompt, so the next turn counts no cached prefix."""
    router = Router(make_policy(two_tier(upstream.base_url, large=CACHED)))
    try:
        _, history = turn(router, list(LONG_PROOF))
        follow_up = [*history, {"role": "user", "content": "Nice, thanks."}]
        assert "in its prompt cache save" in router.route(follow_up).reason
        again = router.complete(list(LONG_PROOF))
        assert isinstance(again, ChatCompletion) and again.router.cache == "hit"
        decision = router.route(follow_up)
        assert decision.backend == "large"
        assert "provider never read the previous prompt" in decision.reason
        assert "prompt cache save" not in decision.reason
    finally:
        router.close()
