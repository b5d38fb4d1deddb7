"""Multi-turn conversations stay on their backend unless a turn needs a stronger one."""

from __future__ import annotations

from typing import Any

import pytest

from llmrouter import ChatCompletion, Router

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
