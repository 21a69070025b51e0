"""A fake OpenAI-compatible server on loopback, for tests: `/v1/models` and `/v1/chat/completions`.

Answers are deterministic: `answer(model, messages, request) -> text` (default: a text made from
the model name and the question). Words stand for tokens: `max_tokens` cuts the answer to that
many words with `finish_reason="length"`, and `usage` counts words.

Faults are injected per model (or for every request) and consumed in order:

    with FakeOpenAI(models=["a", "b"]) as server:     # server.url == "http://127.0.0.1:<port>/v1"
        server.fail(status=429, times=2)               # the next two requests get a 429
        server.fail(status=500, model="b")             # b's next request gets a 500
        server.fail(status="timeout", delay=2.0)       # answered only after 2 s (the client times out)
        server.fail(status="drop")                     # headers and half a body, then the connection closes

`server.requests` lists every request body received (faulty ones too) and `server.headers` their
headers, so tests can check what the client sent (and that a key went only into `Authorization`).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .loopback import LOOPBACK, LoopbackServer

AnswerFn = Callable[[str, list[dict[str, str]], dict[str, Any]], str]


def default_answer(model: str, messages: list[dict[str, str]], request: dict[str, Any]) -> str:
    """`<model> answers: <question>` (and the sample's seed, when the request has one)."""
    question = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    seed = request.get("seed")
    return f"{model} answers: {question}" + (f" (seed {seed})" if seed is not None else "")


@dataclass
class Fault:
    status: int | str
    """An HTTP status, `"timeout"` (answer after `delay` seconds) or `"drop"` (half a body, then close)."""
    model: str | None = None
    delay: float = 0.0


class _QuietServer(ThreadingHTTPServer):
    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: tuple[str, int]
    ) -> None:
        """A client that hung up (it timed out, or a fault closed the connection) is not an error here."""
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class FakeOpenAI(LoopbackServer):
    """A threaded HTTP server speaking the parts of the OpenAI API that `scas-hub generate` uses."""

    def __init__(
        self,
        models: list[str] | tuple[str, ...] = ("teacher",),
        answer: AnswerFn = default_answer,
        host: str = "127.0.0.1",
        api_key: str | None = None,
        port: int | None = None,
    ):
        if host not in LOOPBACK:  # checked again by start(): fail at construction, before any test work
            raise ValueError(f"the fake server listens on loopback only, not {host!r}")
        self.models = list(models)
        self.answer = answer
        self.host = host
        self.api_key = api_key
        self.port = port
        """When set, requests without `Authorization: Bearer <api_key>` get a 401."""
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start the server first"
        return f"http://{self.host}:{self._server.server_address[1]}/v1"

    def fail(self, status: int | str, times: int = 1, model: str | None = None, delay: float = 0.0) -> None:
        """Answer the next `times` matching requests with `status` (see the module docstring)."""
        with self._lock:
            self._faults.extend(Fault(status, model, delay) for _ in range(times))

    def completions(self, model: str | None = None) -> list[dict[str, Any]]:
        """The chat-completion request bodies received (for `model`, or all)."""
        return [r for r in self.requests if r.get("model") == model or model is None]

    def _take_fault(self, model: str | None) -> Fault | None:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.model is None or fault.model == model:
                    return self._faults.pop(i)
        return None

    # ---- lifecycle -------------------------------------------------------------------------------

    server_class = _QuietServer

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _handler(self)


def _handler(server: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet tests
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorised(self) -> bool:
            if server.api_key is None or self.headers.get("Authorization") == f"Bearer {server.api_key}":
                return True
            self._send(401, {"error": {"message": "invalid api key", "type": "authentication_error"}})
            return False

        def do_GET(self) -> None:
            if self.path.rstrip("/") != "/v1/models":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            if self._authorised():
                self._send(
                    200,
                    {
                        "object": "list",
                        "data": [{"id": m, "object": "model", "owned_by": "fake"} for m in server.models],
                    },
                )

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            with server._lock:
                server.requests.append(body)
                server.headers.append(dict(self.headers))
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            if not self._authorised():
                return
            model = body.get("model")
            fault = server._take_fault(model)
            if fault is not None and fault.status == "drop":
                # promise a body, send half of it, close: the client sees an incomplete response
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(b'{"id": "chatcmpl-drop", "choices": [')
                self.wfile.flush()
                self.close_connection = True
                return
            if fault is not None and fault.status == "timeout":
                time.sleep(fault.delay)
            elif fault is not None:
                self._send(int(fault.status), {"error": {"message": f"injected {fault.status}", "type": "fake_fault"}})
                return
            if model not in server.models:
                self._send(404, {"error": {"message": f"model {model!r} does not exist", "type": "NotFoundError"}})
                return
            messages = body.get("messages") or []
            words = server.answer(model, messages, body).split()
            max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
            finish = "stop"
            if max_tokens is not None and len(words) > int(max_tokens):
                words, finish = words[: int(max_tokens)], "length"
            prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
            self._send(
                200,
                {
                    "id": f"chatcmpl-{len(server.requests)}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": " ".join(words)},
                            "finish_reason": finish,
                        }
                    ],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": len(words),
                        "total_tokens": prompt_tokens + len(words),
                    },
                },
            )

    return Handler
