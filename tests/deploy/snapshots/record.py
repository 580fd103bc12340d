"""Record real /metrics snapshots from a real `vllm serve` (CPU build, bundled model) under load.

Run once by hand (about two minutes): `python tests/deploy/snapshots/record.py`. It starts the
server with a deliberately small KV cache (0.05 GiB, ~1,150 tokens) so that one phase of the load
overflows it, scrapes /metrics during each phase and writes the Prometheus text next to this file,
plus the server log. Derived variants for the advice rules are made from these files by the tests
(values edited, said so there).
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


def main() -> None:
    from hf2vllm.models import bundled_model_path

    server = start_server(str(bundled_model_path()))
    try:
        wait_ready()
        scrape("idle")
        asyncio.run(load_and_scrape(["Write a short poem about the sea."] * 2, 200, "light_load", 4.0))
        long_prompt = "Summarise the following notes. " + "The cache holds keys and values. " * 45
        asyncio.run(load_and_scrape([f"{i}: {long_prompt}" for i in range(24)], 200, "heavy_load", 8.0))
        scrape("after_heavy")
        shots = "".join(f"Q: What is {a} plus {a}? A: {2 * a}.\n" for a in range(1, 40))
        asyncio.run(load_and_scrape([shots + f"Q: What is {n} plus {n}? A:" for n in range(50, 62)], 8, "few_shot", 3.0))
        scrape("after_few_shot")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
