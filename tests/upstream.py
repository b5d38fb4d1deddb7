"""A scripted upstream: a real HTTP server on loopback that plays a cloud provider.

Each request to ``/v1/chat/completions`` takes the next step of the script
(``ok`` once the script is empty): 429 with Retry-After, 500/503, a response
slower than the deadline, a connection reset, malformed JSON, a stream cut in
the middle, a stream without usage. Every request body is kept for assertions.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

USAGE = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
ANSWER = "Hello from upstream"


@dataclass
class Step:
    kind: str  # ok, 429, 500, 503, slow, reset, malformed, cut, bad_chunk, no_usage, 400, 401
    retry_after: str | None = None
    delay_s: float = 0.0


@dataclass
class Upstream:
    host: str = "127.0.0.1"
    port: int = 0
    script: deque[Step] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    answer: str = ANSWER
    _server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def play(self, *steps: str | Step) -> None:
        self.script.clear()
        for step in steps:
            self.script.append(step if isinstance(step, Step) else Step(step))
        self.requests.clear()

    def next_step(self) -> Step:
        return self.script.popleft() if self.script else Step("ok")

    def start(self) -> Upstream:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                upstream.requests.append(
                    {"path": self.path, "body": body, "auth": self.headers.get("authorization")}
                )
                step = upstream.next_step()
                upstream.serve(self, step, body)

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # --- behaviours ---------------------------------------------------------------------------

    def serve(self, handler: BaseHTTPRequestHandler, step: Step, body: dict[str, Any]) -> None:
        kind = step.kind
        if step.delay_s or kind == "slow":
            time.sleep(step.delay_s or 5.0)
        if kind == "reset":
            handler.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            handler.connection.close()
            handler.close_connection = True
            return
        if kind in ("429", "500", "503", "400", "401"):
            headers = {"retry-after": step.retry_after} if step.retry_after else {}
            error = {"error": {"message": f"scripted {kind}", "type": "scripted"}}
            self._send(handler, int(kind), json.dumps(error).encode(), headers)
            return
        if kind == "malformed":
            self._send(handler, 200, b'{"id": "x", "choices": [', {})
            return
        if handler.path.endswith("/messages"):  # Anthropic's Messages API
            self._send(handler, 200, json.dumps(self.anthropic_message(body)).encode(), {})
            return
        if body.get("stream"):
            self._stream(
                handler, body, cut=kind == "cut", usage=kind != "no_usage", bad=kind == "bad_chunk"
            )
            return
        completion = self.completion(body, usage=kind != "no_usage")
        self._send(handler, 200, json.dumps(completion).encode(), {})

    def completion(self, body: dict[str, Any], usage: bool = True) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.answer}
        finish = "stop"
        if body.get("tools"):
            tool = body["tools"][0]["function"]["name"]
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": tool, "arguments": '{"city": "Paris"}'},
                    }
                ],
            }
            finish = "tool_calls"
        result: dict[str, Any] = {
            "id": "chatcmpl-upstream",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "scripted"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        }
        if usage:
            result["usage"] = dict(USAGE)
        return result

    def anthropic_message(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": "msg_upstream",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "scripted"),
            "content": [{"type": "text", "text": self.answer}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 21, "output_tokens": 7},
        }

    def _stream(
        self,
        handler: BaseHTTPRequestHandler,
        body: dict[str, Any],
        cut: bool,
        usage: bool,
        bad: bool = False,
    ) -> None:
        handler.send_response(200)
        handler.send_header("content-type", "text/event-stream")
        handler.send_header("connection", "close")
        handler.end_headers()
        base = {
            "id": "chatcmpl-upstream",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", "scripted"),
        }
        words = self.answer.split(" ")
        events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant"}}]}]
        for position, word in enumerate(words):
            text = word if position == 0 else " " + word
            events.append({**base, "choices": [{"index": 0, "delta": {"content": text}}]})
        events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        include_usage = usage and (body.get("stream_options") or {}).get("include_usage")
        if include_usage:
            events.append({**base, "choices": [], "usage": dict(USAGE)})
        for position, event in enumerate(events):
            if cut and position == 2:
                # Let the client read what was sent: a reset discards unread data.
                time.sleep(0.2)
                handler.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                handler.connection.close()
                handler.close_connection = True
                return
            if bad and position == 2:  # valid JSON, but not a chunk
                event = {"choices": "not a list"}
            handler.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            handler.wfile.flush()
        handler.wfile.write(b"data: [DONE]\n\n")
        handler.wfile.flush()
        handler.close_connection = True

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler, status: int, payload: bytes, headers: dict[str, str]
    ) -> None:
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(payload)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)
