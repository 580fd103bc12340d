"""Weight bytes of a model: exact from safetensors headers when the files are there, else counted
from the architecture (dense, MoE, MLA, Mamba hybrid, tied embeddings, a SigLIP-style vision tower).

Header reading uses ``safetensors.safe_open`` and tensor slices: shapes and dtypes come from the
JSON header, no tensor data is read.
"""

from __future__ import annotations

import math
from pathlib import Path

from pydantic import BaseModel

from hf2vllm.deploy.architecture import KNOWN_WEIGHT_LAYOUTS, LayerKind, ModelArchitecture
from hf2vllm.errors import InputError

SAFETENSORS_DTYPE_BYTES = {
    "F64": 8, "I64": 8, "U64": 8,
    "F32": 4, "I32": 4, "U32": 4,
    "F16": 2, "BF16": 2, "I16": 2, "U16": 2,
    "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "I8": 1, "U8": 1, "BOOL": 1,
}
PARAM_DTYPE_BYTES = {"float32": 4.0, "float16": 2.0, "bfloat16": 2.0}
# Bytes per parameter for --quantization when counting from the architecture; 4-bit methods
# carry group scales (group 128, fp16 scale + zero) on top of the packed values.
# Names are vLLM's (``vllm_names.quantization_methods``) plus the ``quant_method`` spellings of
# checkpoints' ``quantization_config``; microscaling formats carry one 8-bit scale per 32 values.
_FOUR_BIT_GROUPED = 0.5 + 4 / 128
QUANTIZED_BYTES_PER_PARAM = {
    "fp8": 1.0,
    "fbgemm_fp8": 1.0,
    "fp8_per_tensor": 1.0,
    "fp8_per_block": 1.0,
    "fp8_per_channel": 1.0,
    "modelopt": 1.0,
    "mxfp8": 1.0 + 1 / 32,
    "modelopt_mxfp8": 1.0 + 1 / 32,
    "awq": _FOUR_BIT_GROUPED,
    "auto_awq": _FOUR_BIT_GROUPED,
    "awq_marlin": _FOUR_BIT_GROUPED,
    "gptq": _FOUR_BIT_GROUPED,
    "auto_gptq": _FOUR_BIT_GROUPED,
    "gptq_marlin": _FOUR_BIT_GROUPED,
    "moe_wna16": _FOUR_BIT_GROUPED,
    "mxfp4": 0.5 + 1 / 32,
    "gpt_oss_mxfp4": 0.5 + 1 / 32,
    "modelopt_fp4": 0.5 + 1 / 16,
    "nvfp4_per_token": 0.5 + 1 / 16,
    "bitsandbytes": 0.5 + 2 / 64,
    "int8": 1.0,
    "experts_int8": 1.0,
    "int8_per_channel_weight_only": 1.0,
}


class WeightEstimate(BaseModel):
    """Weight size and where the number came from."""

    parameters: int
    weights_bytes: int
    source: str  # "safetensors" or "architecture"
    exact: bool
    note: str = ""


def safetensors_files(model_dir: Path) -> list[Path]:
    return sorted(Path(model_dir).glob("*.safetensors")) if Path(model_dir).is_dir() else []


def weights_from_safetensors(model_dir: Path) -> WeightEstimate | None:
    """Sum tensor sizes from the headers of every ``*.safetensors`` file in ``model_dir``."""
    files = safetensors_files(model_dir)
    if not files:
        return None
    from safetensors import safe_open

    params = 0
    total = 0
    for file in files:
        try:
            with safe_open(str(file), framework="numpy") as handle:
                for name in handle.keys():
                    tensor = handle.get_slice(name)
                    count = math.prod(tensor.get_shape())
                    dtype = tensor.get_dtype()
                    if dtype not in SAFETENSORS_DTYPE_BYTES:
                        raise InputError(f"{file}: tensor {name} has dtype {dtype} of unknown size")
                    params += count
                    total += count * SAFETENSORS_DTYPE_BYTES[dtype]
        except (OSError, ValueError) as err:
            raise InputError(f"{file}: unreadable safetensors header ({err})") from err
    return WeightEstimate(
        parameters=params,
        weights_bytes=total,
        source="safetensors",
        exact=True,
        note=f"{len(files)} safetensors file(s), headers only",
    )


def _attention_params(arch: ModelArchitecture) -> int:
    h = arch.hidden_size
    if arch.is_mla:
        heads = arch.num_attention_heads
        qk_head = (arch.qk_nope_head_dim or 0) + (arch.qk_rope_head_dim or 0)
        if arch.q_lora_rank:
            q = h * arch.q_lora_rank + arch.q_lora_rank + arch.q_lora_rank * heads * qk_head
        else:
            q = h * heads * qk_head
        kv_a = h * (arch.kv_lora_rank + arch.qk_rope_head_dim) + arch.kv_lora_rank
        kv_b = arch.kv_lora_rank * heads * ((arch.qk_nope_head_dim or 0) + (arch.v_head_dim or 0))
        o = heads * (arch.v_head_dim or 0) * h
        return q + kv_a + kv_b + o
    q_out = arch.num_attention_heads * arch.head_dim
    kv_out = arch.num_key_value_heads * arch.head_dim
    params = h * q_out + 2 * h * kv_out + q_out * h
    if arch.model_type == "qwen2" or arch.attention_bias:
        params += q_out + 2 * kv_out  # Qwen2 always has q/k/v biases
    if arch.attention_bias:
        params += h
    if arch.model_type in ("qwen3", "qwen3_moe", "gemma3", "gemma3_text"):
        params += 2 * arch.head_dim  # q_norm / k_norm
    return params


def _mamba_params(arch: ModelArchitecture) -> int:
    m = arch.mamba
    assert m is not None
    h = arch.hidden_size
    params = h * 2 * m.d_inner + (2 * m.d_inner if m.proj_bias else 0)  # in_proj
    params += m.d_inner * m.d_conv + (m.d_inner if m.conv_bias else 0)  # conv1d
    params += m.d_inner * (m.dt_rank + 2 * m.d_state)  # x_proj
    params += m.dt_rank * m.d_inner + m.d_inner  # dt_proj
    params += m.d_inner * m.d_state + m.d_inner  # A_log, D
    params += m.d_inner * h + (h if m.proj_bias else 0)  # out_proj
    if arch.model_type == "jamba":
        params += m.dt_rank + 2 * m.d_state  # dt/B/C layernorms
    return params


def _mlp_params(arch: ModelArchitecture, layer: int) -> int:
    h = arch.hidden_size
    if layer not in set(arch.moe_layers):
        return 3 * h * arch.intermediate_size
    expert_size = arch.moe_intermediate_size or arch.intermediate_size
    params = arch.num_experts * 3 * h * expert_size + h * arch.num_experts  # experts + router
    if arch.model_type == "deepseek_v3":
        params += arch.num_experts  # e_score_correction_bias
    if arch.num_shared_experts:
        if arch.shared_expert_intermediate_size:
            params += 3 * h * arch.shared_expert_intermediate_size + h  # + shared_expert_gate
        else:
            params += arch.num_shared_experts * 3 * h * expert_size
    return params


def _vision_params(vision: dict, text_hidden: int) -> int:
    """A ViT/SigLIP encoder (patch + position embeddings, pre-norm blocks) and a linear projector."""
    hidden = vision["hidden_size"]
    inter = vision["intermediate_size"]
    layers = vision["num_hidden_layers"]
    patch = vision["patch_size"]
    channels = vision.get("num_channels", 3)
    positions = (vision["image_size"] // patch) ** 2
    params = channels * patch * patch * hidden + hidden + positions * hidden
    per_layer = 4 * (hidden * hidden + hidden) + 2 * hidden * inter + inter + hidden + 2 * 2 * hidden
    params += layers * per_layer + 2 * hidden  # post_layernorm
    params += hidden * text_hidden + hidden  # projector + its norm
    return params


def count_parameters(arch: ModelArchitecture) -> int:
    """Parameters vLLM loads for the model (multi-token-prediction heads excluded)."""
    h = arch.hidden_size
    params = arch.vocab_size * h * (1 if arch.tie_word_embeddings else 2)
    norms_per_layer = 4 * h if arch.model_type in ("gemma2", "gemma3", "gemma3_text") else 2 * h
    for layer, kind in enumerate(arch.layer_kinds):
        params += norms_per_layer
        params += _mamba_params(arch) if kind is LayerKind.MAMBA else _attention_params(arch)
        params += _mlp_params(arch, layer)
    params += h  # final norm
    if arch.vision_config:
        params += _vision_params(arch.vision_config, h)
    return params


def bytes_per_param(arch: ModelArchitecture, dtype: str | None, quantization: str | None) -> float:
    method = quantization or arch.quantization_method
    if method:
        if method not in QUANTIZED_BYTES_PER_PARAM:
            where = f"--quantization {method!r}" if quantization else (
                f"config.json quantization_config.quant_method {method!r}")
            raise InputError(
                f"{where}: hf2vllm does not know the weight size of this method (sized: "
                f"{', '.join(sorted(QUANTIZED_BYTES_PER_PARAM))}); plan a checkpoint that has safetensors files"
            )
        return QUANTIZED_BYTES_PER_PARAM[method]
    name = dtype or arch.torch_dtype
    if name not in PARAM_DTYPE_BYTES:
        where = f"--dtype {name!r}" if dtype else f"config.json torch_dtype {name!r}"
        raise InputError(f"{where}: unknown parameter size (known: {', '.join(PARAM_DTYPE_BYTES)}); pass --dtype")
    return PARAM_DTYPE_BYTES[name]


def weights_from_architecture(arch: ModelArchitecture, dtype: str | None = None, quantization: str | None = None) -> WeightEstimate:
    params = count_parameters(arch)
    size = bytes_per_param(arch, dtype, quantization)
    note = "counted from config.json"
    if arch.model_type not in KNOWN_WEIGHT_LAYOUTS:
        note = f"model_type {arch.model_type!r} counted with Llama-style rules (estimate)"
    return WeightEstimate(
        parameters=params,
        weights_bytes=int(params * size),
        source="architecture",
        exact=False,
        note=note,
    )


def estimate_weights(
    arch: ModelArchitecture,
    model_dir: Path | None,
    dtype: str | None = None,
    quantization: str | None = None,
) -> WeightEstimate:
    """Headers when the checkpoint has them (rescaled if ``dtype`` asks for another size)."""
    found = weights_from_safetensors(model_dir) if model_dir else None
    if found is None:
        return weights_from_architecture(arch, dtype, quantization)
    if quantization is None and dtype is not None and dtype in PARAM_DTYPE_BYTES:
        stored = found.weights_bytes / max(found.parameters, 1)
        wanted = PARAM_DTYPE_BYTES[dtype]
        if abs(stored - wanted) > 1e-6 and arch.quantization_method is None:
            # vLLM casts unquantised weights to --dtype at load time.
            return found.model_copy(
                update={
                    "weights_bytes": found.parameters * int(wanted),
                    "note": f"{found.note}; cast to {dtype} as vLLM loads it",
                }
            )
    return found
