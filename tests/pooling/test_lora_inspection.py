"""Adapter inspection happens before any model runs and explains every mismatch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hf2vllm.errors import InputError
from hf2vllm.pooling.lora import inspect_adapter, read_adapter_keys
from hf2vllm.pooling.run import LoadedSides, PoolingOptions, run_pooling_compare


def test_test_adapters_have_non_zero_b_so_they_change_outputs(adapters) -> None:  # type: ignore[no-untyped-def]
    from safetensors.torch import load_file

    tensors = load_file(str(adapters.causal / "adapter_model.safetensors"))
    b = [t for k, t in tensors.items() if "lora_B" in k]
    assert b and all(float(t.abs().max()) > 0 for t in b)


def test_causal_lm_adapter_matches_every_module(adapters, bundled_model: Path) -> None:  # type: ignore[no-untyped-def]
    found = inspect_adapter(adapters.causal, bundled_model, runner="generate")
    assert found.layout == "causal-lm"
    assert found.matched_modules == 2 * 30  # q_proj and v_proj of 30 layers
    assert found.required_max_lora_rank == 8 and not found.findings


def test_inner_model_prefix_layout_is_detected_from_the_keys(adapters, bundled_model: Path) -> None:  # type: ignore[no-untyped-def]
    keys = read_adapter_keys(adapters.inner)
    assert keys[0].startswith("base_model.model.layers.")
    on_generate = inspect_adapter(adapters.inner, bundled_model, runner="generate")
    assert on_generate.layout == "inner-model"
    assert [f.code for f in on_generate.blocking] == ["lora-inner-model-prefix"]
    assert "never apply it" in on_generate.blocking[0].message
    on_pooling = inspect_adapter(adapters.inner, bundled_model, runner="pooling")
    assert not on_pooling.blocking
    assert [f.code for f in on_pooling.findings] == ["lora-inner-model-prefix"]
    old_pooling = inspect_adapter(adapters.inner, bundled_model, runner="pooling", vllm_has_pooling_prefix_retry=False)
    assert old_pooling.blocking


def test_adapter_whose_keys_match_no_module_is_explained(adapters, bundled_model: Path) -> None:  # type: ignore[no-untyped-def]
    found = inspect_adapter(adapters.unmatched, bundled_model)
    assert found.layout == "unmatched"
    message = found.blocking[0].message
    assert "120 of 120 adapter tensors match no module" in message
    assert "transformer.h.0.attn.c_attn" in message and "model.layers." in message


def test_rank_and_unsupported_features_are_checked_against_vllm_limits(adapters, bundled_model: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert "DoRA" in inspect_adapter(adapters.dora, bundled_model).blocking[0].message
    big = tmp_path / "big-rank"
    shutil.copytree(adapters.causal, big)
    config = json.loads((big / "adapter_config.json").read_text())
    (big / "adapter_config.json").write_text(json.dumps({**config, "r": 1024, "modules_to_save": ["norm"]}))
    codes = {f.code for f in inspect_adapter(big, bundled_model).blocking}
    assert codes == {"lora-rank", "lora-modules-to-save"}
    assert inspect_adapter(adapters.causal, bundled_model, max_lora_rank=1).blocking[0].code == "lora-rank"


def test_unmatchable_adapter_is_refused_before_any_model_runs(adapters) -> None:  # type: ignore[no-untyped-def]
    # A side that would raise TypeError if touched: only an InputError proves nothing ran.
    sides = LoadedSides(hf_model=object(), vllm_pooler=object())
    with pytest.raises(InputError, match="match no module"):
        run_pooling_compare(PoolingOptions(lora=adapters.unmatched, limit=2), sides=sides)


def test_cli_reports_unmatchable_adapter_on_one_line_with_exit_2(adapters) -> None:  # type: ignore[no-untyped-def]
    cli = Path(sys.executable).parent / "hf2vllm"
    proc = subprocess.run(
        [str(cli), "compare", "--task", "hidden-states", "--lora", str(adapters.unmatched), "--limit", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --lora ") and "match no module" in lines[0]
