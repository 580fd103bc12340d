"""`hf2vllm translate` end to end through the real CLI: one run as a separate process (the console entry
point), the rest in-process through ``hf2vllm.cli.main`` (same code path, without re-importing
Transformers for every case)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

import pytest


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def hf2vllm_process(*args: str) -> Run:
    done = subprocess.run(
        [sys.executable, "-c", "from hf2vllm.cli import main; main()", *args],
        capture_output=True, text=True, timeout=300,
    )
    return Run(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def hf2vllm(monkeypatch, capsys):  # type: ignore[no-untyped-def]
    from hf2vllm.cli import main

    def run(*args: str) -> Run:
        monkeypatch.setattr(sys, "argv", ["hf2vllm", *args])
        code = 0
        try:
            main()
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        out = capsys.readouterr()
        return Run(code, out.out, out.err)

    return run


def test_json_output_states_transformers_effective_settings_for_vllm(bundled_model):
    run = hf2vllm_process("translate", "--hf", '{"max_new_tokens": 32, "do_sample": true}', "--model", str(bundled_model),
                  "--format", "json")
    assert run.returncode == 0, run.stderr
    payload = json.loads(run.stdout)
    assert set(payload) == {"vllm", "openai", "hf", "notes"}
    assert payload["vllm"]["top_k"] == 50 and payload["vllm"]["max_tokens"] == 32
    assert payload["vllm"]["ignore_eos"] is True and payload["vllm"]["stop_token_ids"]
    assert payload["openai"]["chat"]["max_completion_tokens"] == 32
    assert any("top_k=50" in note for note in payload["notes"])


def test_python_format_prints_a_pasteable_sampling_params(hf2vllm, tmp_path):
    config = tmp_path / "generation_config.json"
    config.write_text(json.dumps({"eos_token_id": [2, 5], "temperature": 0.6, "do_sample": True}))
    run = hf2vllm("translate", "--hf", '{"max_new_tokens": 8}', "--generation-config", str(config), "--format", "python")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("SamplingParams(")
    namespace: dict = {"SamplingParams": lambda **kw: kw}
    kwargs = eval(run.stdout, namespace)  # noqa: S307 - our own output, checked to be a plain call
    assert kwargs["temperature"] == 0.6 and kwargs["stop_token_ids"] == [2, 5] and kwargs["top_k"] == 50


def test_reverse_direction_from_sampling_params(hf2vllm, bundled_model):
    run = hf2vllm("translate", "--vllm", '{"temperature": 0.8, "max_tokens": 10}', "--model", str(bundled_model),
                  "--format", "json")
    assert run.returncode == 0, run.stderr
    hf = json.loads(run.stdout)["hf"]
    assert hf["do_sample"] is True and hf["top_k"] is None and hf["max_new_tokens"] == 10
    assert hf["eos_token_id"] == [2]  # vLLM's implicit stop on the tokenizer's eos, made explicit


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--hf", '{"temperature": -1, "do_sample": true}'], "temperature"),
        (["--hf", '{"top_p": 1.5}'], "top_p"),
        (["--hf", '{"max_new_tokenz": 3}'], "max_new_tokenz"),
        (["--hf", '{"num_beams": 4}'], "num_beams"),
        (["--hf", "{not json"], "--hf"),
        (["--vllm", '{"presence_penalty": 0.5, "ignore_eos": true}'], "presence_penalty"),
    ],
)
def test_bad_settings_exit_2_with_one_line_naming_the_parameter(hf2vllm, args, named):
    run = hf2vllm("translate", *args, "--format", "json")
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], run.stderr
