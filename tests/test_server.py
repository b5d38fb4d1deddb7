"""The sidecar over real HTTP, in front of the scripted upstream: protocol, errors, auth, limits."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from server_conftest_helpers import Sidecar, unique, wait_for, write_policy

from llmrouter.server.auth import ApiKeys
from llmrouter.server.run import check_bind

from upstream import USAGE, Step, Upstream


def scripted_backends(base_url: str) -> list[dict[str, Any]]:
    return [
        {
            "name": "small",
            "base_url": base_url,
            "model": "scripted-small",
            "price": {"input_per_million": 0.10, "output_per_million": 0.40},
            "context_window": 8192,
            "quality": 0.35,
            "timeout_s": 0.5,
        },
        {
            "name": "large",
            "base_url": base_url,
            "model": "scripted-large",
            "price": {"input_per_million": 5.00, "output_per_million": 15.00},
            "context_window": 8192,
            "quality": 0.9,
            "capabilities": ["tools", "json"],
            "embeddings": True,
            "timeout_s": 0.5,
        },
    ]


@pytest.fixture(scope="module")
def scripted() -> Iterator[Upstream]:
    server = Upstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sidecar(scripted: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar]:
    directory = tmp_path_factory.mktemp("sidecar")
    policy = write_policy(
        directory,
        scripted_backends(scripted.base_url),
        server={"max_body_bytes": 64 * 1024},
    )
    server = Sidecar(policy).wait()
    yield server
    server.stop()


@pytest.fixture
def client(sidecar: Sidecar) -> openai.OpenAI:
    return openai.OpenAI(base_url=sidecar.url, api_key="unused", max_retries=0)


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": unique()}], **extra}


# --- the happy path -----------------------------------------------------------------------------


def test_routes_and_reports_in_headers(client: openai.OpenAI, sidecar: Sidecar, scripted: Upstream):
    scripted.play()
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": unique()}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello from upstream"
    assert completion.usage is not None and completion.usage.total_tokens == USAGE["total_tokens"]
    assert raw.headers["x-llmrouter-backend"] == "small"
    assert raw.headers["x-llmrouter-cache"] == "miss"
    assert float(raw.headers["x-llmrouter-complexity"]) >= 0
    request_id = raw.headers["x-llmrouter-request-id"]
    # cost = provider usage × the policy's prices for `small`
    expected = (12 * 0.10 + 5 * 0.40) / 1_000_000
    assert float(raw.headers["x-llmrouter-cost-usd"]) == pytest.approx(expected)
    assert scripted.requests[-1]["body"]["model"] == "scripted-small"
    rows = wait_for(lambda: [r for r in sidecar.ledger_rows() if r["request_id"] == request_id])
    assert len(rows) == 1 and rows[0]["cost_usd"] == pytest.approx(expected)


def test_pinning_by_backend_name(client: openai.OpenAI, scripted: Upstream):
    scripted.play()
    raw = client.chat.completions.with_raw_response.create(
        model="large", messages=[{"role": "user", "content": unique()}]
    )
    assert raw.headers["x-llmrouter-backend"] == "large"
    assert scripted.requests[-1]["body"]["model"] == "scripted-large"


def test_knobs_in_headers_and_body(sidecar: Sidecar, scripted: Upstream):
    scripted.play()
    # A floor of 0.95 on an easy prompt: no backend clears it, the best-predicted one is taken.
    response = httpx.post(
        f"{sidecar.url}/chat/completions",
        json=chat_body(),
        headers={"x-llmrouter-quality-floor": "0.95", "x-llmrouter-tags": "team-a,batch"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-llmrouter-backend"] == "large"
    response = httpx.post(f"{sidecar.url}/chat/completions", json=chat_body(quality_floor=0.95))
    assert response.headers["x-llmrouter-backend"] == "large"
    assert "quality_floor" not in scripted.requests[-1]["body"]  # router knobs stay local
    request_id = response.headers["x-llmrouter-request-id"]
    row = wait_for(lambda: [r for r in sidecar.ledger_rows() if r["request_id"] == request_id])
    assert row
    bad = httpx.post(
        f"{sidecar.url}/chat/completions",
        json=chat_body(),
        headers={"x-llmrouter-quality-floor": "high"},
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "x-llmrouter-quality-floor"


def test_the_value_rule_per_request_in_a_header_or_the_body(sidecar: Sidecar, scripted: Upstream):
    # answer_value_usd switches the call to the expected-value rule: worth nearly nothing,
    # the cheapest backend wins; worth a fortune, the best-predicted one does.
    scripted.play()
    response = httpx.post(
        f"{sidecar.url}/chat/completions",
        json=chat_body(),
        headers={"x-llmrouter-answer-value-usd": "1000000"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-llmrouter-backend"] == "large"
    response = httpx.post(f"{sidecar.url}/chat/completions", json=chat_body(answer_value_usd=1e-12))
    assert response.headers["x-llmrouter-backend"] == "small"
    assert "answer_value_usd" not in scripted.requests[-1]["body"]  # a router knob stays local
    for headers, body in (
        ({"x-llmrouter-answer-value-usd": "a lot"}, chat_body()),
        ({}, chat_body(answer_value_usd="a lot")),
        ({}, chat_body(answer_value_usd=-1)),
    ):
        bad = httpx.post(f"{sidecar.url}/chat/completions", json=body, headers=headers)
        assert bad.status_code == 400, bad.text
        assert "answer_value_usd" in bad.json()["error"]["param"].replace("-", "_")


def test_openai_parameters_pass_through(client: openai.OpenAI, scripted: Upstream):
    scripted.play()
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    completion = client.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": unique("Weather in Paris?")}],
        tools=tools,
        tool_choice="auto",
        n=1,
        stop=["\n\n"],
        seed=7,
        logprobs=False,
        temperature=0.2,
    )
    call = completion.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    sent = scripted.requests[-1]["body"]
    for key, value in {"tool_choice": "auto", "n": 1, "stop": ["\n\n"], "seed": 7}.items():
        assert sent[key] == value
    assert sent["tools"] == tools
    client.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": unique("Reply in JSON")}],
        response_format={"type": "json_object"},
    )
    assert scripted.requests[-1]["body"]["response_format"] == {"type": "json_object"}
    assert scripted.requests[-1]["body"]["model"] == "scripted-large"  # json needs `large`


def test_stream_one_for_one_with_usage(client: openai.OpenAI, scripted: Upstream):
    scripted.play()
    prompt = unique()
    chunks = list(
        client.chat.completions.create(
            model="small",
            messages=[{"role": "user", "content": prompt}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    # upstream sends: role, 3 words, finish, usage — and so does the sidecar
    assert len(chunks) == 6
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Hello from upstream"
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    plain = client.chat.completions.create(
        model="small", messages=[{"role": "user", "content": unique()}]
    )
    assert chunks[-1].usage.model_dump() == plain.usage.model_dump()  # type: ignore[union-attr]
    # Without include_usage the client gets no usage chunk (the router still asked upstream).
    chunks = list(
        client.chat.completions.create(
            model="small", messages=[{"role": "user", "content": unique()}], stream=True
        )
    )
    assert len(chunks) == 5 and all(c.usage is None for c in chunks)


def test_stream_headers_and_sse_framing(sidecar: Sidecar, scripted: Upstream):
    scripted.play()
    with httpx.stream(
        "POST", f"{sidecar.url}/chat/completions", json=chat_body(stream=True)
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-llmrouter-backend"] == "small"
        assert response.headers["x-llmrouter-request-id"].startswith("req_")
        assert response.headers["x-llmrouter-cache"] in ("miss", "off")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert lines[-2].startswith(": llmrouter ")
    assert json.loads(lines[-2][len(": llmrouter ") :])["backend"] == "small"


def test_stream_served_from_cache(client: openai.OpenAI, scripted: Upstream):
    scripted.play()
    messages = [{"role": "user", "content": unique()}]
    first = client.chat.completions.create(model="small", messages=messages)
    seen = len(scripted.requests)
    raw = client.chat.completions.with_raw_response.create(
        model="small", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    assert raw.headers["x-llmrouter-backend"] == "small"
    assert raw.headers["x-llmrouter-cache"] == "hit"
    chunks = list(raw.parse())
    assert len(scripted.requests) == seen  # no upstream call
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        first.choices[0].message.content
    )
    again = client.chat.completions.with_raw_response.create(model="small", messages=messages)
    assert again.headers["x-llmrouter-cache"] == "hit"
    assert float(again.headers["x-llmrouter-cost-usd"]) == 0.0


# --- errors --------------------------------------------------------------------------------------


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


@pytest.mark.parametrize(
    ("content", "param"),
    [
        (b'{"model": "auto", "messages": [', None),
        (b"[1, 2]", None),
        (b"", None),
        (b'{"model": "auto"}', "messages"),
        (b'{"messages": "hi"}', "messages"),
        (b'{"messages": [{"role": "robot", "content": "x"}]}', "messages[0].role"),
        (b'{"messages": [{"role": "user", "content": 5}]}', "messages[0].content"),
        (b'{"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}', "temperature"),
        (b'{"messages": [{"role": "user", "content": "x"}], "stream": "yes"}', "stream"),
        (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": -1}', "max_tokens"),
        (b'{"messages": [{"role": "user", "content": "x"}], "tools": [{"x": 1}]}', "tools[0]"),
        (b'{"messages": [{"role": "user", "content": "x"}], "quality_floor": 3}', "quality_floor"),
        (b'{"messages": [{"role": "user", "content": [7]}]}', "messages[0].content[0]"),
        (
            b'{"messages": [{"role": "assistant", "content": null, "tool_calls": [1]}]}',
            "messages[0].tool_calls[0]",
        ),
    ],
)
def test_bad_requests_are_400_naming_the_field(sidecar: Sidecar, content: bytes, param: str | None):
    response = httpx.post(
        f"{sidecar.url}/chat/completions",
        content=content,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    if param:
        assert param.split("[")[0] in error["message"] or param in error["message"]


def test_unknown_model_is_404_listing_valid_ones(client: openai.OpenAI):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 404
    message = str(caught.value)
    assert "auto" in message and "small" in message and "large" in message


def test_body_over_limit_is_413(sidecar: Sidecar):
    big = chat_body()
    big["messages"][0]["content"] = "x" * (65 * 1024)
    response = httpx.post(f"{sidecar.url}/chat/completions", json=big)
    assert response.status_code == 413
    assert error_of(response)["code"] == "request_too_large"

    def chunked() -> Iterator[bytes]:  # no content-length: the limit holds while reading
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(80):
            yield b"y" * 1024
        yield b'"}]}'

    response = httpx.post(f"{sidecar.url}/chat/completions", content=chunked())
    assert response.status_code == 413


def test_upstream_failures_map_to_statuses(sidecar: Sidecar, scripted: Upstream):
    url = f"{sidecar.url}/chat/completions"
    scripted.play(*["500"] * 6)
    response = httpx.post(url, json=chat_body(), timeout=10)
    assert response.status_code == 502
    assert error_of(response)["type"] == "upstream_error"
    scripted.play(*["429"] * 6)
    response = httpx.post(url, json=chat_body(), timeout=10)
    assert response.status_code == 429
    scripted.play(*[Step("slow", delay_s=1.0)] * 6)
    response = httpx.post(url, json=chat_body(), timeout=10)
    assert response.status_code == 504
    assert error_of(response)["code"] == "timeout"
    # one failure, then the fallback answers
    scripted.play("503", "503")
    response = httpx.post(url, json=chat_body(), timeout=10)
    assert response.status_code == 200
    assert response.headers["x-llmrouter-backend"] == "large"
    scripted.play()


def test_stream_cut_after_start_ends_with_an_error_not_done(
    client: openai.OpenAI, scripted: Upstream
):
    scripted.play("cut")
    stream = client.chat.completions.create(
        model="small", messages=[{"role": "user", "content": unique()}], stream=True
    )
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass


def test_stream_failing_before_first_chunk_gets_a_status(sidecar: Sidecar, scripted: Upstream):
    scripted.play(*["500"] * 6)
    response = httpx.post(
        f"{sidecar.url}/chat/completions", json=chat_body(stream=True, model="small"), timeout=10
    )
    assert response.status_code == 502
    assert error_of(response)["type"] == "upstream_error"
    scripted.play()


def test_client_disconnect_cancels_the_upstream_call(sidecar: Sidecar, scripted: Upstream):
    scripted.play(Step("slow", delay_s=0.4))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{sidecar.url}/chat/completions", json=chat_body(model="small"), timeout=0.15)

    def cancelled() -> bool:
        text = httpx.get(f"{sidecar.root}/metrics").text
        return 'endpoint="/chat/completions",status="499"' in text

    assert wait_for(cancelled, timeout_s=3)
    scripted.play()


def test_nothing_a_client_sends_crashes_it(sidecar: Sidecar):
    nasty: list[bytes] = [
        b"{" * 5000,
        b"[" * 100000,
        b'{"messages": [{"role": "user", "content": "x"}], "n": 99999999999999999999999}',
        b"\xff\xfe\x00garbage",
        b'{"messages": [{"role": "user", "content": {"a": 1}}]}',
        b'{"messages": [{"role": "user", "content": [{"type": "text", "text": {"x": 1}}]}]}',
        b'{"messages": [{"role": "user", "content": "x", "name": 5}]}',
        b'{"messages": [{"role": "user", "content": "x"}], "tools": "all"}',
        b'{"messages": [{"role": "user", "content": "x"}], "stream_options": 1, "stream": true}',
        b'{"messages": [{"role": "user", "content": "x"}], "model": 12}',
        b'{"messages": [{"role": "user", "content": "x"}], "tags": [1, 2]}',
        b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": 1e400}',
        b'{"messages": []}',
        b"null",
    ]
    for content in nasty:
        response = httpx.post(f"{sidecar.url}/chat/completions", content=content)
        assert 400 <= response.status_code < 500, (content[:60], response.text)
        error_of(response)
    for path in ("/v1/embeddings", "/v1/completions"):
        for content in (b"{}", b'{"input": 5}', b'{"prompt": [1, "a"]}', b"{"):
            response = httpx.post(f"{sidecar.root}{path}", content=content)
            assert 400 <= response.status_code < 500, (path, content, response.text)
    response = httpx.post(f"{sidecar.url}/models")
    assert response.status_code == 405
    response = httpx.get(f"{sidecar.url}/nope")
    assert response.status_code == 404
    assert sidecar.alive()
    assert httpx.get(f"{sidecar.root}/health").status_code == 200


# --- other endpoints ----------------------------------------------------------------------------


def test_models_health_metrics_openapi(client: openai.OpenAI, sidecar: Sidecar):
    assert [m.id for m in client.models.list()] == ["auto", "small", "large"]
    health = httpx.get(f"{sidecar.root}/health").json()
    assert health["status"] == "ok" and set(health["backends"]) == {"small", "large"}
    metrics = httpx.get(f"{sidecar.root}/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    for family in (
        "llmrouter_requests_total",
        "llmrouter_tokens_total",
        "llmrouter_cost_usd_total",
        "llmrouter_cache_hits_total",
        "llmrouter_fallbacks_total",
        "llmrouter_request_latency_seconds_bucket",
    ):
        assert f"# TYPE {family.removesuffix('_bucket')}" in metrics.text
    document = httpx.get(f"{sidecar.root}/openapi.json").json()
    assert "/v1/chat/completions" in document["paths"]


def test_embeddings_go_to_an_embedding_backend(client: openai.OpenAI, scripted: Upstream):
    scripted.play()
    # the scripted upstream answers any path with a chat completion; the route is what we test
    response = client.embeddings.with_raw_response.create(model="auto", input="hello")
    assert response.headers["x-llmrouter-backend"] == "large"
    assert scripted.requests[-1]["path"] == "/v1/embeddings"
    assert scripted.requests[-1]["body"]["model"] == "scripted-large"
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="small", input="hello")


def test_legacy_completions_are_routed_and_recorded(sidecar: Sidecar, scripted: Upstream):
    scripted.play()
    response = httpx.post(f"{sidecar.url}/completions", json={"prompt": unique(), "max_tokens": 5})
    assert response.status_code == 200, response.text
    assert response.headers["x-llmrouter-backend"] == "small"
    assert scripted.requests[-1]["path"] == "/v1/completions"
    request_id = response.headers["x-llmrouter-request-id"]
    assert wait_for(lambda: [r for r in sidecar.ledger_rows() if r["request_id"] == request_id])


# --- auth ----------------------------------------------------------------------------------------


def test_api_keys_constant_time_and_required(
    scripted: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    policy = write_policy(
        tmp_path,
        scripted_backends(scripted.base_url),
        server={"api_keys_env": ["SIDECAR_KEY_A", "SIDECAR_KEY_B"]},
    )
    env = {"SIDECAR_KEY_A": "sk-test-alpha", "SIDECAR_KEY_B": "sk-test-beta"}
    server = Sidecar(policy, env=env).wait()
    try:
        url = f"{server.url}/chat/completions"
        missing = httpx.post(url, json=chat_body())
        assert missing.status_code == 401 and error_of(missing)["code"] == "invalid_api_key"
        wrong = httpx.post(url, json=chat_body(), headers={"authorization": "Bearer sk-nope"})
        assert wrong.status_code == 401
        assert "sk-nope" not in wrong.text and "alpha" not in wrong.text
        for key in env.values():
            ok = httpx.post(url, json=chat_body(), headers={"authorization": f"Bearer {key}"})
            assert ok.status_code == 200
        assert httpx.get(f"{server.url}/models").status_code == 401
        assert httpx.get(f"{server.root}/health").status_code == 200
        assert "sk-test" not in server.log.read_text()
    finally:
        server.stop()


def test_refuses_public_bind_without_keys(monkeypatch: pytest.MonkeyPatch):
    no_keys = ApiKeys([])
    with pytest.raises(Exception, match="allow-unauthenticated"):
        check_bind("0.0.0.0", no_keys, allow_unauthenticated=False)
    check_bind("0.0.0.0", no_keys, allow_unauthenticated=True)
    check_bind("127.0.0.1", no_keys, allow_unauthenticated=False)
    check_bind("::1", no_keys, allow_unauthenticated=False)
    monkeypatch.setenv("SOME_KEY", "k")
    check_bind("0.0.0.0", ApiKeys(["SOME_KEY"]), allow_unauthenticated=False)


def test_cli_refuses_public_bind_and_missing_key_env(tmp_path: Path):
    policy = write_policy(tmp_path, scripted_backends("http://127.0.0.1:9/v1"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmrouter.cli.main",
            "serve",
            "--policy",
            str(policy),
            "--host",
            "0.0.0.0",
            "--port",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--allow-unauthenticated" in result.stderr
    keyed = write_policy(
        tmp_path,
        scripted_backends("http://127.0.0.1:9/v1"),
        server={"api_keys_env": ["UNSET_SIDECAR_KEY_ENV"]},
    )
    result = subprocess.run(
        [sys.executable, "-m", "llmrouter.cli.main", "serve", "--policy", str(keyed)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "UNSET_SIDECAR_KEY_ENV" in result.stderr


def test_header_values_cannot_carry_control_characters() -> None:
    """A budget warning names the caller's user or tag; a newline in one must not break
    (or split) the response's headers."""
    from llmrouter.server.wire import header_value

    assert header_value("per-user: $0.20 of $0.10 (user a\r\nx-evil: 1)") == (
        "per-user: $0.20 of $0.10 (user a??x-evil: 1)"
    )
    assert header_value("ünïcode stays") == "ünïcode stays"
