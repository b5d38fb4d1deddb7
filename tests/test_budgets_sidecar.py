"""Budgets through the sidecar: a hard budget answers 429 in OpenAI's error shape, a soft
one adds a warning header, the key's id comes from authentication (never from the body),
and the dashboard is mounted at /dashboard behind the same keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from canned_upstream import CannedUpstream, ThreadedServer
from test_budgets import CALL_COST, make_router

from llmrouter.server.app import ServerApp

KEY_A, KEY_B = "sk-a-0123456789abcdef", "sk-b-0123456789abcdef"


@pytest.fixture
def sidecar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ThreadedServer, ServerApp]]:
    monkeypatch.setenv("KEY_A", KEY_A)
    monkeypatch.setenv("KEY_B", KEY_B)
    upstream = CannedUpstream().start()
    router = make_router(
        tmp_path,
        upstream.base_url,
        [
            {"name": "a-cap", "scope": "key", "match": "KEY_A", "limit_usd": 2.5 * CALL_COST},
            {"name": "b-soft", "scope": "key", "match": "KEY_B", "limit_usd": 1e-9, "mode": "soft"},
        ],
        server={"api_keys_env": ["KEY_A", "KEY_B"]},
    )
    app = ServerApp(router)
    server = ThreadedServer(app).start()
    yield server, app
    server.stop()
    upstream.stop()


def post(server: ThreadedServer, key: str, **body: object) -> httpx.Response:
    payload = {"model": "auto", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    payload.update(body)
    return httpx.post(
        f"{server.url}/v1/chat/completions",
        json=payload,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def test_hard_budget_is_a_429_in_openai_shape(sidecar: tuple[ThreadedServer, ServerApp]) -> None:
    server, app = sidecar
    statuses = [post(server, KEY_A).status_code for _ in range(2)]
    assert statuses == [200, 200]
    refused = post(server, KEY_A)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["type"] == "insufficient_quota" and error["code"] == "budget_exceeded"
    assert "a-cap" in error["message"] and KEY_A not in refused.text
    assert post(server, KEY_B).status_code == 200  # another key, another budget
    assert app.router.ledger is not None
    rows = app.router.ledger.rows()
    assert [r["api_key_id"] for r in rows] == ["KEY_A", "KEY_A", "KEY_A", "KEY_B"]
    assert rows[2]["error_kind"] == "budget_exceeded"


def test_the_body_cannot_choose_the_key_id(sidecar: tuple[ThreadedServer, ServerApp]) -> None:
    server, app = sidecar
    assert post(server, KEY_B, api_key_id="KEY_A").status_code == 200
    assert app.router.ledger is not None
    assert app.router.ledger.rows()[-1]["api_key_id"] == "KEY_B"


def test_soft_budget_warns_in_a_header(sidecar: tuple[ThreadedServer, ServerApp]) -> None:
    server, _ = sidecar
    answer = post(server, KEY_B)
    assert answer.status_code == 200
    assert answer.headers["x-llmrouter-budget-warning"].startswith("b-soft: $")
    assert "x-llmrouter-budget-warning" not in post(server, KEY_A).headers


def test_soft_budget_warns_a_stream_in_its_headers(
    sidecar: tuple[ThreadedServer, ServerApp],
) -> None:
    server, _ = sidecar
    payload = {"model": "auto", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    with httpx.stream(
        "POST",
        f"{server.url}/v1/chat/completions",
        json={**payload, "stream": True},
        headers={"Authorization": f"Bearer {KEY_B}"},
        timeout=30,
    ) as answer:
        assert answer.status_code == 200
        assert answer.headers["x-llmrouter-budget-warning"].startswith("b-soft: $")
        assert [line for line in answer.iter_lines() if line][-1] == "data: [DONE]"


def test_dashboard_is_mounted_behind_the_keys(sidecar: tuple[ThreadedServer, ServerApp]) -> None:
    server, _ = sidecar
    post(server, KEY_A)
    page = httpx.get(f"{server.url}/dashboard/")
    assert page.status_code == 200 and '<script src="app.js">' in page.text
    assert httpx.get(f"{server.url}/dashboard/data.json").status_code == 401
    data = httpx.get(
        f"{server.url}/dashboard/data.json", headers={"Authorization": f"Bearer {KEY_A}"}
    ).json()
    assert data["totals"]["calls"] == 1
    assert [b["label"] for b in data["budgets"]] == ["a-cap", "b-soft"]
    assert data["budgets"][0]["scopes"][0]["spent_usd"] == pytest.approx(CALL_COST)
