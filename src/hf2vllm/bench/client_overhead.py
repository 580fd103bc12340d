"""How much the async server client itself costs: requests/s it can issue against a trivial local
endpoint at high concurrency, and the client process's CPU time per request.

The endpoint runs in a separate process (an aiohttp app answering a fixed ``/v1/completions`` body),
so the CPU time measured here is the client's alone. Run it::

    python -m hf2vllm.bench.client_overhead --requests 5000 --concurrency 256 --out docs/bench/client_overhead.json

The figure to read is ``cpu_ms_per_request``: at a real server's few hundred requests/s it says what
share of one core the client takes. ``requests_per_second`` is bounded by the one-process endpoint
on small machines, so it is a lower bound of the client's ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

from pydantic import BaseModel

FIXED_COMPLETION = {
    "id": "cmpl-bench", "object": "text_completion", "created": 0, "model": "bench",
    "choices": [{"index": 0, "text": " hello world", "finish_reason": "length", "token_ids": [1, 2, 3],
                 "logprobs": {"tokens": ["token_id:1", "token_id:2", "token_id:3"],
                              "token_logprobs": [-0.1, -0.2, -0.3], "top_logprobs": [{}, {}, {}]}}],
    "usage": {"prompt_tokens": 8, "completion_tokens": 3, "total_tokens": 11},
}


class OverheadResult(BaseModel):
    """One benchmark run of the client against the trivial endpoint."""

    requests: int
    concurrency: int
    stream: bool
    wall_s: float
    requests_per_second: float
    client_cpu_s: float
    cpu_ms_per_request: float
    retries: int
    python: str
    cpu_count: int


def serve_trivial(port: int) -> None:
    """The trivial endpoint (blocking): fixed JSON, or three SSE chunks when ``stream`` is set."""
    from aiohttp import web

    body = json.dumps(FIXED_COMPLETION).encode()
    chunks = []
    for i, text in enumerate([" hello", " world", "!"]):
        choice = {"index": 0, "text": text, "finish_reason": "length" if i == 2 else None,
                  "logprobs": {"tokens": [f"token_id:{i + 1}"], "token_logprobs": [-0.1], "top_logprobs": [{}]}}
        chunks.append(b"data: " + json.dumps({"id": "c", "choices": [choice]}).encode() + b"\n\n")
    chunks.append(b"data: [DONE]\n\n")

    async def completions(request: web.Request) -> web.StreamResponse:
        payload = await request.json()
        if not payload.get("stream"):
            return web.Response(body=body, content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for chunk in chunks:
            await resp.write(chunk)
        await resp.write_eof()
        return resp

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/health", health)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, backlog=1024)


async def drive(base_url: str, requests: int, concurrency: int, stream: bool) -> OverheadResult:
    from hf2vllm.server.client import ClientConfig, ServerClient

    config = ClientConfig(base_url=base_url, max_concurrency=concurrency, timeout_s=60)
    body = {"model": "bench", "prompt": list(range(8)), "max_tokens": 3, "logprobs": 0}
    async with ServerClient(config) as client:
        # Warm the connection pool so the figure is steady-state, not connection set-up.
        async for _ in client.run_all((f"warm-{i}", "/completions", body) for i in range(concurrency)):
            pass
        cpu0, wall0 = time.process_time(), time.perf_counter()
        count = 0
        async for _ in client.run_all(((f"r{i}", "/completions", body) for i in range(requests)), stream=stream):
            count += 1
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return OverheadResult(
        requests=count, concurrency=concurrency, stream=stream, wall_s=round(wall, 3),
        requests_per_second=round(count / wall, 1), client_cpu_s=round(cpu, 3),
        cpu_ms_per_request=round(1000 * cpu / count, 4), retries=client.stats.retries,
        python=platform.python_version(), cpu_count=os.cpu_count() or 0,
    )


def run(requests: int = 5000, concurrency: int = 256, stream: bool = False) -> OverheadResult:
    """Start the endpoint process, drive it, stop it."""
    import httpx

    from hf2vllm.server.launch import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hf2vllm.bench.client_overhead", "--serve", str(port)], start_new_session=True
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("trivial endpoint did not start") from None
                time.sleep(0.2)
        return asyncio.run(drive(f"http://127.0.0.1:{port}/v1", requests, concurrency, stream))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--out", type=Path, default=None, help="Write results as JSON here.")
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve_trivial(args.serve)
        return
    results = [run(args.requests, args.concurrency, stream) for stream in (False, True)]
    for r in results:
        print(f"client overhead ({'stream' if r.stream else 'json'}): {r.requests} requests at concurrency "
              f"{r.concurrency}: {r.requests_per_second:.0f} req/s, {r.cpu_ms_per_request:.3f} ms CPU per request")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps([r.model_dump() for r in results], indent=2) + "\n")


if __name__ == "__main__":
    main()
