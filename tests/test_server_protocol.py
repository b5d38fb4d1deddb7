"""The sidecar's own HTTP/1.1 server on raw sockets: keep-alive, pipelining, 100-continue,
limits, malformed input, HEAD, graceful shutdown and pre-forked workers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_conftest_helpers import Sidecar, unique, wait_for, write_policy

from upstream import Step, Upstream


def backends(base_url: str) -> list[dict[str, Any]]:
    return [
        {
            "name": "small",
            "base_url": base_url,
            "model": "scripted-small",
            "price": {"input_per_million": 0.10, "output_per_million": 0.40},
            "context_window": 8192,
            "quality": 0.9,
            "timeout_s": 5,
        }
    ]


@pytest.fixture(scope="module")
def scripted() -> Iterator[Upstream]:
    server = Upstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sidecar(scripted: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar]:
    policy = write_policy(
        tmp_path_factory.mktemp("protocol"),
        backends(scripted.base_url),
        server={"max_body_bytes": 32 * 1024, "keep_alive_s": 0.5, "request_timeout_s": 1.5},
    )
    server = Sidecar(policy).wait()
    yield server
    server.stop()


def chat(content: str | None = None, extra_headers: str = "") -> bytes:
    body = json.dumps({"messages": [{"role": "user", "content": content or unique()}]}).encode()
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        + extra_headers.encode()
        + b"content-length: %d\r\n\r\n" % len(body)
        + body
    )


def read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, dict[str, str], bytes]:
    """One whole response (content-length framed) from ``sock``; leftovers stay in buffer."""
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed before a response; got {bytes(buffer)!r}")
        buffer += data
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    size = int(headers.get("content-length", "0"))
    while len(rest) < size:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed mid-body")
        rest += data
    buffer[:] = rest[size:]
    return status, headers, rest[:size]


def closed_by_peer(sock: socket.socket, timeout_s: float = 3.0) -> bool:
    sock.settimeout(timeout_s)
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, TimeoutError):
        return False


def stream_request(version: bytes = b"1.1") -> bytes:
    body = json.dumps({"messages": [{"role": "user", "content": unique()}], "stream": True})
    return b"POST /v1/chat/completions HTTP/%s\r\ncontent-length: %d\r\n\r\n%s" % (
        version,
        len(body),
        body.encode(),
    )


def recv_until(sock: socket.socket, done: Callable[[bytes], bool], timeout_s: float = 10) -> bytes:
    """Bytes from ``sock`` until ``done(data)`` or the peer closes."""
    data = b""
    sock.settimeout(timeout_s)
    while not done(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def connect(sidecar: Sidecar) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", sidecar.port), timeout=10)
    return sock


def test_keep_alive_then_close_on_request(sidecar: Sidecar) -> None:
    sock, buffer = connect(sidecar), bytearray()
    for _ in range(3):
        sock.sendall(chat())
        status, headers, body = read_response(sock, buffer)
        assert status == 200 and "connection" not in headers
        assert json.loads(body)["object"] == "chat.completion"
    sock.sendall(chat(extra_headers="connection: close\r\n"))
    status, headers, _ = read_response(sock, buffer)
    assert status == 200 and headers["connection"] == "close"
    assert closed_by_peer(sock)


def test_pipelined_requests_are_answered_in_order(sidecar: Sidecar) -> None:
    sock, buffer = connect(sidecar), bytearray()
    prompts = [unique(f"pipelined {n}") for n in range(5)]
    sock.sendall(b"".join(chat(p) for p in prompts) + b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
    ids = []
    for _ in prompts:
        status, headers, body = read_response(sock, buffer)
        assert status == 200
        ids.append(headers["x-llmrouter-request-id"])
    status, _, body = read_response(sock, buffer)
    assert status == 200 and json.loads(body)["status"] == "ok"
    assert len(set(ids)) == 5
    sock.close()


def test_idle_keep_alive_connections_are_closed(sidecar: Sidecar) -> None:
    sock = connect(sidecar)
    sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
    read_response(sock, bytearray())
    assert closed_by_peer(sock, timeout_s=3)  # keep_alive_s is 0.5 in this policy


def test_expect_100_continue(sidecar: Sidecar) -> None:
    sock, buffer = connect(sidecar), bytearray()
    request = chat(extra_headers="expect: 100-continue\r\n")
    head, _, body = request.partition(b"\r\n\r\n")
    sock.sendall(head + b"\r\n\r\n")
    interim = sock.recv(64)
    assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    buffer += interim[len(b"HTTP/1.1 100 Continue\r\n\r\n") :]
    sock.sendall(body)
    status, _, _ = read_response(sock, buffer)
    assert status == 200


def test_declared_oversized_body_is_refused_before_it_is_sent(sidecar: Sidecar) -> None:
    sock, buffer = connect(sidecar), bytearray()
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\n"
        b"content-length: 10000000\r\n\r\n"
    )
    status, headers, body = read_response(sock, buffer)
    assert status == 413 and headers["connection"] == "close"
    assert json.loads(body)["error"]["code"] == "request_too_large"
    assert closed_by_peer(sock)


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\ncontent-length: abc\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_malformed_requests_are_400_and_the_server_stays_up(sidecar: Sidecar, raw: bytes) -> None:
    sock, buffer = connect(sidecar), bytearray()
    sock.sendall(raw)
    status, headers, body = read_response(sock, buffer)
    assert status == 400 and headers["connection"] == "close"
    assert json.loads(body)["error"]["type"] == "invalid_request_error"
    assert closed_by_peer(sock)
    assert httpx.get(f"{sidecar.root}/health").status_code == 200


def test_oversized_headers_are_431(sidecar: Sidecar) -> None:
    sock, buffer = connect(sidecar), bytearray()
    sock.sendall(b"GET /health HTTP/1.1\r\nx-big: " + b"a" * (70 * 1024) + b"\r\n\r\n")
    status, _, _ = read_response(sock, buffer)
    assert status == 431
    assert closed_by_peer(sock)


def test_head_has_headers_and_no_body(sidecar: Sidecar) -> None:
    sock = connect(sidecar)
    sock.sendall(b"HEAD /v1/models HTTP/1.1\r\nhost: x\r\n\r\nGET /health HTTP/1.1\r\n\r\n")
    sock.settimeout(5)
    time.sleep(0.3)
    data = sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"content-length: " in head and not head.endswith(b"content-length: 0")
    assert rest.startswith(b"HTTP/1.1 200 OK")  # the next response follows at once: no body
    assert b"date: " in head


def test_streams_are_chunked_on_http_1_1_and_end_at_close_on_http_1_0(sidecar: Sidecar) -> None:
    for version in (b"1.1", b"1.0"):
        sock = connect(sidecar)
        sock.sendall(stream_request(version))
        data = recv_until(sock, lambda d: d.endswith((b"0\r\n\r\n", b"[DONE]\n\n")))
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert b"text/event-stream" in head
        if version == b"1.1":
            assert b"transfer-encoding: chunked" in head
            assert rest.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")
        else:
            assert b"transfer-encoding" not in head and b"connection: close" in head
            assert rest.startswith(b"data: {") and rest.endswith(b"data: [DONE]\n\n")
            assert closed_by_peer(sock)
        sock.close()


def test_an_upgrade_request_is_answered_over_http_1_1(sidecar: Sidecar) -> None:
    sock, buffer = connect(sidecar), bytearray()
    sock.sendall(
        b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: Upgrade, HTTP2-Settings\r\n"
        b"upgrade: h2c\r\nhttp2-settings: AAMAAABkAAQAAP__\r\n\r\n"
    )
    status, _, body = read_response(sock, buffer)
    assert status == 200 and json.loads(body)["status"] == "ok"
    assert closed_by_peer(sock)


def test_graceful_shutdown_finishes_requests_in_flight(scripted: Upstream, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, backends(scripted.base_url))
    sidecar = Sidecar(policy).wait()
    scripted.play(Step("slow", delay_s=1.0))
    answers: list[int] = []

    def call() -> None:
        response = httpx.post(
            f"{sidecar.url}/chat/completions",
            json={"messages": [{"role": "user", "content": unique()}]},
            timeout=10,
        )
        answers.append(response.status_code)

    caller = threading.Thread(target=call)
    caller.start()
    assert wait_for(lambda: len(scripted.requests) == 1)
    sidecar._process.send_signal(signal.SIGTERM)
    caller.join(10)
    assert answers == [200]
    assert sidecar._process.wait(10) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{sidecar.root}/health", timeout=1)
    scripted.play()


def worker_pids(parent: int) -> set[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(parent)], capture_output=True, text=True
    ).stdout
    return {int(pid) for pid in out.split()}


def test_workers_share_the_port_and_a_dead_worker_is_replaced(
    scripted: Upstream, tmp_path: Path
) -> None:
    policy = write_policy(tmp_path, backends(scripted.base_url))
    sidecar = Sidecar(policy, "--workers", "2").wait()
    parent = sidecar._process.pid
    assert wait_for(lambda: len(worker_pids(parent)) == 2)
    first = worker_pids(parent)
    for _ in range(20):  # fresh connections: the kernel spreads them over the workers
        response = httpx.post(
            f"{sidecar.url}/chat/completions",
            json={"messages": [{"role": "user", "content": unique()}]},
        )
        assert response.status_code == 200
    os.kill(next(iter(first)), signal.SIGKILL)
    assert wait_for(lambda: len(worker_pids(parent)) == 2 and worker_pids(parent) != first, 15)
    assert httpx.get(f"{sidecar.root}/health").status_code == 200
    sidecar._process.send_signal(signal.SIGTERM)
    assert sidecar._process.wait(15) == 0
    assert worker_pids(parent) == set()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_a_client_that_pipelines_and_never_reads_cannot_grow_memory(sidecar: Sidecar) -> None:
    before = rss_mb(sidecar._process.pid)
    sock = connect(sidecar)
    sock.setblocking(False)
    request = b"GET /openapi.json HTTP/1.1\r\nhost: x\r\n\r\n" * 100
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:  # write as fast as the server reads; never read
        try:
            sock.send(request)
        except BlockingIOError:
            time.sleep(0.01)
    grown = rss_mb(sidecar._process.pid) - before
    sock.close()
    assert grown < 30, f"server grew {grown:.0f} MB for one connection that does not read"
    assert httpx.get(f"{sidecar.root}/health").status_code == 200


def test_a_bad_event_mid_stream_ends_that_response_and_the_next_is_served(
    sidecar: Sidecar, scripted: Upstream
) -> None:
    scripted.play("bad_chunk")
    sock = connect(sidecar)
    sock.sendall(stream_request() + b"GET /health HTTP/1.1\r\n\r\n")
    data = recv_until(sock, lambda d: b'"status":"ok"' in d, timeout_s=5)
    assert b'"status":"ok"' in data, f"closed without answering the pipelined request: {data!r}"
    stream, _, rest = data.partition(b"\r\n0\r\n\r\n")
    assert b"data: [DONE]" not in stream  # a cut answer never looks complete
    assert b"not a chat completion chunk" in stream
    assert rest.startswith(b"HTTP/1.1 200 OK")
    scripted.play()


def test_no_100_continue_for_http_1_0_or_behind_another_request(sidecar: Sidecar) -> None:
    sock, buffer = connect(sidecar), bytearray()
    sock.sendall(
        b"GET /health HTTP/1.0\r\nconnection: keep-alive\r\n\r\n"
        b"POST /v1/chat/completions HTTP/1.0\r\nexpect: 100-continue\r\n"
        b"content-length: 2\r\n\r\n{}"
    )
    status, headers, _ = read_response(sock, buffer)
    assert status == 200 and headers["connection"] == "keep-alive"
    status, _, body = read_response(sock, buffer)
    assert status == 400, body  # the POST's own answer; no interim 100 before it
    assert b"100 Continue" not in bytes(buffer)


def test_a_request_that_trickles_in_gets_408(sidecar: Sidecar) -> None:
    sock, buffer = connect(sidecar), bytearray()
    sock.sendall(b"GET /health HTTP/1.1\r\n")
    for _ in range(8):  # a header line every 0.3 s keeps it active, never complete
        time.sleep(0.3)
        try:
            sock.sendall(b"x-slow: 1\r\n")
        except OSError:
            break
    status, _, body = read_response(sock, buffer)
    assert status == 408
    assert json.loads(body)["error"]["code"] == "request_timeout"


def test_an_absolute_form_url_without_a_path(sidecar: Sidecar) -> None:
    sock, buffer = connect(sidecar), bytearray()
    sock.sendall(b"GET http://x HTTP/1.1\r\nhost: x\r\n\r\n")
    status, _, body = read_response(sock, buffer)
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"
