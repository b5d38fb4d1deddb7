"""Real clients against ``llmrouter serve`` in front of the real local model (llama.cpp)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from server_conftest_helpers import Sidecar, unique, wait_for, write_policy

from conftest import two_tier

GREETING = "Hi! How are you today?"
# The base model answers this reliably with tokens (see the local model notes).
SAMPLING: dict[str, Any] = {"temperature": 0.8, "seed": 1, "max_tokens": 12}


@pytest.fixture(scope="module")
def sidecar(local_llm: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar]:
    directory = tmp_path_factory.mktemp("sidecar-local")
    policy = write_policy(
        directory, two_tier(local_llm), cache={"enabled": False}, fallback={"deadline_s": 120}
    )
    server = Sidecar(policy).wait()
    yield server
    server.stop()


def messages() -> list[dict[str, str]]:
    return [{"role": "user", "content": unique(GREETING)}]


def test_openai_sdk_sync(sidecar: Sidecar):
    client = openai.OpenAI(base_url=sidecar.url, api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=messages(), **SAMPLING
    )
    completion = raw.parse()
    assert raw.headers["x-llmrouter-backend"] == "small"  # a greeting goes to the cheap tier
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    request_id = raw.headers["x-llmrouter-request-id"]
    rows = wait_for(lambda: [r for r in sidecar.ledger_rows() if r["request_id"] == request_id])
    row = rows[0]
    expected = (row["prompt_tokens"] * 0.10 + row["completion_tokens"] * 0.40) / 1_000_000
    assert row["cost_usd"] == pytest.approx(expected)
    assert float(raw.headers["x-llmrouter-cost-usd"]) == pytest.approx(expected)


def test_openai_sdk_stream_with_usage(sidecar: Sidecar):
    client = openai.OpenAI(base_url=sidecar.url, api_key="unused", max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="small",
            messages=messages(),
            stream=True,
            stream_options={"include_usage": True},
            **SAMPLING,
        )
    )
    assert any(c.choices and c.choices[0].delta.content for c in chunks)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


async def test_openai_sdk_async_and_async_stream(sidecar: Sidecar):
    client = openai.AsyncOpenAI(base_url=sidecar.url, api_key="unused", max_retries=0)
    completion = await client.chat.completions.create(model="auto", messages=messages(), **SAMPLING)
    assert completion.choices[0].finish_reason in ("stop", "length")
    stream = await client.chat.completions.create(
        model="large", messages=messages(), stream=True, **SAMPLING
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text
    await client.close()


def test_litellm_completion(sidecar: Sidecar):
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    response = litellm.completion(
        model="openai/auto",
        api_base=sidecar.url,
        api_key="unused",
        messages=messages(),
        **SAMPLING,
    )
    assert response.choices[0].message.content is not None
    assert response.usage.completion_tokens > 0
    pieces = [
        chunk.choices[0].delta.content or ""
        for chunk in litellm.completion(
            model="openai/small",
            api_base=sidecar.url,
            api_key="unused",
            messages=messages(),
            stream=True,
            **SAMPLING,
        )
    ]
    assert "".join(pieces)


def test_langchain_chat_openai(sidecar: Sidecar):
    from langchain_openai import ChatOpenAI

    # langchain-openai sends max_completion_tokens, which llama.cpp ignores: add max_tokens.
    chat = ChatOpenAI(
        model="auto",
        base_url=sidecar.url,
        api_key="unused",
        max_retries=0,
        temperature=0.8,
        seed=1,
        max_tokens=12,
        extra_body={"max_tokens": 12},
    )
    answer = chat.invoke(unique(GREETING))
    assert isinstance(answer.content, str) and answer.content
    streamed = "".join(str(chunk.content) for chunk in chat.stream(unique(GREETING)))
    assert streamed


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl(sidecar: Sidecar):
    body = json.dumps({"model": "auto", "messages": messages(), **SAMPLING})
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "-D",
            "-",
            "-H",
            "content-type: application/json",
            "-d",
            body,
            f"{sidecar.url}/chat/completions",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    head, _, payload = result.stdout.partition("\n\n")  # text mode turned CRLF into LF
    assert head.startswith("HTTP/1.1 200")
    assert "x-llmrouter-backend: small" in head
    assert json.loads(payload)["object"] == "chat.completion"
    stream_body = json.dumps({"model": "auto", "messages": messages(), "stream": True, **SAMPLING})
    result = subprocess.run(
        ["curl", "-sS", "-N", "-d", stream_body, f"{sidecar.url}/chat/completions"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    events = [line for line in result.stdout.splitlines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]" and len(events) >= 3
