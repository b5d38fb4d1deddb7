"""Shared fixtures: the real local model, a scripted upstream, and policy files."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from llmrouter.local_model import LocalModelServer

from upstream import Upstream

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("LLMROUTER_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def local_llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a real llama.cpp server running Gemma 3 270M, once per session."""
    log = tmp_path_factory.mktemp("llama") / "server.log"
    server = LocalModelServer(log_file=log)
    server.start(timeout_s=180)
    yield server.base_url
    server.stop()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream().start()
    yield server
    server.stop()


PolicyFactory = Callable[..., Path]


@pytest.fixture
def make_policy(tmp_path: Path) -> PolicyFactory:
    """Write a policy whose cache and ledger live in this test's temporary directory."""

    def factory(
        backends: list[dict[str, Any]],
        routing: dict[str, Any] | None = None,
        **sections: Any,
    ) -> Path:
        policy: dict[str, Any] = {"backends": backends}
        if routing:
            policy["routing"] = routing
        policy["cache"] = {"path": str(tmp_path / "cache"), **sections.pop("cache", {})}
        policy["ledger"] = {
            "url": f"sqlite:///{tmp_path / 'ledger.db'}",
            **sections.pop("ledger", {}),
        }
        policy.update(sections)
        path = tmp_path / "policy.yaml"
        path.write_text(yaml.safe_dump(policy, sort_keys=False))
        return path

    return factory


def two_tier(base_url: str, **overrides: Any) -> list[dict[str, Any]]:
    """The issue's contract policy: a cheap weak backend and a pricey strong one."""
    small = {
        "name": "small",
        "provider": "openai-compatible",
        "base_url": base_url,
        "model": "gemma-3-270m",
        "price": {"input_per_million": 0.10, "output_per_million": 0.40},
        "context_window": 8192,
        "quality": 0.35,
    }
    large = {
        "name": "large",
        "provider": "openai-compatible",
        "base_url": base_url,
        "model": "gemma-3-270m",
        "api_key_env": "LARGE_API_KEY",
        "price": {"input_per_million": 5.00, "output_per_million": 15.00},
        "context_window": 8192,
        "quality": 0.90,
        "capabilities": ["tools", "json"],
    }
    small.update(overrides.get("small", {}))
    large.update(overrides.get("large", {}))
    return [small, large]
