"""The RTN GPTQ checkpoint builder and the vLLM-side checkpoint checks (no engine)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hf2vllm.errors import InputError
from hf2vllm.pooling.quantise import build_rtn_gptq, dequantise, rtn_quantise
from hf2vllm.pooling.vllm_side import activation_dtype, check_same_model, resolve_vllm_side


def _weight(out_features: int = 96, in_features: int = 128, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.05, size=(out_features, in_features)).astype(np.float32)


def test_rtn_weights_round_trip_within_half_a_step_of_their_group() -> None:
    w = _weight()
    layer = rtn_quantise(w, bits=4, group_size=32)
    assert layer.qweight.shape == (128 // 8, 96) and layer.qweight.dtype == np.int32
    assert layer.scales.shape == (128 // 32, 96) and layer.scales.dtype == np.float16
    assert layer.qzeros.shape == (128 // 32, 96 // 8) and layer.g_idx.tolist() == [i // 32 for i in range(128)]
    back = dequantise(layer.qweight, layer.scales, bits=4)
    step = np.repeat(layer.scales.astype(np.float32), 32, axis=0).T  # [out, in]
    assert np.all(np.abs(back - w) <= step / 2 + 1e-6)
    assert not np.allclose(back, w)  # 4 bits really lose information
    # The largest weight of each group lands exactly on code ±7: nothing is clipped.
    groups = np.abs(w).reshape(96, 4, 32).max(axis=-1)
    np.testing.assert_allclose(groups, np.abs(back).reshape(96, 4, 32).max(axis=-1), rtol=5e-3)


def test_packing_is_the_layout_vllm_unpacks() -> None:
    """vLLM's own GPTQ unpacking (the CPU kernel's first step) gives back the integers written here."""
    import torch
    from vllm.model_executor.layers.quantization.utils.quant_utils import unpack_quantized_values_into_int32
    from vllm.scalar_type import scalar_types

    w = _weight(seed=1)
    layer = rtn_quantise(w, bits=4, group_size=64)
    codes = unpack_quantized_values_into_int32(torch.from_numpy(layer.qweight), scalar_types.uint4b8, 0).numpy()
    scales = np.repeat(layer.scales.astype(np.float32), 64, axis=0)
    np.testing.assert_allclose(((codes - 8) * scales).T, dequantise(layer.qweight, layer.scales, 4), rtol=0, atol=0)
    zeros = unpack_quantized_values_into_int32(torch.from_numpy(layer.qzeros), scalar_types.uint4b8, 1).numpy()
    assert np.all(zeros == 7)  # AutoGPTQ stores zero - 1 for symmetric checkpoints


def test_group_size_that_does_not_divide_the_inputs_is_refused() -> None:
    with pytest.raises(InputError, match="group size 64"):
        rtn_quantise(_weight(in_features=96), bits=4, group_size=64)


def test_checkpoint_has_gptq_config_and_every_decoder_projection_quantised(gptq_copy, bundled_model: Path) -> None:  # type: ignore[no-untyped-def]
    from safetensors import safe_open

    config = json.loads((gptq_copy.path / "config.json").read_text())
    quant = config["quantization_config"]
    assert (quant["quant_method"], quant["bits"], quant["group_size"], quant["sym"], quant["desc_act"]) == ("gptq", 4, 64, True, False)
    layers = json.loads((bundled_model / "config.json").read_text())["num_hidden_layers"]
    assert gptq_copy.quantised_tensors == layers * 7  # q, k, v, o, gate, up, down
    with safe_open(str(gptq_copy.path / "model.safetensors"), "pt") as fh:
        names = set(fh.keys())
        assert "model.layers.0.self_attn.q_proj.weight" not in names
        assert {"model.layers.0.mlp.down_proj.qweight", "model.layers.0.mlp.down_proj.scales"} <= names
        assert fh.get_tensor("model.layers.0.mlp.down_proj.qweight").shape == (1536 // 8, 576)
        assert "model.embed_tokens.weight" in names  # embeddings stay full precision
    check_same_model(bundled_model, gptq_copy.path)  # same tokenizer and architecture: accepted


def test_a_second_build_reuses_the_cached_checkpoint(gptq_copy, bundled_model: Path) -> None:  # type: ignore[no-untyped-def]
    before = (gptq_copy.path / "model.safetensors").stat().st_mtime_ns
    again = build_rtn_gptq(bundled_model, gptq_copy.path, bits=4, group_size=64)
    assert again.path == gptq_copy.path and (gptq_copy.path / "model.safetensors").stat().st_mtime_ns == before


def test_vllm_side_of_the_gptq_copy_runs_bfloat16_or_is_refused_without_the_cpu_kernel(gptq_copy, bundled_model: Path) -> None:  # type: ignore[no-untyped-def]
    from hf2vllm.errors import BackendUnavailableError
    from hf2vllm.pooling.vllm_side import missing_cpu_kernel

    if missing_cpu_kernel("gptq"):  # this AVX2 machine: refused before the engine would crash
        with pytest.raises(BackendUnavailableError, match="cpu_gemm_wna16.*build-rtn-w8a8"):
            resolve_vllm_side(bundled_model, gptq_copy.path, dtype="float32", quantization=None)
        return
    side = resolve_vllm_side(bundled_model, gptq_copy.path, dtype="float32", quantization=None)
    assert side.separate_checkpoint and (side.quantization, side.bits, side.group_size) == ("gptq", 4, 64)
    assert side.dtype == "bfloat16" and "float32" in side.dtype_reason and "bfloat16" in side.dtype_reason


def test_w8a8_copy_runs_float32_on_the_vllm_side_unless_the_cpu_has_amx(w8a8_copy, bundled_model: Path) -> None:  # type: ignore[no-untyped-def]
    from safetensors import safe_open

    from hf2vllm.pooling.vllm_side import amx_int8_activation_reason, read_quantization_config

    side = resolve_vllm_side(bundled_model, w8a8_copy.path, dtype="float32", quantization=None)
    amx = amx_int8_activation_reason(read_quantization_config(w8a8_copy.path) or {})
    expected = ("float32", None) if amx is None else ("bfloat16", f"{amx}; HF stays float32")
    assert (side.quantization, side.bits, side.dtype, side.dtype_reason) == ("compressed-tensors", 8, *expected)
    with safe_open(str(w8a8_copy.path / "model.safetensors"), "pt") as fh:
        weight = fh.get_tensor("model.layers.0.mlp.down_proj.weight")
        scale = fh.get_tensor("model.layers.0.mlp.down_proj.weight_scale")
    assert str(weight.dtype) == "torch.int8" and tuple(weight.shape) == (576, 1536) and tuple(scale.shape) == (576, 1)
    assert int(weight.abs().max()) == 127  # each row's largest weight maps to ±127
    assert activation_dtype(None, "float32") == ("float32", None)


def _config_only_copy(model: Path, target: Path, **changes: object) -> Path:
    shutil.copytree(model, target, ignore=shutil.ignore_patterns("*.safetensors"))
    config = json.loads((target / "config.json").read_text())
    (target / "config.json").write_text(json.dumps({**config, **changes}))
    return target


def test_vllm_model_with_another_tokenizer_or_architecture_is_refused(bundled_model: Path, tmp_path: Path) -> None:
    other = _config_only_copy(bundled_model, tmp_path / "other", num_hidden_layers=12)
    config = json.loads((bundled_model / "config.json").read_text())
    with pytest.raises(InputError, match="num_hidden_layers: 30 vs 12"):
        check_same_model(bundled_model, other)
    (other / "config.json").write_text(json.dumps(config))
    (other / "chat_template.jinja").write_text("{{ messages }}")
    with pytest.raises(InputError, match="chat_template.jinja differs"):
        check_same_model(bundled_model, other)


def test_gptq_method_on_an_unquantised_checkpoint_is_refused_before_loading(bundled_model: Path) -> None:
    with pytest.raises(InputError, match="--quantization gptq needs a gptq checkpoint.*build-rtn-gptq"):
        resolve_vllm_side(bundled_model, None, dtype="float32", quantization="gptq")


def test_compare_cli_refuses_another_model_as_vllm_model_with_exit_2(bundled_model: Path, tmp_path: Path) -> None:
    other = _config_only_copy(bundled_model, tmp_path / "other", hidden_size=768)
    result = subprocess.run(
        [sys.executable, "-m", "hf2vllm.cli", "compare", "--task", "hidden-states", "--vllm-model", str(other), "--limit", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: --vllm-model {other}: config.json is another model") and "hidden_size: 576 vs 768" in last
