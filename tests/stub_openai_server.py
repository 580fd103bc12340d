"""A real HTTP server (stdlib, 127.0.0.1, an ephemeral port) that looks like an OpenAI server from the
outside: ``GET /v1/models`` lists one model, and every completion answers with a fixed error status.
Tests use it to drive the real client code against a server that fails, without mocking anything.

Usage::

    with stub_openai_server(status=500, message="engine dead") as base_url:   # http://127.0.0.1:PORT/v1
        ...
"""

from __future__ import annotations

import contextlib
import json
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
def stub_openai_server(status: int = 500, message: str = "the engine is dead") -> Iterator[str]:
    """Serve until the block ends; yields the base URL ending in ``/v1``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(status, message))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
