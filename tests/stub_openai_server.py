"""A real HTTP server (stdlib, 127.0.0.1, an ephemeral port) that looks like an OpenAI server from the
outside: ``GET /v1/models`` lists one model, and every completion answers with a fixed error status.
``serving`` serves any handler the same way; ``closed_port`` is a port where nothing listens.
Tests use it to drive the real client code against a server that fails, without mocking anything.

Usage::

    with stub_openai_server(status=500, message="engine dead") as base_url:   # http://127.0.0.1:PORT/v1
        ...
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "stub-model"


def _handler(status: int, message: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, code: int, payload: dict) -> None:
            body = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": MODEL, "object": "model", "max_model_len": 2048}]})
            else:
                self._send(404, {"detail": "Not Found"})

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            if self.path.startswith("/v1/"):
                self._send(status, {"error": {"message": message, "type": "server_error", "code": status}})
            else:
                self._send(404, {"detail": "Not Found"})

        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

    return Handler


@contextlib.contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """``handler`` served on 127.0.0.1 (an ephemeral port, a thread per request) until the block ends;
    yields the port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def stub_openai_server(status: int = 500, message: str = "the engine is dead") -> Iterator[str]:
    """Serve until the block ends; yields the base URL ending in ``/v1``."""
    with serving(_handler(status, message)) as port:
        yield f"http://127.0.0.1:{port}/v1"


def closed_port() -> int:
    """A loopback port where nothing listens (free a moment ago: bound once to pick it, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
