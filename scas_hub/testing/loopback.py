"""The lifecycle the tests' fake servers share: a threaded HTTP server on a loopback port."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..generate.server import free_port  # noqa: F401 (the fakes' callers take it from here)

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class LoopbackServer:
    """Base of the fakes: `start()`/`stop()` or `with`; subclasses give the request handler class.

    `host` and `port` are set by the subclass (port 0 or None: any free port, known after `start`).
    """

    host: str = "127.0.0.1"
    port: int | None = 0
    server_class: type[ThreadingHTTPServer] = ThreadingHTTPServer
    _server: ThreadingHTTPServer | None = None

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self) -> Any:
        if self.host not in LOOPBACK:
            raise ValueError(f"the fake servers listen on loopback only, not {self.host!r}")
        self._server = self.server_class((self.host, self.port or 0), self.handler_class())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=type(self).__name__, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
