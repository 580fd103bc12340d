"""`hf2vllm serve` end to end: key from the environment (never shown), log to a file, readiness, base
URL printed, and SIGTERM stops the server with no process of its group left. This starts the
session's one extra server, kept small."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

from hf2vllm.server.diagnostics import CheckOptions, check_server
from hf2vllm.server.launch import group_alive

KEY = "sk-hf2vllm-test-7f3a9c"


def read_until(proc: subprocess.Popen[str], marker: str, timeout_s: float) -> list[str]:
    lines: list[str] = []
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not selector.select(timeout=1.0):
            assert proc.poll() is None, f"hf2vllm serve exited early: {proc.stderr.read()}"  # type: ignore[union-attr]
            continue
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            break
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError(f"no {marker!r} in {lines}")


def test_serve_uses_the_key_from_env_and_sigterm_leaves_no_process(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "serve.log"
    monkeypatch.setenv("HF2VLLM_TEST_API_KEY", KEY)
    env = dict(os.environ)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hf2vllm.cli", "serve", "--port", "0", "--api-key-env", "HF2VLLM_TEST_API_KEY",
         "--log-file", str(log), "--", "--enforce-eager", "--kv-cache-memory-bytes", str(256 << 20),
         "--max-model-len", "512", "--max-num-seqs", "4"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
    )
    try:
        out = read_until(proc, "serving smollm2-135m at http://127.0.0.1:", timeout_s=900)
        base_url = out[-1].strip().rsplit(" ", 1)[-1]
        assert base_url.endswith("/v1")
        without_key = check_server(CheckOptions(base_url=base_url, timeout_s=30))
        assert without_key.checks[0].diagnosis == "auth" and "--api-key-env" in (without_key.checks[0].fix or "")
        with_key = check_server(CheckOptions(base_url=base_url, api_key_env="HF2VLLM_TEST_API_KEY", timeout_s=120,
                                             required=["connection", "model", "completion"]))
        assert with_key.passed, with_key.model_dump()
        assert KEY not in with_key.model_dump_json() and KEY not in without_key.model_dump_json()
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    server_pgid = int(next(line for line in stderr.splitlines() if line.startswith("server pid")).split()[2])
    assert proc.returncode == 0, stderr
    assert not group_alive(server_pgid), "vLLM processes outlived hf2vllm serve"
    assert not group_alive(proc.pid)
    everything = "".join(out) + stdout + stderr + log.read_text(errors="replace")
    assert KEY not in everything, "the API key leaked into output or the server log"
    assert "Application startup complete" in log.read_text(errors="replace")
