"""A small fault-injecting HTTP proxy on 127.0.0.1, in front of a real server (tests only).

Faults are chosen per request id (the client's ``X-Request-Id`` header) and fire on that request's
first attempt only, so a correct client finishes every request after retrying:

- ``"429"``: 429 Too Many Requests with ``Retry-After: <retry_after_s>``
- ``"500"``: 500 Internal Server Error
- ``"drop"``: the connection is closed without an answer
- ``"slow"``: the answer is held for ``slow_s`` (past the client's timeout), then forwarded

``refusing = True`` makes the proxy close every connection at once (a dead upstream). Every attempt is
recorded in ``attempts`` (request id -> monotonic times) for assertions.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict

from aiohttp import ClientSession, ClientTimeout, web


class FaultProxy:
    def __init__(self, upstream_root: str, faults: dict[str, str] | None = None, *, retry_after_s: float = 1.0,
                 slow_s: float = 6.0) -> None:
        self.upstream_root = upstream_root.rstrip("/")
        self.faults = dict(faults or {})
        self.retry_after_s = retry_after_s
        self.slow_s = slow_s
        self.refusing = False
        self.attempts: dict[str, list[float]] = defaultdict(list)
        self.injected: dict[str, str] = {}
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._session: ClientSession | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        rid = request.headers.get("X-Request-Id", "")
        self.attempts[rid].append(time.monotonic())
        if self.refusing:
            request.transport.abort()  # type: ignore[union-attr]
            raise ConnectionResetError("refusing")
        fault = self.faults.get(rid) if len(self.attempts[rid]) == 1 else None
        if fault:
            self.injected[rid] = fault
        if fault == "429":
            return web.json_response({"error": {"message": "slow down"}}, status=429,
                                     headers={"Retry-After": f"{self.retry_after_s:g}"})
        if fault == "500":
            return web.json_response({"error": {"message": "injected failure"}}, status=500)
        if fault == "drop":
            request.transport.abort()  # type: ignore[union-attr]
            raise ConnectionResetError("dropped")
        if fault == "slow":
            await asyncio.sleep(self.slow_s)
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        assert self._session is not None
        async with self._session.request(request.method, self.upstream_root + request.path_qs, data=body,
                                         headers=headers) as upstream:
            payload = await upstream.read()
            return web.Response(body=payload, status=upstream.status,
                                content_type=upstream.content_type or "application/json")

    async def _start(self) -> None:
        self._session = ClientSession(timeout=ClientTimeout(total=600))
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def start(self) -> FaultProxy:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert ready.wait(10), "proxy did not start"
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            if self._runner is not None:
                await self._runner.cleanup()
            if self._session is not None:
                await self._session.close()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(timeout=10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
