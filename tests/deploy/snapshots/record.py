"""Record real /metrics snapshots from a real `vllm serve` (CPU build, bundled model) under load.

Run once by hand: `python tests/deploy/snapshots/record.py` (minutes on a busy 2-core machine). It
starts the server with a deliberately small KV cache (0.05 GiB, 1,152 tokens) so that the heavy phase
overflows it, scrapes /metrics during each phase and writes the Prometheus text next to this file, plus
the server log. Derived variants for the advice rules are made from these files by the tests (values
edited, said so there).

The committed files come from one server run: idle, light_load and heavy_load were scraped by this
script; the heavy phase was then abandoned (24 x 200 tokens at ~5 tok/s would have taken half an hour),
and heavy_load_later (after the 6 preemptions) and few_shot (six sequential few-shot prompts,
max_tokens 2) were scraped by hand from the same running server with the steps now in
`heavy_then_few_shot()`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).parent
PORT = 18931
BASE = f"http://127.0.0.1:{PORT}"


def start_server(model: str) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop("VLLM_CPU_KVCACHE_SPACE", None)
    log = (HERE / "server.log").open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
         "--served-model-name", "smollm2-135m", "--host", "127.0.0.1", "--port", str(PORT),
         "--dtype", "float32", "--enforce-eager", "--max-model-len", "1024",
         "--kv-cache-memory-bytes", str(int(0.05 * 1024**3)), "--max-num-seqs", "16",
         "--max-num-batched-tokens", "1024", "--enable-prefix-caching"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )


def wait_ready(timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{BASE}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise SystemExit("server did not become ready")


def scrape(name: str) -> None:
    (HERE / f"{name}.prom").write_text(httpx.get(f"{BASE}/metrics", timeout=10).text)
    print("recorded", name)


async def complete(client: httpx.AsyncClient, prompt: str, max_tokens: int) -> None:
    await client.post(f"{BASE}/v1/completions", json={
        "model": "smollm2-135m", "prompt": prompt, "max_tokens": max_tokens,
        "temperature": 0.0, "ignore_eos": True}, timeout=600)


async def load_and_scrape(prompts: list[str], max_tokens: int, name: str, delay: float) -> None:
    async with httpx.AsyncClient() as client:
        tasks = [asyncio.create_task(complete(client, p, max_tokens)) for p in prompts]
        await asyncio.sleep(delay)
        scrape(name)
        await asyncio.gather(*tasks)


def heavy_then_few_shot() -> None:
    """Overflow the KV cache (numbered prompts: no shared prefix), then reuse a few-shot prefix."""

    async def heavy() -> None:
        long_prompt = "Summarise the following notes. " + "The cache holds keys and values. " * 45
        async with httpx.AsyncClient() as client:
            tasks = [asyncio.create_task(complete(client, f"{i}: {long_prompt}", 200)) for i in range(24)]
            await asyncio.sleep(8.0)
            scrape("heavy_load")
            await asyncio.sleep(300.0)  # long enough for preemptions; then abandon the rest
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(heavy())
    time.sleep(20)
    scrape("heavy_load_later")
    shots = "".join(f"Q: What is {a} plus {a}? A: {2 * a}.\n" for a in range(1, 40))
    for n in range(50, 56):
        httpx.post(f"{BASE}/v1/completions", json={
            "model": "smollm2-135m", "prompt": shots + f"Q: What is {n} plus {n}? A:",
            "max_tokens": 2, "temperature": 0.0}, timeout=300)
    scrape("few_shot")


def main() -> None:
    from hf2vllm.models import bundled_model_path

    server = start_server(str(bundled_model_path()))
    try:
        wait_ready()
        scrape("idle")
        asyncio.run(load_and_scrape(["Write a short poem about the sea."] * 2, 200, "light_load", 4.0))
        heavy_then_few_shot()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
