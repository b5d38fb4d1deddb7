"""Sidecar replicas for the scale tests and the soak benchmark: a canned upstream process,
N ``llmrouter serve`` processes sharing one policy (PostgreSQL ledger, Redis shared state),
and an async load generator. Real processes, real sockets, loopback only."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

TESTS = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not become ready in {timeout_s} s")


def start_upstream(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(TESTS / "canned_upstream.py"), "--port", str(port)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    wait_ready(f"{base}/v1/models", process)
    return process, f"{base}/v1"


def write_policy(
    path: Path,
    upstream: str,
    pg_url: str,
    redis_url: str,
    prefix: str,
    budgets: Sequence[dict[str, Any]] = (),
    sync: bool = False,
    keys_env: Sequence[str] = (),
) -> Path:
    backend = {"base_url": upstream, "model": "canned", "context_window": 8192}
    policy = {
        "backends": [
            {
                **backend,
                "name": "small",
                "price": {"input_per_million": 1.0, "output_per_million": 2.0},
                "quality": 0.4,
            },
            {
                **backend,
                "name": "large",
                "price": {"input_per_million": 5.0, "output_per_million": 15.0},
                "quality": 0.9,
            },
        ],
        "routing": {"quality_floor": 0.5, "reference": "large", "predictor": "heuristic"},
        "cache": {"path": str(path.parent / "cache")},
        "ledger": {"url": pg_url, "sync": sync},
        "shared_state": {"redis_url": redis_url, "key_prefix": prefix},
        "budgets": list(budgets),
        "server": {"api_keys_env": list(keys_env)},
    }
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path


@dataclass
class Replica:
    policy: Path
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, env: dict[str, str] | None = None, cpu: int | None = None) -> Replica:
        command = [
            sys.executable,
            "-m",
            "llmrouter",
            "serve",
            "--policy",
            str(self.policy),
            "--port",
            str(self.port),
            "--log-level",
            "warning",
        ]
        if cpu is not None:
            command = ["taskset", "-c", str(cpu), *command]
        self.process = subprocess.Popen(
            command,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        wait_ready(f"{self.url}/health", self.process)
        return self

    def stop(self) -> None:
        """A clean shutdown (SIGTERM): the ledger is flushed before the process exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


@dataclass
class Result:
    status: int
    replica: int
    request_id: str | None = None
    cost_usd: float | None = None
    error: str | None = None


@dataclass
class Load:
    """Send ``total`` chat requests at ``concurrency``, round-robin over the replicas."""

    urls: list[str]
    total: int
    concurrency: int
    headers: dict[str, str] = field(default_factory=dict)
    retry_elsewhere: bool = False  # a refused connection is retried on the next replica
    results: list[Result] = field(default_factory=list)

    async def _one(self, client: httpx.AsyncClient, index: int) -> None:
        body = {
            "model": "auto",
            "messages": [{"role": "user", "content": f"Say hello to visitor number {index}."}],
            "max_tokens": 16,
        }
        choice = index % len(self.urls)
        for attempt in range(len(self.urls) if self.retry_elsewhere else 1):
            replica = (choice + attempt) % len(self.urls)
            try:
                response = await client.post(
                    f"{self.urls[replica]}/v1/chat/completions", json=body, headers=self.headers
                )
            except httpx.TransportError as exc:
                if attempt + 1 < (len(self.urls) if self.retry_elsewhere else 1):
                    continue
                self.results.append(Result(0, replica, error=type(exc).__name__))
                return
            cost = response.headers.get("x-llmrouter-cost-usd")
            self.results.append(
                Result(
                    response.status_code,
                    replica,
                    response.headers.get("x-llmrouter-request-id"),
                    float(cost) if cost else None,
                )
            )
            return

    async def run(self) -> float:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(self.total):
            queue.put_nowait(index)
        limits = httpx.Limits(max_connections=self.concurrency * 2)
        async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:

            async def worker() -> None:
                while not queue.empty():
                    await self._one(client, queue.get_nowait())

            began = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(self.concurrency)))
            return time.perf_counter() - began
