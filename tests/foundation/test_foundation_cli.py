"""`hf2vllm` as a user runs it: a real console-script subprocess, exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hf2vllm.report.schema import CompareReport

BIN = Path(sys.executable).parent / "hf2vllm"


def hf2vllm(*args: str, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str], expected: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]


def test_malformed_prompts_file_exits_2_naming_file_and_line(tmp_path: Path, bundled_model: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"messages": oops}\n')
    assert_one_line_error(hf2vllm("compare", "--prompts", str(bad)), f"{bad}:2: not valid JSON")


def test_unknown_model_exits_2_and_lists_cached_models(tmp_path: Path, bundled_model: Path) -> None:
    done = hf2vllm("compare", "--model", str(tmp_path / "missing-model"))
    assert_one_line_error(done, "is neither a directory nor a cached model name; cached models: ")
    assert "smollm2-135m" in done.stderr


def test_request_over_context_exits_2_naming_request_and_token_count(tmp_path: Path, bundled_model: Path) -> None:
    prompts = tmp_path / "long.jsonl"
    prompts.write_text(json.dumps({"id": "essay", "messages": [{"role": "user", "content": "lorem " * 200}]}) + "\n")
    done = hf2vllm("compare", "--prompts", str(prompts), "--max-model-len", "128")
    assert_one_line_error(done, "request 'essay' has ")
    assert "> the model's context of 128 tokens" in done.stderr


def test_missing_vllm_exits_2_with_install_hint(bundled_model: Path) -> None:
    # Hide the installed vLLM from this one process: importing it then fails as on a machine without it.
    code = "import sys; sys.modules['vllm'] = None; from hf2vllm.cli import main; sys.argv = ['hf2vllm', 'compare', '--limit', '1']; main()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert_one_line_error(done, "vLLM is not installed")
    assert "make setup" in done.stderr


def test_bad_dtype_is_a_usage_error() -> None:
    assert_one_line_error(hf2vllm("compare", "--dtype", "int3"), "unknown dtype 'int3'; choose one of float32")


def test_models_list_shows_the_bundled_model(bundled_model: Path) -> None:
    done = hf2vllm("models", "list")
    assert done.returncode == 0 and "smollm2-135m" in done.stdout


@pytest.mark.slow
def test_compare_end_to_end_prints_table_and_writes_a_valid_report(tmp_path: Path, bundled_model: Path) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(
        json.dumps({"id": "capital", "messages": [{"role": "user", "content": "What is the capital of Italy?"}]})
        + "\n" + json.dumps({"prompt": "One, two, three,"}) + "\n"
    )
    out = tmp_path / "run"
    done = hf2vllm("compare", "--prompts", str(prompts), "--max-new-tokens", "8", "--out", str(out),
                   "--min-exact-match", "0.5")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "exact matches" in done.stdout and "capital" in done.stdout
    report = CompareReport.model_validate_json((out / "report.json").read_text())
    assert [r.id for r in report.requests] == ["capital", "line-2"]
    assert report.generation["max_new_tokens"] == 8


def test_candidate_logprobs_mode_that_returns_logits_exits_2_before_any_engine(bundled_model: Path) -> None:
    # raw_logits are not log-probabilities: comparing them with HF's raw logprobs would mislabel every number.
    done = hf2vllm("compare", "--limit", "1", "--vllm-option", "logprobs_mode=raw_logits")
    assert_one_line_error(done, "logprobs_mode='raw_logits' returns logits")
    assert "logprobs_mode='raw_logprobs'" in done.stderr + done.stdout
    assert "Loading" not in done.stderr and "EngineCore" not in done.stderr
