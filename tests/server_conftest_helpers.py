"""Helpers for the sidecar tests: run ``llmrouter serve`` as a real process on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml

from llmrouter.local_model import free_port

# Fast failure handling, so failure tests take fractions of a second.
FAST_FALLBACK = {
    "retries": 1,
    "backoff_initial_s": 0.01,
    "backoff_max_s": 0.05,
    "deadline_s": 3.0,
    "circuit_breaker": {"failure_threshold": 1000, "reset_after_s": 1},
}


def unique(text: str = "Hi! How are you today?") -> str:
    """A prompt no earlier test sent (so it misses the exact cache)."""
    return f"{text} [{uuid.uuid4().hex[:8]}]"


def write_policy(directory: Path, backends: list[dict[str, Any]], **sections: Any) -> Path:
    policy: dict[str, Any] = {"backends": backends}
    # The server tests are about the wire, not the predictor: the explainable heuristic
    # routes their nonce-tagged greetings deterministically to the cheap backend.
    policy["routing"] = sections.pop("routing", {"quality_floor": 0.7, "predictor": "heuristic"})
    policy["fallback"] = sections.pop("fallback", FAST_FALLBACK)
    policy["cache"] = {"path": str(directory / "cache"), **sections.pop("cache", {})}
    policy["ledger"] = {"url": f"sqlite:///{directory / 'ledger.db'}"}
    policy.update(sections)
    path = directory / "policy.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path


class Sidecar:
    """``llmrouter serve --policy P`` in a subprocess; ``url`` is its ``/v1`` base."""

    def __init__(self, policy: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.policy = policy
        self.log = policy.parent / f"serve-{self.port}.log"
        command = [
            sys.executable,
            "-m",
            "llmrouter.cli.main",
            "serve",
            "--policy",
            str(policy),
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            *extra,
        ]
        self._process = subprocess.Popen(
            command,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=policy.parent,
        )

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.root}/v1"

    def wait(self, timeout_s: float = 30.0) -> Sidecar:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"llmrouter serve exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.root}/health", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"llmrouter serve not ready: {self.log.read_text()[-2000:]}")

    def alive(self) -> bool:
        return self._process.poll() is None

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def ledger_rows(self) -> list[dict[str, Any]]:
        """Rows of the sidecar's ledger (the writer commits within moments; poll briefly)."""
        import sqlite3

        path = self.policy.parent / "ledger.db"
        connection = sqlite3.connect(path)
        connection.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in connection.execute("SELECT * FROM calls ORDER BY id")]
        finally:
            connection.close()


def wait_for(predicate: Any, timeout_s: float = 5.0) -> Any:
    """Poll until ``predicate()`` is truthy (for effects another process commits)."""
    deadline = time.monotonic() + timeout_s
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(0.02)
        value = predicate()
    return value
