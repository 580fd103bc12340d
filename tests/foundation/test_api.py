"""The Python API is the front door: importable from ``hf2vllm`` without loading model libraries, the same
checks as the command line, and the commands are thin shells over it (issue #21)."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

COMPARE_SECTIONS = ("Model and prompts", "Generation", "Verdicts and gate", "Per-side differences", "HF side",
                    "vLLM side", "Server side", "Pooling / LoRA / probe", "Output")

# Command options that are not compare() arguments: printing, the exit-code gate, and the pooling
# comparisons (still routed by the command to commands/compare_pooling.py).
NOT_API = {"only_mismatches", "verbose", "min_exact_match", "gate", "task", "probe", "lora", "vllm_normalise",
           "min_cosine", "quantization", "vllm_model"}
RENAMED = {"hf_option": "hf_options", "vllm_option": "vllm_options"}


def invoke(*args: str):  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from hf2vllm.cli import app

    return CliRunner().invoke(app, list(args), terminal_width=200)


def test_import_hf2vllm_exposes_the_api_without_loading_torch_transformers_or_vllm() -> None:
    code = ("import sys, hf2vllm\n"
            "from hf2vllm import compare, translate, GenerationSpec, CompareReport, CompareOptions\n"
            "assert set(hf2vllm.__all__) <= set(dir(hf2vllm))\n"
            "print(sorted(m for m in ('torch', 'transformers', 'vllm') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_unknown_top_level_names_are_attribute_errors() -> None:
    import hf2vllm

    with pytest.raises(AttributeError, match="no attribute 'comparee'"):
        hf2vllm.comparee  # noqa: B018


def test_compare_help_reads_as_sections_in_order() -> None:
    done = invoke("compare", "--help")
    assert done.exit_code == 0, done.output
    positions = [done.output.find(f"─ {title} ") for title in COMPARE_SECTIONS]
    assert -1 not in positions, done.output
    assert positions == sorted(positions)


def test_every_generation_option_of_the_compare_command_is_an_api_argument() -> None:
    from hf2vllm.api import compare as api_compare
    from hf2vllm.commands.compare import compare as command

    command_options = {p for p in inspect.signature(command).parameters if p not in NOT_API}
    api_arguments = set(inspect.signature(api_compare).parameters)
    assert {RENAMED.get(p, p) for p in command_options} <= api_arguments
    defaults = {n: p.default.default for n, p in inspect.signature(command).parameters.items()}
    for name in command_options:
        api_default = inspect.signature(api_compare).parameters[RENAMED.get(name, name)].default
        assert api_default in (defaults[name], None) or (defaults[name] == [] and api_default is None), name


@pytest.mark.parametrize(("arguments", "message"), [
    ({"max_model_len": 0}, "--max-model-len: got 0"),
    ({"limit": 0}, "--limit: got 0"),
    ({"dtype": "float8"}, "--dtype: unknown dtype 'float8'"),
    ({"vllm_options": {"max_num_seqz": 4}}, "did you mean 'max_num_seqs'"),
    ({"hf_kwargs": {"do_sample": True}}, "--hf-kwargs do_sample=true"),
    ({"hf_kwargs": "{not json"}, "--hf-kwargs: not valid JSON"),
    ({"prompts": "missing.jsonl"}, "--prompts missing.jsonl: no such prompt file"),
    ({"hf_options": ["repetition_penalty"]}, "expected KEY=VALUE"),
], ids=["max-model-len", "limit", "dtype", "vllm-option-typo", "sampling", "bad-json", "prompts", "assignment"])
def test_the_api_refuses_a_bad_argument_as_the_command_does(arguments: dict[str, object], message: str,
                                                             bundled_model: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import hf2vllm
    from hf2vllm.errors import InputError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace("[", r"\[")):
        hf2vllm.compare(**arguments)  # type: ignore[arg-type]


def test_side_options_as_a_dict_reach_the_side_as_the_command_line_assignments_do() -> None:
    from hf2vllm.options import per_side_choices, side_assignments
    from hf2vllm.parity.run import BackendChoice

    sides = [BackendChoice(kind="hf"), BackendChoice(kind="vllm")]
    from_dict = per_side_choices(sides, side_assignments({"add_bos_token": True}), side_assignments(
        {"repetition_penalty": 1.3, "dtype": "bfloat16", "stop_token_ids": [2], "max_num_seqs": 4}), None, False)
    from_text = per_side_choices(sides, ["add_bos_token=true"], [
        "repetition_penalty=1.3", "dtype=bfloat16", "stop_token_ids=[2]", "max_num_seqs=4"], None, False)
    assert from_dict == from_text
    assert from_dict[1].generation == {"repetition_penalty": 1.3, "stop_token_ids": [2]}
    assert from_dict[1].options == {"dtype": "bfloat16", "max_num_seqs": 4}


def test_the_translate_command_prints_what_the_api_returns(bundled_model: Path) -> None:
    import hf2vllm

    settings = {"max_new_tokens": 32, "do_sample": True, "temperature": 0.7}
    done = invoke("translate", "--hf", json.dumps(settings), "--model", str(bundled_model), "--format", "json")
    assert done.exit_code == 0, done.output
    translation = hf2vllm.translate(settings, model=bundled_model)
    assert json.loads(done.output) == json.loads(json.dumps(translation.as_json()))
    assert translation.vllm["top_k"] == 50  # Transformers' implicit default, stated for vLLM


def test_generation_spec_from_hf_takes_a_cached_model_name(bundled_model: Path) -> None:
    from hf2vllm import GenerationSpec
    from hf2vllm.models import BUNDLED_MODEL

    by_name = GenerationSpec.from_hf({"max_new_tokens": 8}, model=BUNDLED_MODEL)
    assert by_name == GenerationSpec.from_hf({"max_new_tokens": 8}, model=bundled_model)
    assert by_name.to_vllm()["max_tokens"] == 8
