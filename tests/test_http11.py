"""The lean HTTP/1.1 transport against a raw loopback server that answers exactly as scripted:
keep-alive reuse, chunked streams, peers that close, stall, lie about lengths or break HTTP."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from llmrouter.backends.http11 import LeanAsyncTransport, upstream_transport

Handler = Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]

OK = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"ok":true}'


class RawServer:
    """Reads one request head (and its body, by content-length) at a time and lets a handler
    write whatever bytes it likes; the handler returns False to close the connection."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        if self.tls is not None:
            return f"https://localhost:{port}/v1/chat/completions"
        return f"http://127.0.0.1:{port}/v1/chat/completions"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                keep = await self.handler(head + body, writer)
                await writer.drain()
                if not keep:
                    return
        finally:
            writer.close()


async def answer_ok(request: bytes, writer: asyncio.StreamWriter) -> bool:
    writer.write(OK)
    return True


async def post(transport: httpx.AsyncBaseTransport, url: str, timeout: float = 5) -> httpx.Response:
    async with httpx.AsyncClient(transport=transport) as client:
        return await client.post(url, json={"hello": "world"}, timeout=timeout)


async def test_connections_are_kept_alive_and_reused() -> None:
    async with RawServer(answer_ok) as server:
        transport = LeanAsyncTransport()
        client = httpx.AsyncClient(transport=transport)
        for _ in range(5):
            response = await client.post(server.url, json={"n": 1})
            assert response.status_code == 200 and response.json() == {"ok": True}
        assert server.connections == 1
        head = server.requests[0].split(b"\r\n\r\n")[0].lower()
        assert head.startswith(b"post /v1/chat/completions http/1.1")
        assert b"content-length: 7" in head and b"host: 127.0.0.1:" in head
        assert server.requests[0].endswith(b'{"n":1}')
        await client.aclose()


async def test_a_request_without_httpx_defaults_gets_host_and_length() -> None:
    """The router builds its requests with the body as a stream (no Host or Content-Length
    added by httpx); the transport must still frame them correctly."""
    async with RawServer(answer_ok) as server:
        transport = LeanAsyncTransport()
        request = httpx.Request(
            "POST",
            server.url,
            headers={"content-type": "application/json"},
            stream=httpx.ByteStream(b'{"n":22}'),
        )
        assert "host" not in request.headers and "content-length" not in request.headers
        response = await transport.handle_async_request(request)
        assert response.status_code == 200
        await response.aread()
        head = server.requests[0].split(b"\r\n\r\n")[0].lower()
        assert head.split(b"\r\n")[1].startswith(b"host: 127.0.0.1:")
        assert b"content-length: 8" in head
        assert server.requests[0].endswith(b'{"n":22}')
        await transport.aclose()


async def test_concurrent_requests_open_more_connections_within_the_limit() -> None:
    async def slow_ok(request: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.05)
        writer.write(OK)
        return True

    async with RawServer(slow_ok) as server:
        transport = LeanAsyncTransport(httpx.Limits(max_connections=2))
        client = httpx.AsyncClient(transport=transport)
        answers = await asyncio.gather(*[client.post(server.url, json={}) for _ in range(6)])
        assert [a.status_code for a in answers] == [200] * 6
        assert server.connections == 2  # the other four waited for a free connection
        await client.aclose()


async def test_pool_timeout_when_every_connection_stays_busy() -> None:
    async def stall(request: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(1)
        writer.write(OK)
        return True

    async with RawServer(stall) as server:
        transport = LeanAsyncTransport(httpx.Limits(max_connections=1))
        client = httpx.AsyncClient(transport=transport)
        first = asyncio.ensure_future(client.post(server.url, json={}, timeout=5))
        await asyncio.sleep(0.05)
        with pytest.raises(httpx.PoolTimeout):
            await client.post(server.url, json={}, timeout=httpx.Timeout(5, pool=0.1))
        assert (await first).status_code == 200
        await client.aclose()


async def test_chunked_stream_arrives_chunk_by_chunk() -> None:
    events = [b'data: {"n": %d}\n\n' % i for i in range(3)] + [b"data: [DONE]\n\n"]

    async def sse(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        for event in events:
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\n\r\n")
        return True

    async with RawServer(sse) as server:
        client = httpx.AsyncClient(transport=LeanAsyncTransport())
        for _ in range(2):  # the connection goes back to the pool after a complete stream
            async with client.stream("POST", server.url, json={}) as response:
                lines = [line async for line in response.aiter_lines() if line]
            assert lines == [e.decode().strip() for e in events]
        assert server.connections == 1
        await client.aclose()


async def test_a_stream_abandoned_midway_closes_its_connection() -> None:
    async def endless(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(100):
            writer.write(b"6\r\ndata: \r\n")
            await writer.drain()
            await asyncio.sleep(0.01)
        return False

    async with RawServer(endless) as server:
        transport = LeanAsyncTransport()
        client = httpx.AsyncClient(transport=transport)
        async with client.stream("POST", server.url, json={}) as response:
            async for _ in response.aiter_bytes():
                break
        pool = next(iter(transport._pools.values()))
        assert pool.open == 0 and pool.idle == []  # not reused with unread bytes on the wire
        await client.aclose()


async def test_a_peer_that_closes_idle_connections_costs_nothing() -> None:
    async def once(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(OK)
        return False  # answer, then close (as an upstream whose keep-alive timeout passed)

    async with RawServer(once) as server:
        client = httpx.AsyncClient(transport=LeanAsyncTransport())
        for _ in range(3):
            assert (await client.post(server.url, json={})).status_code == 200
            await asyncio.sleep(0.02)  # the close reaches the pool before the next request
        assert server.connections == 3
        await client.aclose()


async def test_connection_close_header_is_honoured() -> None:
    async def close_after(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(OK.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n"))
        return True  # the server would keep going; the client must not reuse

    async with RawServer(close_after) as server:
        transport = LeanAsyncTransport()
        client = httpx.AsyncClient(transport=transport)
        for _ in range(2):
            assert (await client.post(server.url, json={})).status_code == 200
        assert server.connections == 2
        await client.aclose()


async def test_read_timeout() -> None:
    async def silent(request: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(2)
        return False

    async with RawServer(silent) as server:
        with pytest.raises(httpx.ReadTimeout):
            await post(LeanAsyncTransport(), server.url, timeout=0.2)


async def test_body_shorter_than_its_length_is_an_error() -> None:
    async def truncated(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"partial":')
        return False

    async with RawServer(truncated) as server:
        with pytest.raises(httpx.ReadError):
            await post(LeanAsyncTransport(), server.url)


async def test_malformed_response_is_a_protocol_error() -> None:
    async def garbage(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"SMTP ready\r\n\r\n")
        return True

    async with RawServer(garbage) as server:
        with pytest.raises(httpx.RemoteProtocolError):
            await post(LeanAsyncTransport(), server.url)


async def test_connection_refused() -> None:
    async with RawServer(answer_ok) as server:
        url = server.url
    with pytest.raises(httpx.ConnectError):
        await post(LeanAsyncTransport(), url)


def test_a_transport_survives_a_new_event_loop() -> None:
    """``asyncio.run`` twice with one Router: the old loop's sockets are not reused."""
    transport = LeanAsyncTransport()

    async def one() -> int:
        async with RawServer(answer_ok) as server:
            client = httpx.AsyncClient(transport=transport)
            return (await client.post(server.url, json={})).status_code

    assert asyncio.run(one()) == 200
    assert asyncio.run(one()) == 200


def test_environment_proxies_and_the_switch_choose_httpx_own_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limits = httpx.Limits()
    assert isinstance(upstream_transport(limits, "http://10.1.2.3:8000/v1"), LeanAsyncTransport)
    monkeypatch.setenv("http_proxy", "http://proxy.internal:3128")
    monkeypatch.setenv("no_proxy", "localhost")
    assert isinstance(
        upstream_transport(limits, "http://10.1.2.3:8000/v1"), httpx.AsyncHTTPTransport
    )
    assert isinstance(upstream_transport(limits, "http://localhost:8000/v1"), LeanAsyncTransport)
    monkeypatch.delenv("http_proxy")
    monkeypatch.setenv("LLMROUTER_HTTP_TRANSPORT", "httpcore")
    assert isinstance(
        upstream_transport(limits, "http://10.1.2.3:8000/v1"), httpx.AsyncHTTPTransport
    )


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost, made by the openssl command-line tool."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command-line tool is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    command = [
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
    ]
    command += ["-keyout", str(key), "-out", str(cert)]
    command += ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]
    subprocess.run(command, check=True, capture_output=True)
    return cert, key


async def test_https_with_a_trusted_certificate(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    async with RawServer(answer_ok, tls=served) as server:
        trusted = ssl.create_default_context(cafile=str(cert))
        client = httpx.AsyncClient(transport=LeanAsyncTransport(ssl_context=trusted))
        for _ in range(3):
            response = await client.post(server.url, json={})
            assert response.status_code == 200 and response.json() == {"ok": True}
        assert server.connections == 1  # TLS connections are kept alive too
        await client.aclose()


async def test_https_refuses_an_untrusted_certificate(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    async with RawServer(answer_ok, tls=served) as server:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await post(LeanAsyncTransport(), server.url)  # certifi's roots do not know it


async def test_backend_client_reads_plain_and_gzipped_answers() -> None:
    """The client's fast path for whole, uncompressed bodies and httpx's decoders for the rest."""
    import gzip

    from llmrouter.backends.openai_compatible import OpenAICompatibleClient
    from llmrouter.policy.schema import BackendConfig

    packed = gzip.compress(b'{"answer":"zipped"}')

    async def both(request: bytes, writer: asyncio.StreamWriter) -> bool:
        if b"zip" in request:
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n"
                % len(packed)
                + packed
            )
        else:
            writer.write(OK)
        return True

    async with RawServer(both) as server:
        base = server.url.removesuffix("/chat/completions")
        client = OpenAICompatibleClient(BackendConfig(name="b", base_url=base, model="m"))
        assert await client.acomplete({"q": "plain"}, timeout=5) == {"ok": True}
        assert await client.acomplete({"q": "zip"}, timeout=5) == {"answer": "zipped"}
        await client.aclose()


async def test_interim_1xx_answers_are_skipped() -> None:
    """A 103 Early Hints is not the answer: the 200 behind it is, and it is not left on the
    connection for the next request to read."""

    async def hints_first(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.02)  # the real answer comes in a later packet
        writer.write(OK)
        return True

    async with RawServer(hints_first) as server:
        client = httpx.AsyncClient(transport=LeanAsyncTransport())
        for _ in range(2):
            response = await client.post(server.url, json={})
            assert response.status_code == 200 and response.json() == {"ok": True}
            assert "link" not in response.headers
        assert server.connections == 1
        await client.aclose()


async def test_an_answer_without_length_ends_with_its_connection() -> None:
    async def close_delimited(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{"ok":true}')
        return False  # the close marks the end of the body

    async with RawServer(close_delimited) as server:
        client = httpx.AsyncClient(transport=LeanAsyncTransport())
        for _ in range(2):
            assert (await client.post(server.url, json={})).json() == {"ok": True}
        assert server.connections == 2
        await client.aclose()


async def test_bytes_on_an_idle_connection_retire_it() -> None:
    """A server that says '408' on an idle keep-alive connection before closing it: the next
    request goes out on a fresh connection instead of reading that 408."""

    async def timeout_notice(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(OK)
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(
            b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
        )
        return True

    async with RawServer(timeout_notice) as server:
        client = httpx.AsyncClient(transport=LeanAsyncTransport())
        assert (await client.post(server.url, json={})).status_code == 200
        await asyncio.sleep(0.1)
        assert (await client.post(server.url, json={})).status_code == 200
        assert server.connections == 2 and len(server.requests) == 2
        await client.aclose()


async def test_a_wakeup_is_passed_on_when_its_waiter_was_cancelled() -> None:
    """With one connection, B and C wait; A finishes and wakes B, whose client disconnects in
    that same loop turn. C must get the connection, not wait out its pool timeout."""

    async def slow_ok(request: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.1)
        writer.write(OK)
        return True

    async with RawServer(slow_ok) as server:
        transport = LeanAsyncTransport(httpx.Limits(max_connections=1))
        client = httpx.AsyncClient(transport=transport)
        a = asyncio.ensure_future(client.post(server.url, json={}))
        await asyncio.sleep(0.03)
        b = asyncio.ensure_future(client.post(server.url, json={}))
        c = asyncio.ensure_future(
            client.post(server.url, json={}, timeout=httpx.Timeout(5, pool=2))
        )
        await asyncio.sleep(0.03)
        pool = next(iter(transport._pools.values()))
        wake = pool._wake_one

        def wake_then_cancel_b() -> None:
            woken = bool(pool.waiting)
            wake()
            if woken and not b.done():
                b.cancel()
                pool._wake_one = wake  # only the first wake-up is sabotaged

        pool._wake_one = wake_then_cancel_b  # type: ignore[method-assign]
        assert (await a).status_code == 200
        with pytest.raises(asyncio.CancelledError):
            await b
        done, _ = await asyncio.wait({c}, timeout=10)  # without the hand-on, C waits 30 s
        assert c in done and c.result().status_code == 200
        assert pool.open == 1
        await client.aclose()
