"""Quantised checkpoints of a local model, by round-to-nearest (RTN), for measuring what a quantised
vLLM side does to hidden states and embeddings.

No calibration tooling (AutoGPTQ, GPTQModel, AutoAWQ, llm-compressor) is installed or reachable
here, but vLLM loads any checkpoint in the right *layout*: the layout, not the algorithm that chose
the integers, is what its loaders check. RTN is GPTQ without the error feedback, so its error is an
upper bound of what a calibrated checkpoint of the same scheme would show. Two schemes:

- ``build_rtn_gptq``: GPTQ 4-bit (AutoGPTQ "v1" layout, read by vLLM's ``AutoGPTQLinearMethod``).
  Per linear layer ``W [out, in]``: ``qweight`` int32 ``[in / 8, out]`` (eight 4-bit values per
  int32 along the input dim, value ``i`` of a word in bits ``4i..4i+3``), ``scales`` float16
  ``[in / group, out]``, ``qzeros`` int32 ``[in / group, out / 8]`` holding ``zero - 1``
  (AutoGPTQ's historical off-by-one; symmetric kernels ignore it), ``g_idx`` int32 ``[in]`` (vLLM
  discards it). The real weight is ``(q - 8) * scale`` (``uint4b8`` in vLLM's scalar types).
  vLLM-CPU runs it only where its kernel library has ``cpu_gemm_wna16`` (AVX-512 builds).
- ``build_rtn_w8a8``: compressed-tensors W8A8 int8 (``weight`` int8 ``[out, in]``,
  ``weight_scale`` float32 ``[out, 1]``; activations quantised per token at run time), which
  vLLM-CPU runs through oneDNN on AVX2 CPUs too.

Usage::

    from hf2vllm.pooling.quantise import build_rtn_w8a8
    checkpoint = build_rtn_w8a8(bundled_model_path())   # cached next to the bundled model
    print(checkpoint.path, checkpoint.quantised_tensors)
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from hf2vllm.errors import InputError
from hf2vllm.models import build_lock, sha256_of, staged_build

GPTQ_BITS = (4, 8)
# vLLM's GPTQ loader accepts these group sizes (marlin_utils.MARLIN_SUPPORTED_GROUP_SIZES); -1 is
# one group per output channel.
GPTQ_GROUP_SIZES = (-1, 32, 64, 128)
# Decoder-layer projections: quantised. Embeddings, lm_head and norms stay as they are, as in
# AutoGPTQ's defaults (vLLM quantises the lm_head only when the config says ``lm_head: true``).
QUANTISED_WEIGHT = re.compile(r"(^|\.)layers\.\d+\..*\.weight$")
MANIFEST = "hf2vllm-quantised.json"
# Files copied unchanged so both sides tokenise and template identically.
CARRIED_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "vocab.json",
    "merges.txt", "added_tokens.json", "chat_template.jinja", "chat_template.json", "generation_config.json",
)


@dataclass(frozen=True)
class QuantisedLinear:
    """One linear layer in GPTQ layout (see the module docstring for shapes and dtypes)."""

    qweight: np.ndarray
    qzeros: np.ndarray
    scales: np.ndarray
    g_idx: np.ndarray


class QuantisedCheckpoint(BaseModel):
    """What :func:`build_rtn_gptq` wrote (also stored as ``hf2vllm-quantised.json`` in the directory)."""

    path: Path
    source: Path
    source_sha256: str = Field(description="sha256 of the source weights (cache key, with scheme).")
    scheme: str = Field(description='e.g. "gptq-rtn-w4g64", "w8a8-int8-rtn" (also the default dir suffix).')
    method: str = Field(description="quant_method in config.json: gptq or compressed-tensors.")
    quantiser: str = "rtn"
    bits: int
    group_size: int | None = Field(None, description="GPTQ group size; None: per output channel (W8A8).")
    quantised_tensors: int
    kept_tensors: int
    quantised_parameters: int


def rtn_quantise(weight: np.ndarray, bits: int = 4, group_size: int = 64) -> QuantisedLinear:
    """Symmetric round-to-nearest per group of ``group_size`` inputs, packed in GPTQ layout.

    ``scale = max|w| / (2**(bits-1) - 1)`` per (group, output): the largest weight maps exactly to
    ``±7`` (4 bits), so nothing is clipped; the code ``-8`` stays unused, as with symmetric GPTQ.
    """
    w = np.asarray(weight, dtype=np.float32)
    out_features, in_features = w.shape
    group = in_features if group_size == -1 else group_size
    pack = 32 // bits
    if in_features % group or in_features % pack or out_features % pack:
        raise InputError(
            f"weight [{out_features}, {in_features}]: inputs must divide by the group size {group} and by {pack}, "
            f"outputs by {pack}"
        )
    bias = 1 << (bits - 1)
    grouped = w.reshape(out_features, in_features // group, group)
    max_abs = np.abs(grouped).max(axis=-1)  # [out, groups]
    # Scales are stored float16 (the GPTQ format) but rounded to bfloat16 precision first: a bfloat16
    # engine (the only kind vLLM-CPU runs GPTQ with) casts them to bfloat16 on load, and with this
    # rounding that cast is exact, so the weights it multiplies by are exactly ``dequantise()``'s.
    scales = _bfloat16_round(max_abs / (bias - 1)).astype(np.float16)
    # Quantise against the float16 scales actually stored, so dequantising the file gives back
    # exactly the integers' weights.
    safe = np.where(scales == 0, np.float16(1), scales).astype(np.float32)
    q = np.clip(np.rint(grouped / safe[..., None]) + bias, 0, (1 << bits) - 1).astype(np.uint32)
    q = q.reshape(out_features, in_features).T  # [in, out]: GPTQ packs along the input dim
    return QuantisedLinear(
        qweight=_pack_rows(q, bits),
        # Packed along the *output* dim: pack the transpose, transpose back.
        qzeros=np.ascontiguousarray(_pack_rows(np.full((out_features, in_features // group), bias - 1), bits).T),
        scales=np.ascontiguousarray(scales.T),  # [groups, out]
        g_idx=(np.arange(in_features) // group).astype(np.int32),
    )


def dequantise(qweight: np.ndarray, scales: np.ndarray, bits: int = 4) -> np.ndarray:
    """``W [out, in]`` float32 back from ``qweight [in/pack, out]`` and ``scales [groups, out]``."""
    q = _unpack_rows(np.asarray(qweight), bits).astype(np.float32)  # [in, out]
    groups = scales.shape[0]
    group = q.shape[0] // groups
    s = np.repeat(np.asarray(scales, dtype=np.float32), group, axis=0)
    return ((q - (1 << (bits - 1))) * s).T


def _bfloat16_round(x: np.ndarray) -> np.ndarray:
    """float32 values rounded (to nearest even) to the 8-bit mantissa of bfloat16, kept as float32."""
    bits = np.asarray(x, dtype=np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
    return rounded.view(np.float32)


def _pack_rows(values: np.ndarray, bits: int) -> np.ndarray:
    """Pack ``[n, m]`` unsigned values into int32 ``[n / pack, m]``: row ``pack*k + i`` -> bits ``bits*i``."""
    pack = 32 // bits
    v = values.astype(np.uint32).reshape(values.shape[0] // pack, pack, values.shape[1])
    word = np.zeros((v.shape[0], v.shape[2]), dtype=np.uint32)
    for i in range(pack):
        word |= v[:, i, :] << np.uint32(bits * i)
    return word.view(np.int32)


def _unpack_rows(words: np.ndarray, bits: int) -> np.ndarray:
    pack = 32 // bits
    w = words.view(np.uint32)
    mask = np.uint32((1 << bits) - 1)
    parts = [(w >> np.uint32(bits * i)) & mask for i in range(pack)]
    return np.stack(parts, axis=1).reshape(w.shape[0] * pack, w.shape[1])


def gptq_quantization_config(bits: int, group_size: int) -> dict[str, Any]:
    """``quantization_config`` as GPTQ checkpoints carry it (Transformers' ``GPTQConfig`` keys)."""
    return {
        "quant_method": "gptq", "bits": bits, "group_size": group_size, "desc_act": False, "sym": True,
        "lm_head": False, "checkpoint_format": "gptq", "damp_percent": 0.0, "true_sequential": False,
    }


def w8a8_quantization_config() -> dict[str, Any]:
    """compressed-tensors W8A8 int8 (llm-compressor's ``W8A8`` preset): int8 weights per output
    channel, int8 activations per token computed at run time."""
    int8 = {"num_bits": 8, "type": "int", "symmetric": True, "group_size": None, "block_structure": None, "actorder": None}
    return {
        "quant_method": "compressed-tensors",
        "format": "int-quantized",
        "quantization_status": "compressed",
        "config_groups": {
            "group_0": {
                "targets": ["Linear"],
                "weights": {**int8, "strategy": "channel", "dynamic": False, "observer": "minmax"},
                "input_activations": {**int8, "strategy": "token", "dynamic": True, "observer": None},
                "output_activations": None,
            }
        },
        "ignore": ["lm_head"],
        "kv_cache_scheme": None,
    }


def rtn_quantise_w8a8(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 ``[out, in]`` and float32 scales ``[out, 1]``: symmetric per output channel, max -> ±127."""
    w = np.asarray(weight, dtype=np.float32)
    scale = np.abs(w).max(axis=1, keepdims=True) / 127.0
    safe = np.where(scale == 0, 1.0, scale)
    return np.clip(np.rint(w / safe), -127, 127).astype(np.int8), scale.astype(np.float32)


def default_output_dir(model_dir: Path, scheme: str) -> Path:
    from hf2vllm.models import models_dir

    return models_dir() / f"{model_dir.name}-{scheme}"


def build_rtn_gptq(
    model_dir: Path, out_dir: Path | None = None, *, bits: int = 4, group_size: int = 64, force: bool = False
) -> QuantisedCheckpoint:
    """Write (or reuse) a GPTQ-layout RTN checkpoint of ``model_dir``; returns what was written.

    Runs on vLLM GPU builds (Marlin) and on vLLM-CPU builds whose kernel library has
    ``cpu_gemm_wna16`` (the AVX-512 ones; the AVX2 one lacks it, see docs/pooling.md).
    """
    if bits not in GPTQ_BITS:
        raise InputError(f"--bits {bits}: GPTQ checkpoints use {' or '.join(map(str, GPTQ_BITS))} bits")
    if group_size not in GPTQ_GROUP_SIZES:
        raise InputError(f"--group-size {group_size}: vLLM's GPTQ loader accepts {', '.join(map(str, GPTQ_GROUP_SIZES))}")

    def layer(prefix: str, w: np.ndarray) -> dict[str, np.ndarray]:
        q = rtn_quantise(w, bits, group_size)
        return {f"{prefix}.{part}": getattr(q, part) for part in ("qweight", "qzeros", "scales", "g_idx")}

    group = "ch" if group_size == -1 else str(group_size)
    quant = gptq_quantization_config(bits, group_size)
    return _build(
        Path(model_dir), out_dir, scheme=f"gptq-rtn-w{bits}g{group}", method="gptq", bits=bits, group_size=group_size,
        layer=layer, quant=quant, force=force,
        # AutoGPTQ's own file: some loaders (vLLM's included) look for it when config.json has none.
        extra_files={"quantize_config.json": quant},
    )


def build_rtn_w8a8(model_dir: Path, out_dir: Path | None = None, *, force: bool = False) -> QuantisedCheckpoint:
    """Write (or reuse) a compressed-tensors W8A8 int8 RTN checkpoint of ``model_dir``.

    The quantised format vLLM-CPU runs on any x86 CPU: its ``CPUInt8ScaledMMLinearKernel`` uses
    oneDNN (``onednn_scaled_mm``), present in the AVX2 kernel library too, with float32 activations.
    """

    def layer(prefix: str, w: np.ndarray) -> dict[str, np.ndarray]:
        q, scale = rtn_quantise_w8a8(w)
        return {f"{prefix}.weight": q, f"{prefix}.weight_scale": scale}

    return _build(
        Path(model_dir), out_dir, scheme="w8a8-int8-rtn", method="compressed-tensors", bits=8, group_size=None,
        layer=layer, quant=w8a8_quantization_config(), force=force, extra_files={},
    )


def _build(
    model_dir: Path, out_dir: Path | None, *, scheme: str, method: str, bits: int, group_size: int | None,
    layer: Callable[[str, np.ndarray], dict[str, np.ndarray]], quant: dict[str, Any], force: bool,
    extra_files: dict[str, dict[str, Any]],
) -> QuantisedCheckpoint:
    """Shared by both schemes: validate, reuse a cached build, else write to a temporary directory and
    rename it into place (an interrupted build never looks complete)."""
    weight_files = sorted(model_dir.glob("*.safetensors"))
    if not (model_dir / "config.json").is_file() or not weight_files:
        raise InputError(f"{model_dir}: not a safetensors checkpoint (config.json and *.safetensors needed)")
    config = json.loads((model_dir / "config.json").read_text())
    if config.get("quantization_config"):
        raise InputError(f"{model_dir}/config.json: already quantised ({config['quantization_config'].get('quant_method')})")
    target = Path(out_dir) if out_dir else default_output_dir(model_dir, scheme)
    digest = sha256_of(*weight_files)
    with build_lock(target.parent / ".quantise.lock"):
        existing = _read_manifest(target)
        if not force and existing and existing.source_sha256 == digest and existing.scheme == scheme:
            return existing.model_copy(update={"path": target})
        with staged_build(target) as staging:
            checkpoint = QuantisedCheckpoint(
                path=target, source=model_dir.resolve(), source_sha256=digest, scheme=scheme, method=method, bits=bits,
                group_size=group_size, **_write_weights(model_dir, weight_files, staging, layer),
            )
            (staging / "config.json").write_text(json.dumps({**config, "quantization_config": quant}, indent=2) + "\n")
            for name, content in extra_files.items():
                (staging / name).write_text(json.dumps(content, indent=2) + "\n")
            for name in CARRIED_FILES:
                if (model_dir / name).is_file():
                    shutil.copy2(model_dir / name, staging / name)
            (staging / MANIFEST).write_text(checkpoint.model_dump_json(indent=2) + "\n")
    return checkpoint


def _write_weights(
    model_dir: Path, weight_files: list[Path], out: Path, layer: Callable[[str, np.ndarray], dict[str, np.ndarray]]
) -> dict[str, int]:
    import torch
    from safetensors.torch import load_file, save_file

    tensors: dict[str, Any] = {}
    quantised = kept = parameters = 0
    for file in weight_files:
        for name, tensor in load_file(str(file)).items():
            if QUANTISED_WEIGHT.search(name) and tensor.ndim == 2:
                try:
                    parts = layer(name[: -len(".weight")], tensor.float().numpy())
                except InputError as err:
                    raise InputError(f"{file.name}: {name}: {err}") from None
                tensors.update({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in parts.items()})
                quantised += 1
                parameters += int(tensor.numel())
            else:
                tensors[name] = tensor.contiguous()  # embeddings, norms: unchanged, original dtype
                kept += 1
    if not quantised:
        raise InputError(f"{model_dir}: no decoder-layer linear weights found (names matching {QUANTISED_WEIGHT.pattern})")
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt", "quantized_by": "hf2vllm rtn"})
    return {"quantised_tensors": quantised, "kept_tensors": kept, "quantised_parameters": parameters}


def load_dequantised_state(checkpoint_dir: Path) -> dict[str, np.ndarray]:
    """``{layer.weight: W [out, in] float32}`` for every quantised layer of a checkpoint written here:
    the weights the quantised engine multiplies by (to tell quantisation error from kernel error)."""
    from safetensors import safe_open

    bits = int(read_manifest_or_fail(checkpoint_dir).bits)
    out: dict[str, np.ndarray] = {}
    with safe_open(str(Path(checkpoint_dir) / "model.safetensors"), "pt") as fh:
        names = set(fh.keys())
        for name in names:
            if name.endswith(".qweight"):  # GPTQ
                prefix = name[: -len(".qweight")]
                out[f"{prefix}.weight"] = dequantise(fh.get_tensor(name).numpy(), fh.get_tensor(f"{prefix}.scales").numpy(), bits)
            elif name.endswith(".weight_scale"):  # W8A8: int8 weight times its per-channel scale
                prefix = name[: -len(".weight_scale")]
                out[f"{prefix}.weight"] = fh.get_tensor(f"{prefix}.weight").float().numpy() * fh.get_tensor(name).float().numpy()
    return out


def read_manifest_or_fail(checkpoint_dir: Path) -> QuantisedCheckpoint:
    manifest = _read_manifest(Path(checkpoint_dir))
    if manifest is None:
        raise InputError(f"{checkpoint_dir}: no {MANIFEST} (not written by hf2vllm's RTN builder)")
    return manifest


def _read_manifest(target: Path) -> QuantisedCheckpoint | None:
    path = target / MANIFEST
    if not path.is_file() or not (target / "model.safetensors").is_file():
        return None
    try:
        return QuantisedCheckpoint.model_validate_json(path.read_text())
    except ValueError:
        return None




