"""The value rule (``routing.rule: value``): argmax of p − cost / answer_value_usd.

A table predictor fixes each backend's probability, so every expected choice below can be
worked out by hand: for the greeting (~14 prompt tokens, 256 expected output tokens) the
estimated costs are about $0.0001 (cheap), $0.001 (mid) and $0.01 (strong).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import pytest

from llmrouter import InvalidRequest, PolicyError, Router
from llmrouter.policy import parse_policy
from llmrouter.policy.schema import BackendConfig, RoutingConfig
from llmrouter.routing.predictor import PromptProfile

from conftest import PolicyFactory

GREETING = [{"role": "user", "content": "Hi! How are you?"}]
URL = "http://127.0.0.1:9/v1"
PROBS = {"cheap": 0.60, "mid": 0.80, "strong": 0.90, "free": 0.50, "local": 0.55}


class Table:
    """A predictor that gives each backend a fixed probability, whatever the prompt."""

    def profile(self, text: str, token_ids: Sequence[int]) -> PromptProfile:
        return PromptProfile(complexity=0.5)

    def probability(self, profile: PromptProfile, backend: BackendConfig) -> float:
        return PROBS[backend.name]


def backends(**overrides: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [("cheap", 0.1, 0.4, ["tools"]), ("mid", 1.0, 4.0, ["tools"]), ("strong", 10, 40, [])]
    out = []
    for name, rate_in, rate_out, capabilities in rows:
        backend = {
            "name": name,
            "provider": "openai-compatible",
            "base_url": URL,
            "model": f"{name}-model",
            "price": {"input_per_million": rate_in, "output_per_million": rate_out},
            "context_window": 8192,
            "capabilities": capabilities,
        }
        backend.update(overrides.get(name, {}))
        out.append(backend)
    return out


@pytest.fixture
def make_router(make_policy: PolicyFactory) -> Any:
    def factory(routing: dict[str, Any], **overrides: dict[str, Any]) -> Router:
        return Router(make_policy(backends(**overrides), routing=routing), predictor=Table())

    return factory


def value_policy(worth: float, **extra: Any) -> dict[str, Any]:
    return {"rule": "value", "answer_value_usd": worth, **extra}


@pytest.mark.parametrize(("worth", "expected"), [(0.001, "cheap"), (0.01, "mid"), (1.0, "strong")])
def test_value_rule_picks_the_best_expected_value(
    make_router: Any, worth: float, expected: str
) -> None:
    decision = make_router(value_policy(worth)).route(GREETING)
    assert decision.backend == expected
    assert decision.rule == "value" and decision.answer_value_usd == worth
    utility = {
        c.name: worth * c.predicted_quality - c.estimated_cost_usd for c in decision.candidates
    }
    assert decision.backend == max(utility, key=utility.__getitem__)
    assert f"${worth:g} per good answer" in decision.reason
    assert "best expected value of 3 backend(s)" in decision.reason


@pytest.mark.parametrize("worth", [1e-310, 5e-324, 1e-200])
def test_a_tiny_answer_value_takes_the_free_backend(
    make_policy: PolicyFactory, worth: float
) -> None:
    """1 / answer_value_usd overflows below ~5.6e-309: the utility must not become NaN
    (inf x a free backend's $0) but rank as at any large price: the cheapest, here free."""
    import math

    import numpy as np

    from llmrouter.brain.evaluation import decide_value

    free = [
        {
            "name": name,
            "provider": "openai-compatible",
            "base_url": URL,
            "model": f"{name}-m",
            "price": {"input_per_million": 0, "output_per_million": 0},
            "context_window": 8192,
        }
        for name in ("free", "local")
    ]
    router = Router(
        make_policy([*backends(), *free], routing=value_policy(worth)), predictor=Table()
    )
    decision = router.route(GREETING)
    assert decision.backend == "local"  # free of cost, and predicted better than "free"
    assert decision.fallbacks() == ["free", "cheap", "mid", "strong"]
    assert "nan" not in decision.reason and "inf" not in decision.reason
    assert router.route(GREETING, answer_value_usd=worth).backend == "local"
    probs = np.asarray([[c.predicted_quality for c in decision.candidates]])
    cost = np.asarray([[c.estimated_cost_usd for c in decision.candidates]])
    price = 1.0 / worth
    assert math.isinf(price) == (worth < 1e-308)
    assert decide_value(probs, cost, price).tolist() == [0]  # the router's first candidate
    # Without a free backend: the cheapest.
    priced = Router(make_policy(backends(), routing=value_policy(worth)), predictor=Table())
    assert priced.route(GREETING).backend == "cheap"


def test_fallbacks_follow_expected_value(make_router: Any) -> None:
    # At $0.01: mid 0.0070 > cheap 0.0059 > strong −0.0014.
    decision = make_router(value_policy(0.01)).route(GREETING)
    assert decision.backend == "mid"
    assert decision.fallbacks() == ["cheap", "strong"]


def test_fallbacks_keep_a_written_floor(make_router: Any) -> None:
    """A written floor is a minimum for fallbacks too: cheap (p=0.60) is never tried."""
    decision = make_router(value_policy(0.001, quality_floor=0.7)).route(GREETING)
    assert decision.backend == "mid"
    assert decision.fallbacks() == ["strong"]
    # Nothing clears it: the next best-predicted, all of them.
    below = make_router(value_policy(0.001, quality_floor=0.95)).route(GREETING)
    assert below.backend == "strong" and below.fallbacks() == ["mid", "cheap"]


def test_the_floor_rule_is_unchanged_by_default(make_router: Any) -> None:
    router = make_router({})
    assert router.policy.routing.rule == "floor"
    decision = router.route(GREETING)
    assert decision.backend == "mid"  # the cheapest predicted ≥ 0.70
    assert decision.rule == "floor" and decision.answer_value_usd is None
    assert decision.quality_floor == 0.7 and "cheapest of 2 backend(s)" in decision.reason
    assert decision.to_dict()["answer_value_usd"] is None


def test_quality_floor_is_a_minimum_under_the_value_rule_when_written(make_router: Any) -> None:
    # Unwritten, the floor rule's default 0.7 is no minimum: cheap (p=0.60) wins at $0.001.
    unwritten = make_router(value_policy(0.001)).route(GREETING)
    assert unwritten.backend == "cheap" and unwritten.quality_floor == 0.0
    router = make_router(value_policy(0.001, quality_floor=0.7))
    decision = router.route(GREETING)
    assert decision.backend == "mid"
    assert "2 backend(s) predicted ≥ 0.70" in decision.reason
    assert router.route(GREETING, quality_floor=0.85).backend == "strong"
    # Nothing clears it: the best-predicted, as under the floor rule.
    none_clear = router.route(GREETING, quality_floor=0.95)
    assert none_clear.backend == "strong"
    assert "no backend predicted ≥ 0.95" in none_clear.reason


def test_per_call_answer_value_routes_that_call_by_value(make_router: Any) -> None:
    router = make_router({})
    decision = router.route(GREETING, answer_value_usd=0.001)
    assert decision.backend == "cheap" and decision.rule == "value"
    assert router.route(GREETING).backend == "mid"
    # A policy that writes its floor keeps it as the minimum for such calls.
    written = make_router({"quality_floor": 0.7})
    assert written.route(GREETING, answer_value_usd=0.001).backend == "mid"
    # Under a value policy the call's value wins over the policy's.
    assert make_router(value_policy(0.001)).route(GREETING, answer_value_usd=1).backend == (
        "strong"
    )


@pytest.mark.parametrize("bad", [0, -1, "0.01", True, float("nan"), float("inf")])
def test_bad_per_call_answer_value_is_rejected(make_router: Any, bad: object) -> None:
    with pytest.raises(InvalidRequest, match="answer_value_usd") as info:
        make_router({}).route(GREETING, answer_value_usd=bad)
    assert info.value.param == "answer_value_usd"


def test_exclusions_apply_before_the_value_rule(make_router: Any) -> None:
    router = make_router(value_policy(1.0))  # strong, when it may serve
    capped = router.route(GREETING, max_cost_usd=0.005)
    assert capped.backend == "mid"
    assert "max_cost_usd" in (capped.candidate("strong").excluded_reason or "")  # type: ignore[union-attr]
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {}}}]
    assert router.route(GREETING, tools=tools).backend == "mid"
    router.latency.observe("strong", ttft_ms=2000, total_ms=6000, completion_tokens=200)
    assert router.route(GREETING, max_latency_ms=1000).backend == "mid"
    for _ in range(router.policy.fallback.circuit_breaker.failure_threshold):
        router.health.record_failure("strong")
    open_circuit = router.route(GREETING)
    assert open_circuit.backend == "mid"
    assert "circuit open" in (open_circuit.candidate("strong").excluded_reason or "")  # type: ignore[union-attr]
    pinned = router.route(GREETING, model="cheap")
    assert pinned.backend == "cheap" and pinned.pinned and "pinned" in pinned.reason


def test_latency_slo_and_context_window_exclude_under_the_value_rule(make_router: Any) -> None:
    router = make_router(
        value_policy(0.001),
        cheap={"context_window": 64},
        mid={"latency_slo_ms": 1000},
    )
    long_prompt = [{"role": "user", "content": "Tell me about the sea. " * 20}]
    decision = router.route(long_prompt)
    assert decision.backend == "mid"  # cheap's window is too small
    assert (decision.candidate("cheap").excluded_reason or "").startswith("context window")  # type: ignore[union-attr]
    router.latency.observe("mid", ttft_ms=2000, total_ms=6000, completion_tokens=200)
    slow = router.route(long_prompt)
    assert slow.backend == "strong"
    assert "latency SLO" in (slow.candidate("mid").excluded_reason or "")  # type: ignore[union-attr]


def _conversation(router: Router, backend: str) -> list[dict[str, Any]]:
    reply = {"role": "assistant", "content": "Fine, thanks."}
    router.conversations.remember(GREETING, reply, backend)
    return [*GREETING, reply, {"role": "user", "content": "And what is 2 + 2?"}]


def test_conversation_stays_unless_the_value_rule_wants_a_better_backend(
    make_router: Any,
) -> None:
    router = make_router(value_policy(0.001))  # the value pick alone is cheap
    messages = _conversation(router, "mid")
    decision = router.route(messages)
    assert decision.backend == "mid"
    assert decision.reason.startswith("conversation stays on mid")
    # A turn worth more asks for a better-predicted backend: the conversation moves up.
    moved = router.route(messages, answer_value_usd=1.0)
    assert moved.backend == "strong" and "best expected value" in moved.reason


def test_moving_up_must_be_worth_the_prompt_cache_it_forfeits(make_router: Any) -> None:
    """mid reads a long question from its cache at $0.10/M instead of $1/M: at $0.28 a good
    answer, strong's extra 0.1 of probability beats mid read in full, not mid with its cache."""
    cached = {
        "price": {
            "input_per_million": 1.0,
            "output_per_million": 4.0,
            "cached_input_per_million": 0.1,
        }
    }
    router = make_router(value_policy(0.28), mid=cached)
    asked = [{"role": "user", "content": "word " * 1900}]
    reply = {"role": "assistant", "content": "Fine."}
    router.conversations.remember(asked, reply, "mid")
    messages = [*asked, reply, {"role": "user", "content": "And then?"}]
    fresh = make_router(value_policy(0.28), mid=cached).route(messages)
    assert fresh.backend == "strong"  # no cache to keep: strong's extra probability is worth it
    decision = router.route(messages)
    assert decision.backend == "mid"
    assert "in its prompt cache save" in decision.reason
    worth = {c.name: 0.28 * c.predicted_quality - c.estimated_cost_usd for c in decision.candidates}
    assert max(worth, key=worth.__getitem__) == "mid"


def test_a_conversation_leaves_for_a_better_and_cheaper_backend(make_policy: PolicyFactory) -> None:
    """A conversation on mid does not move down to the value rule's cheap pick, but it does
    leave mid for strong, predicted better and cheaper, at every answer value (it used to
    stay on mid until strong became the value rule's own pick)."""
    probs = {"cheap": 0.5, "mid": 0.8, "strong": 0.85}
    prices = {"cheap": (0.0, 0.0), "mid": (10.0, 40.0), "strong": (5.0, 20.0)}
    overrides = {
        name: {"price": {"input_per_million": i, "output_per_million": o}}
        for name, (i, o) in prices.items()
    }

    class Fixed(Table):
        def probability(self, profile: PromptProfile, backend: BackendConfig) -> float:
            return probs[backend.name]

    reply = {"role": "assistant", "content": "Fine, thanks."}
    messages = [*GREETING, reply, {"role": "user", "content": "And what is 2 + 2?"}]
    for worth, why in ((0.001, "conversation moves from mid"), (1.0, "best expected value")):
        policy = make_policy(backends(**overrides), routing=value_policy(worth))
        fresh = Router(policy, predictor=Fixed()).route(messages)
        assert fresh.backend == ("cheap" if worth < 0.01 else "strong")
        router = Router(policy, predictor=Fixed())
        router.conversations.remember(GREETING, reply, "mid")
        decision = router.route(messages)
        assert decision.backend == "strong"
        assert decision.reason.startswith(why)
        assert "leaves mid, the conversation's backend" in decision.reason


def test_under_the_floor_a_conversation_leaves_for_a_cheaper_backend_as_good(
    make_router: Any,
) -> None:
    """strong clears the floor, is predicted better than mid and costs less: nothing is kept
    by staying on mid (its prompt is too short to be cached)."""
    cheaper = {"price": {"input_per_million": 0.5, "output_per_million": 2.0}}
    router = make_router({"quality_floor": 0.7}, strong=cheaper)
    reply = {"role": "assistant", "content": "Fine, thanks."}
    router.conversations.remember(GREETING, reply, "mid")
    decision = router.route([*GREETING, reply, {"role": "user", "content": "And 2 + 2?"}])
    assert decision.backend == "strong"
    assert decision.reason.startswith("conversation moves from mid (p=0.80) to strong")
    assert "for less" in decision.reason


@pytest.mark.parametrize(
    ("routing", "key", "message"),
    [
        ("rule: value", "routing.answer_value_usd", "rule: value needs answer_value_usd"),
        ("answer_value_usd: 0.01", "routing.answer_value_usd", "used only by rule: value"),
        ("rule: cheapest", "routing.rule", "'floor' or 'value'"),
        ("rule: value\n  answer_value_usd: -1", "routing.answer_value_usd", "greater than 0"),
        ("rule: value\n  answer_value_usd: .nan", "routing.answer_value_usd", "finite"),
        ("rule: value\n  answer_value_usd: lots", "routing.answer_value_usd", "lots"),
        ("sticky_conversations: sometimes", "routing.sticky_conversations", "true, false or cost"),
        ("prompt_cache_ttl_s: -1", "routing.prompt_cache_ttl_s", "greater than or equal to 0"),
    ],
)
def test_policy_errors_name_the_key(routing: str, key: str, message: str) -> None:
    text = (
        "backends:\n"
        "  - {name: a, base_url: 'http://127.0.0.1:9/v1', model: m, context_window: 8192}\n"
        f"routing:\n  {routing}\n"
    )
    with pytest.raises(PolicyError) as info:
        parse_policy(text)
    assert info.value.key == key
    assert message in str(info.value)
    assert info.value.line is not None and info.value.line >= 3


def test_routing_config_defaults_and_value_floor() -> None:
    default = RoutingConfig()
    assert default.rule == "floor" and default.answer_value_usd is None
    assert RoutingConfig(rule="value", answer_value_usd=0.01).value_floor == 0.0
    written = RoutingConfig(rule="value", answer_value_usd=0.01, quality_floor=0.5)
    assert written.value_floor == 0.5


# --- the router and `llmrouter eval` make the same choice -----------------------------------

TOPICS = [
    "What colour is the sky on a clear day?",
    "Translate 'good morning' into French.",
    "Write a Python function that merges two sorted lists in linear time.",
    "Compute the integral of x^2 sin(x) from 0 to pi, showing every step.",
    "Prove that there are infinitely many primes p with p ≡ 3 (mod 4), rigorously.",
    "Summarise the causes of the First World War in three sentences.",
    "Derive the closed form of the Fibonacci numbers and prove it by induction.",
    "Name three fruits that are yellow.",
]


SYSTEM = (
    "You are a meticulous mathematician. Prove every claim rigorously, derive each integral "
    "step by step, and check the proof by induction."
)


def _eval_records() -> list[Any]:
    """Bare prompts, prompts under a system message, and multi-turn conversations: the
    router judges the last user message, so must the evaluation."""
    from llmrouter.brain.dataset import Record

    scores = {"cheap": 0, "mid": 1, "strong": 1}
    records = [
        Record(id=f"r{i}", text=f"{topic} (case {i})", scores=scores)
        for i, topic in enumerate(TOPICS * 4)
    ]
    for i, topic in enumerate(TOPICS):
        conversations = [
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": topic}],
            [
                {"role": "user", "content": TOPICS[(i + 3) % len(TOPICS)]},
                {"role": "assistant", "content": "Here is a careful answer. " * 5},
                {"role": "user", "content": topic},
            ],
        ]
        for k, messages in enumerate(conversations):
            text = "\n".join(m["content"] for m in messages)
            records.append(Record(id=f"m{i}-{k}", text=text, scores=scores, messages=messages))
    return records


def _messages(record: Any) -> list[dict[str, Any]]:
    return record.messages or [{"role": "user", "content": record.text}]


def _learned_setup(
    make_policy: PolicyFactory, routing: dict[str, Any]
) -> tuple[Router, Any, list[Any]]:
    from llmrouter.brain import LearnedPredictor
    from llmrouter.cli.eval import eval_matrix

    ratings = {"cheap": {"quality": 0.3}, "mid": {"quality": 0.6}, "strong": {"quality": 0.9}}
    router = Router(make_policy(backends(**ratings), routing=routing))
    assert isinstance(router.predictor, LearnedPredictor)
    records = _eval_records()
    data = eval_matrix(records, router.policy.backends, router.predictor, 256)
    return router, data, records


def _worths(data: Any, count: int = 40) -> list[float]:
    """Values on both sides of, and at, the prompts' break-even prices."""
    from llmrouter.brain.evaluation import default_prices

    prices = [p for p in default_prices(data.probs, data.expected_cost) if p > 0]
    step = max(len(prices) // count, 1)
    picked = prices[::step]
    between = [(a + b) / 2 for a, b in itertools.pairwise(picked)]
    return sorted({1.0 / p for p in [*picked, *between, picked[-1] * 2]})


@pytest.mark.parametrize("floor", [None, 0.5])
def test_router_choice_equals_the_evaluation_value_choice(
    make_policy: PolicyFactory, floor: float | None
) -> None:
    from llmrouter.brain.evaluation import decide_value

    extra = {} if floor is None else {"quality_floor": floor}
    router, data, records = _learned_setup(make_policy, value_policy(0.01, **extra))
    seen: set[str] = set()
    for worth in _worths(data):
        index = decide_value(data.probs, data.expected_cost, 1.0 / worth, floor or 0.0)
        expected = [data.backends[j] for j in index]
        decisions = [router.route(_messages(r), answer_value_usd=worth) for r in records]
        assert [d.backend for d in decisions] == expected, worth
        seen.update(expected)
    for row, record in enumerate(records):
        decision = router.route(_messages(record))
        for j, name in enumerate(data.backends):
            candidate = decision.candidate(name)
            assert candidate is not None
            assert candidate.predicted_quality == pytest.approx(data.probs[row, j], abs=1e-12)
            assert candidate.estimated_cost_usd == data.expected_cost[row, j]
    assert seen == {"cheap", "mid", "strong"}  # the sweep reaches every regime


def test_eval_cli_sweeps_the_value_knob(
    make_policy: PolicyFactory, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from llmrouter.cli.main import main

    router, _, _ = _learned_setup(make_policy, value_policy(0.002))
    texts = [f"{topic} (case {i})" for i, topic in enumerate(TOPICS * 4)]
    data = tmp_path / "data.jsonl"
    rows = [
        {"id": f"r{i}", "prompt": t, "scores": {"cheap": i % 2, "mid": 1, "strong": 1}}
        for i, t in enumerate(texts)
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    policy = str(router.policy.source)
    assert main(["eval", "--policy", policy, "--data", str(data), "--json", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rule"] == "value" and report["value_floor"] == 0.0
    curve = report["router"]["curve"]
    assert curve[0]["price"] == 0.0 and curve[0]["answer_value_usd"] is None
    assert curve[-1]["shares"]["cheap"] == 1.0  # beyond every break-even: the cheapest
    point = report["policy_point"]
    assert point["answer_value_usd"] == pytest.approx(0.002)
    chosen = [router.route([{"role": "user", "content": t}]).backend for t in texts]
    assert point["shares"] == {n: chosen.count(n) / len(chosen) for n in ("cheap", "mid", "strong")}
    assert report["router"]["aiq"] > 0
    assert main(["eval", "--policy", policy, "--data", str(data), "--no-progress"]) == 0
    table = capsys.readouterr().out
    assert "$/good answer" in table and "unbounded" in table
    assert "policy's answer_value_usd 0.002" in table


def test_decide_value_holds_a_floor_as_the_router_does() -> None:
    import numpy as np

    from llmrouter.brain.evaluation import decide_value

    probs = np.asarray([[0.6, 0.8, 0.9]])
    cost = np.asarray([[1e-4, 1e-3, 1e-2]])
    assert decide_value(probs, cost, 1000.0).tolist() == [0]  # 0.5 > −0.2 > −9.1
    assert decide_value(probs, cost, 1000.0, floor=0.7).tolist() == [1]
    assert decide_value(probs, cost, 1000.0, floor=0.95).tolist() == [2]  # none clears: best


def test_answer_value_is_a_monotone_knob(make_router: Any) -> None:
    router = make_router(value_policy(0.01))
    worths = [0.0001 * 2**k for k in range(16)]
    chosen = [router.route(GREETING, answer_value_usd=w).backend for w in worths]
    ranks = [["cheap", "mid", "strong"].index(c) for c in chosen]
    assert ranks == sorted(ranks) and chosen[0] == "cheap" and chosen[-1] == "strong"


def _eval_cli_point(
    policy: str, records: list[Any], tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> dict[str, Any]:
    import json

    from llmrouter.cli.main import main

    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(json.dumps(r.to_json()) for r in records) + "\n")
    assert main(["eval", "--policy", policy, "--data", str(data), "--json", "--no-progress"]) == 0
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


@pytest.mark.parametrize("predictor", ["weights", "heuristic"])
def test_eval_cli_uses_the_policys_predictor(
    make_policy: PolicyFactory,
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
    predictor: str,
) -> None:
    """`llmrouter eval` predicts with what the router would: the policy's predictor_weights,
    or the heuristic predictor, not the shipped weights."""
    from llmrouter.brain.model import DEFAULT_WEIGHTS, BrainWeights

    if predictor == "weights":
        weights = BrainWeights.load(DEFAULT_WEIGHTS)
        weights.bias[0] += 3.0  # harder prompts everywhere: other choices than shipped
        stem = weights.save(tmp_path / "weights" / "default")
        routing = value_policy(0.01, predictor_weights=str(stem))
    else:
        routing = value_policy(0.01, predictor="heuristic")
    ratings = {"cheap": {"quality": 0.3}, "mid": {"quality": 0.6}, "strong": {"quality": 0.9}}
    router = Router(make_policy(backends(**ratings), routing=routing))
    records = _eval_records()
    point = _eval_cli_point(str(router.policy.source), records, tmp_path, capsys)["policy_point"]
    chosen = [router.route(_messages(r)).backend for r in records]
    shares = {n: chosen.count(n) / len(chosen) for n in ("cheap", "mid", "strong")}
    assert point["shares"] == pytest.approx(shares, abs=1e-6)


def test_eval_cli_refuses_weights_for_the_heuristic_predictor(
    make_policy: PolicyFactory, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmrouter.cli.main import main

    router = Router(make_policy(backends(), routing={"predictor": "heuristic"}))
    data = tmp_path / "data.jsonl"
    data.write_text('{"id": "a", "prompt": "hi", "scores": {"cheap": 1, "mid": 1, "strong": 1}}\n')
    args = ["eval", "--policy", str(router.policy.source), "--data", str(data), "--no-progress"]
    assert main([*args, "--weights", "somewhere"]) == 2
    assert "predictor: heuristic" in capsys.readouterr().err


# --- legacy /v1/completions tries what chat would ---------------------------------------------


@pytest.mark.parametrize(
    ("fallback", "tried"),
    [
        ({}, ["mid", "cheap", "strong"]),
        ({"max_backends": 2}, ["mid", "cheap"]),
        ({"enabled": False}, ["mid"]),
    ],
)
def test_legacy_completions_plan_is_chats(
    make_policy: PolicyFactory, fallback: dict[str, Any], tried: list[str]
) -> None:
    """/v1/completions falls back as chat does: fallback.enabled and max_backends apply."""
    import asyncio
    import json

    from llmrouter.errors import UpstreamError
    from llmrouter.server.direct import DirectUpstream

    path = make_policy(backends(), routing=value_policy(0.01), fallback=fallback)
    router = Router(path, predictor=Table())
    direct = DirectUpstream(router)
    posted: list[str] = []

    async def failing(backend: BackendConfig, where: str, body: dict[str, Any]) -> dict[str, Any]:
        posted.append(backend.name)
        raise UpstreamError("down", kind="server_error", backend=backend.name)

    direct._post = failing  # type: ignore[method-assign]
    raw = json.dumps({"prompt": GREETING[0]["content"]}).encode()
    with pytest.raises(UpstreamError):
        asyncio.run(direct.completions(raw, {}))
    assert posted == tried
    config = router.policy.fallback
    assert router.route(GREETING).plan(config.enabled, config.max_backends) == tried


def test_eval_cli_at_a_tiny_answer_value(
    make_policy: PolicyFactory, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """1 / 1e-310 overflows: the report stays valid JSON, the policy's point says 1e-310."""
    import json

    from llmrouter.cli.main import main

    router = Router(make_policy(backends(), routing=value_policy(1e-310)))
    data = tmp_path / "data.jsonl"
    data.write_text('{"id": "a", "prompt": "hi", "scores": {"cheap": 1, "mid": 1, "strong": 1}}\n')
    args = ["eval", "--policy", str(router.policy.source), "--data", str(data)]
    assert main([*args, "--json", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "Infinity" not in text and "NaN" not in text
    point = json.loads(text)["policy_point"]
    assert point["answer_value_usd"] == 1e-310 and point["shares"]["cheap"] == 1.0
