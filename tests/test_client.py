"""The drop-in clients: the official SDK's objects, answered by an in-process Router."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from server_conftest_helpers import unique, write_policy

import llmrouter
from llmrouter import AsyncOpenAI, OpenAI

from conftest import two_tier
from upstream import USAGE, Upstream

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture(scope="module")
def scripted() -> Iterator[Upstream]:
    server = Upstream().start()
    yield server
    server.stop()


@pytest.fixture
def policy(scripted: Upstream, tmp_path: Path) -> Path:
    scripted.play()
    return write_policy(tmp_path, two_tier(scripted.base_url))


@pytest.fixture
def client(policy: Path) -> Iterator[OpenAI]:
    with OpenAI(policy=policy) as client:
        yield client


def ask(**extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": unique()}], **extra}


def test_is_the_official_client_returning_official_objects(client: OpenAI):
    assert isinstance(client, openai.OpenAI)
    completion = client.chat.completions.create(model="auto", **ask())
    assert isinstance(completion, openai.types.chat.ChatCompletion)
    assert completion.choices[0].message.content == "Hello from upstream"
    assert completion.usage is not None and completion.usage.total_tokens == USAGE["total_tokens"]


def test_auto_routes_and_a_backend_name_pins(client: OpenAI, scripted: Upstream):
    raw = client.chat.completions.with_raw_response.create(model="auto", **ask())
    assert raw.headers["x-llmrouter-backend"] == "small"
    assert isinstance(raw.parse(), openai.types.chat.ChatCompletion)
    raw = client.chat.completions.with_raw_response.create(model="large", **ask())
    assert raw.headers["x-llmrouter-backend"] == "large"
    with pytest.raises(openai.NotFoundError, match="valid models: auto, small, large"):
        client.chat.completions.create(model="gpt-9", **ask())


def test_streaming_iterator(client: OpenAI):
    stream = client.chat.completions.create(
        model="auto", stream=True, stream_options={"include_usage": True}, **ask()
    )
    chunks = list(stream)
    assert all(isinstance(c, openai.types.chat.ChatCompletionChunk) for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from upstream"
    assert chunks[-1].usage is not None


def test_tools_and_json_mode(client: OpenAI, scripted: Upstream):
    completion = client.chat.completions.create(
        model="auto", tools=TOOLS, tool_choice="auto", **ask()
    )
    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert scripted.requests[-1]["body"]["tools"] == TOOLS
    client.chat.completions.create(model="auto", response_format={"type": "json_object"}, **ask())
    assert scripted.requests[-1]["body"]["response_format"] == {"type": "json_object"}


def test_router_knobs_through_extra_body_and_headers(client: OpenAI):
    raw = client.chat.completions.with_raw_response.create(
        model="auto", extra_body={"quality_floor": 0.95}, **ask()
    )
    assert raw.headers["x-llmrouter-backend"] == "large"
    raw = client.chat.completions.with_raw_response.create(
        model="auto", extra_headers={"x-llmrouter-quality-floor": "0.95"}, **ask()
    )
    assert raw.headers["x-llmrouter-backend"] == "large"


def test_errors_are_the_sdk_exceptions(client: OpenAI, scripted: Upstream):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="auto", messages=[{"role": "robot", "content": "x"}])
    assert caught.value.status_code == 400
    scripted.play(*["500"] * 8)
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(model="auto", **ask())
    assert failed.value.status_code == 502
    scripted.play()


def test_with_options_shares_the_router(client: OpenAI):
    other = client.with_options(timeout=5)
    assert other.router is client.router
    assert other.chat.completions.create(model="auto", **ask()).choices


def test_models_list(client: OpenAI):
    assert [m.id for m in client.models.list()] == ["auto", "small", "large"]


def test_rejects_a_foreign_http_client(policy: Path):
    from llmrouter.client.transport import http_module

    with pytest.raises(ValueError, match="router= or policy="):
        OpenAI(policy=policy, http_client=http_module().Client())


async def test_async_client(policy: Path, scripted: Upstream):
    client = AsyncOpenAI(policy=policy)
    assert isinstance(client, openai.AsyncOpenAI)
    completion = await client.chat.completions.create(model="auto", **ask())
    assert completion.choices[0].message.content == "Hello from upstream"
    stream = await client.chat.completions.create(model="large", stream=True, **ask())
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Hello from upstream"
    raw = await client.chat.completions.with_raw_response.create(model="auto", tools=TOOLS, **ask())
    assert raw.headers["x-llmrouter-backend"] == "large"  # tools need the capable tier
    await client.close()


def test_lazy_import_keeps_import_llmrouter_light():
    import subprocess
    import sys

    code = (
        "import sys, llmrouter\n"
        "heavy = [m for m in ('openai', 'httpx', 'litellm', 'uvicorn', 'starlette', 'orjson')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "from llmrouter import OpenAI, AsyncOpenAI\n"
        "assert 'openai' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert llmrouter.OpenAI is OpenAI


def test_real_local_model(local_llm: str, tmp_path: Path):
    policy = write_policy(tmp_path, two_tier(local_llm), fallback={"deadline_s": 120})
    with OpenAI(policy=policy) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="auto",
            messages=[{"role": "user", "content": unique("Hi! How are you today?")}],
            temperature=0.8,
            seed=1,
            max_tokens=12,
        )
        assert raw.headers["x-llmrouter-backend"] == "small"
        completion = raw.parse()
        assert completion.usage is not None and completion.usage.completion_tokens > 0
        chunks = list(
            client.chat.completions.create(
                model="large",
                messages=[{"role": "user", "content": unique("Hi! How are you today?")}],
                temperature=0.8,
                seed=1,
                max_tokens=12,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
