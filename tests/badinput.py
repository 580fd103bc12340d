"""The contract every bad input is held to (issue #20), shared by the table-driven tests.

Each case runs the real ``hf2vllm`` entry point in a subprocess and asserts: the exit code; exactly one
line on stderr, ``error: ...``, containing the expected text; no traceback anywhere; no canary secret in
stdout, stderr or any file the command wrote; and no model or engine started (vLLM logs at INFO here, so
an engine start would show).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

CANARY = "sk-canary-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
"""A fake API key: it must never appear in any output or file."""

ENGINE_SIGNS = ("EngineCore", "Initializing a V1 LLM engine", "Loading weights", "Loading safetensors",
                "Starting vLLM API server", "Loading checkpoint shards")


@dataclass
class BadInput:
    """One bad input: argv after ``hf2vllm``, the expected exit code and text in the one error line."""

    id: str
    argv: list[str]
    expect: str
    code: int = 2
    env: dict[str, str] = field(default_factory=dict)
    stdin: str | None = None


def run_cli(argv: list[str], cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "400", "VLLM_LOGGING_LEVEL": "INFO", "HF2VLLM_CANARY": CANARY,
                **(env or {})}
    return subprocess.run([sys.executable, "-m", "hf2vllm.cli", *argv], capture_output=True, text=True,
                          cwd=cwd, env=full_env, input=stdin, timeout=timeout)


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def assert_bad_input(case: BadInput, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``case`` in ``cwd`` and hold it to the contract above."""
    done = run_cli(case.argv, cwd, case.env, case.stdin)
    out = done.stdout + done.stderr
    assert "Traceback" not in out, f"{case.id}: traceback\n{out[-3000:]}"
    assert done.returncode == case.code, f"{case.id}: exit {done.returncode}, expected {case.code}\n{out[-3000:]}"
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), f"{case.id}: expected one error line, got\n{done.stderr}"
    assert case.expect in lines[0], f"{case.id}: {case.expect!r} not in {lines[0]!r}"
    assert CANARY not in out, f"{case.id}: the canary key was printed"
    for path in files_under(cwd):
        try:
            text = path.read_bytes()
        except OSError:
            continue
        assert CANARY.encode() not in text, f"{case.id}: the canary key was written to {path}"
    signs = [s for s in ENGINE_SIGNS if s in out]
    assert not signs, f"{case.id}: failed after starting a model or engine ({signs})\n{out[-2000:]}"
    return done
