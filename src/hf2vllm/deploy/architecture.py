"""Read a model's ``config.json`` into the few numbers that size its weights and KV cache.

The config is normalised through the installed Transformers config class when it knows the
``model_type`` (that is what vLLM reads too, so defaults such as Gemma's ``layer_types`` or a missing
``head_dim`` come out the same), and read raw otherwise. Layers are classified the way vLLM builds
their cache specs:

* MLA models (DeepSeek-V2/V3 family): one compressed latent of ``kv_lora_rank + qk_rope_head_dim``
  per token and layer (``MLAAttention.get_kv_cache_spec``).
* ``layer_types`` present: ``sliding_attention`` layers get a ``SlidingWindowSpec``, the rest full
  attention (``llama.py``/``gemma2.py``/``gemma3.py``).
* no ``layer_types`` but a ``sliding_window``: every layer slides (``EngineArgs`` sets
  ``CacheConfig.sliding_window`` only for all-sliding models; Mistral-7B-v0.1 is one).
* Jamba: attention every ``attn_layer_period`` layers from ``attn_layer_offset``, Mamba otherwise.

Anything else with a layout we cannot name (linear attention, unknown layer kinds) raises an
``InputError`` instead of producing a number.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from hf2vllm.errors import InputError

# Model types whose full weight layout weights.py knows; others get the Llama-style estimate.
KNOWN_WEIGHT_LAYOUTS = frozenset(
    {
        "llama",
        "mistral",
        "qwen2",
        "qwen3",
        "gemma",
        "gemma2",
        "gemma3",
        "gemma3_text",
        "mixtral",
        "qwen2_moe",
        "qwen3_moe",
        "deepseek_v2",
        "deepseek_v3",
        "jamba",
    }
)

MLA_MODEL_TYPES = frozenset({"deepseek_v2", "deepseek_v3", "kimi_k2", "deepseek_vl_v2"})


class LayerKind(str, Enum):
    """How one decoder layer stores its cache (mirrors vLLM's KV cache spec classes)."""

    FULL = "full_attention"
    SLIDING = "sliding_window"
    MLA = "mla"
    MAMBA = "mamba"


class MambaDims(BaseModel):
    """Mamba-1 mixer sizes (Jamba); the state per sequence follows from them."""

    d_inner: int
    d_state: int
    d_conv: int
    dt_rank: int
    conv_bias: bool
    proj_bias: bool


class ModelArchitecture(BaseModel):
    """The sizing-relevant facts of one model, read from its config.json."""

    name: str = Field(description="Directory or file stem the config came from.")
    model_type: str
    architectures: list[str]
    num_hidden_layers: int
    hidden_size: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    vocab_size: int
    intermediate_size: int
    max_position_embeddings: int | None
    tie_word_embeddings: bool
    torch_dtype: str
    layer_kinds: list[LayerKind]
    sliding_window: int | None = None
    attention_bias: bool = False
    # MLA
    kv_lora_rank: int | None = None
    q_lora_rank: int | None = None
    qk_nope_head_dim: int | None = None
    qk_rope_head_dim: int | None = None
    v_head_dim: int | None = None
    # MoE
    num_experts: int = 0
    num_experts_per_tok: int = 0
    moe_intermediate_size: int | None = None
    num_shared_experts: int = 0
    shared_expert_intermediate_size: int | None = None
    moe_layers: list[int] = Field(default_factory=list)
    # hybrid
    mamba: MambaDims | None = None
    # multimodal
    vision_config: dict[str, Any] | None = None
    mm_tokens_per_image: int | None = None
    quantization_method: str | None = None

    @property
    def is_mla(self) -> bool:
        return LayerKind.MLA in self.layer_kinds

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def is_hybrid(self) -> bool:
        return LayerKind.MAMBA in self.layer_kinds

    @property
    def is_vision_language(self) -> bool:
        return self.vision_config is not None

    @property
    def kv_head_size(self) -> int:
        """The ``head_size`` vLLM gives the attention layer (MLA: latent + rope part)."""
        if self.is_mla:
            assert self.kv_lora_rank is not None and self.qk_rope_head_dim is not None
            return self.kv_lora_rank + self.qk_rope_head_dim
        return self.head_dim


def read_config_json(path: Path) -> tuple[dict[str, Any], str]:
    """Load ``config.json`` from a checkpoint directory or the file itself; returns (dict, name)."""
    from hf2vllm.checks import read_text

    path = Path(path)
    config_file = path / "config.json" if path.is_dir() else path
    if not config_file.is_file():
        raise InputError(f"{path}: no config.json found (give a checkpoint directory or the file)")
    try:
        raw = json.loads(read_text(config_file, "config"))
    except json.JSONDecodeError as err:
        raise InputError(f"{config_file}:{err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(raw, dict):
        raise InputError(f"{config_file}: config.json must be a JSON object")
    name = path.name if path.is_dir() else config_file.stem
    return raw, name


# The keys that size a model, under every name Transformers' ``attribute_map``s give them.
SIZE_KEYS: dict[str, tuple[str, ...]] = {
    "hidden_size": ("hidden_size", "d_model", "n_embd", "n_embed", "hidden_dim", "embed_dim", "emb_dim", "dim",
                    "model_dim"),
    "num_hidden_layers": ("num_hidden_layers", "num_layers", "n_layer", "n_layers", "encoder_layers",
                          "decoder_layers", "layers"),
    "num_attention_heads": ("num_attention_heads", "num_heads", "n_head", "n_heads", "attention_heads",
                            "encoder_attention_heads", "decoder_attention_heads"),
    "vocab_size": ("vocab_size", "padded_vocab_size"),
}


def missing_size_keys(raw: dict[str, Any]) -> list[str]:
    """The sizing keys a flat config.json does not state. Transformers would fill them from its class
    defaults (a 7B Llama for ``llama``), which would make a plan for a model nobody asked about."""
    if isinstance(raw.get("text_config"), dict):
        # Multimodal wrappers: the text model's own config may rely on its family's defaults
        # (llava-1.5 states only vocab_size); vLLM reads it the same way.
        return []
    return [key for key, names in SIZE_KEYS.items() if not any(raw.get(n) is not None for n in names)]


# Integer sizes checked in the raw file, before Transformers (slow to import) sees them.
_INTEGER_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "num_key_value_heads",
                 "head_dim", "intermediate_size", "max_position_embeddings")


def _check_integer_sizes(raw: dict[str, Any], path: Path | str) -> None:
    for part, values in (("", raw), ("text_config.", raw.get("text_config"))):
        if not isinstance(values, dict):
            continue
        for key in _INTEGER_KEYS:
            value = values.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise InputError(f"{path}: config.json `{part}{key}` is {value!r}; it must be a positive integer")


def _normalised(raw: dict[str, Any], source: Path | str = "config.json") -> Any:
    """The config as Transformers (and therefore vLLM) sees it, or the raw values if unknown."""
    model_type = raw.get("model_type")
    try:
        from transformers import CONFIG_MAPPING
    except ImportError:  # planning still works from the raw file
        return SimpleNamespace(**raw)
    try:  # Transformers' configs are strict dataclasses now: a wrong type raises hub's own error class
        from huggingface_hub.errors import StrictDataclassError
    except ImportError:
        StrictDataclassError = ValueError  # noqa: N806
    if model_type in CONFIG_MAPPING:
        values = {k: v for k, v in raw.items() if k != "model_type"}
        try:
            return CONFIG_MAPPING[model_type](**values)
        except (TypeError, ValueError, StrictDataclassError) as err:
            raise InputError(f"{source}: Transformers rejects this {model_type} config: {err}") from None
    return SimpleNamespace(**raw)


def _get(cfg: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        value = getattr(cfg, name, None)
        if value is not None:
            return value
    return default


def _require(cfg: Any, field: str, where: str) -> int:
    value = getattr(cfg, field, None)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InputError(f"{where}: `{field}` is missing or not a positive integer")
    return value


def _text_config(cfg: Any) -> Any:
    getter = getattr(cfg, "get_text_config", None)
    if callable(getter):
        return getter()
    text = getattr(cfg, "text_config", None)
    if isinstance(text, dict):
        return SimpleNamespace(**text)
    return text if text is not None else cfg


def _layer_kinds(model_type: str, text: Any, n_layers: int, raw: dict[str, Any]) -> list[LayerKind]:
    if model_type in MLA_MODEL_TYPES or (
        getattr(text, "kv_lora_rank", None) and getattr(text, "qk_rope_head_dim", None)
    ):
        return [LayerKind.MLA] * n_layers
    if model_type == "jamba":
        period = _require(text, "attn_layer_period", "config.json")
        offset = getattr(text, "attn_layer_offset", 0)
        return [LayerKind.FULL if i % period == offset else LayerKind.MAMBA for i in range(n_layers)]
    for exotic in ("attn_type_list", "linear_attn_config", "layers_block_type", "hybrid_override_pattern"):
        if exotic in raw:
            raise InputError(
                f"config.json: `{exotic}` describes an attention layout hf2vllm cannot size "
                f"(model_type {model_type!r})"
            )
    layer_types = getattr(text, "layer_types", None)
    if layer_types:
        if len(layer_types) < n_layers:
            raise InputError(
                f"config.json: `layer_types` lists {len(layer_types)} layers but "
                f"num_hidden_layers is {n_layers}"
            )
        kinds = []
        for index, kind in enumerate(layer_types[:n_layers]):
            if kind in ("full_attention", "attention"):
                kinds.append(LayerKind.FULL)
            elif kind == "sliding_attention":
                kinds.append(LayerKind.SLIDING)
            else:
                raise InputError(
                    f"config.json: layer_types[{index}] is {kind!r}, an attention layout hf2vllm "
                    "cannot size (supported: full_attention, sliding_attention, MLA, Jamba mamba)"
                )
        return kinds
    if getattr(text, "sliding_window", None) and getattr(text, "use_sliding_window", True) is not False:
        return [LayerKind.SLIDING] * n_layers
    return [LayerKind.FULL] * n_layers


def _moe_layers(model_type: str, text: Any, n_layers: int, num_experts: int) -> list[int]:
    if not num_experts:
        return []
    if model_type in ("deepseek_v2", "deepseek_v3", "kimi_k2"):
        first_dense = getattr(text, "first_k_dense_replace", 0) or 0
        freq = getattr(text, "moe_layer_freq", 1) or 1
        return [i for i in range(n_layers) if i >= first_dense and i % freq == 0]
    if model_type == "jamba":
        period = getattr(text, "expert_layer_period", 1) or 1
        offset = getattr(text, "expert_layer_offset", 0) or 0
        return [i for i in range(n_layers) if i % period == offset]
    if model_type in ("qwen2_moe", "qwen3_moe"):
        step = getattr(text, "decoder_sparse_step", 1) or 1
        dense = set(getattr(text, "mlp_only_layers", []) or [])
        return [i for i in range(n_layers) if i not in dense and (i + 1) % step == 0]
    return list(range(n_layers))


def load_architecture(path: Path | str) -> ModelArchitecture:
    """Read ``path`` (checkpoint directory or config.json) into a ``ModelArchitecture``."""
    raw, name = read_config_json(Path(path))
    model_type = raw.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise InputError(f"{path}: config.json has no `model_type`; give the checkpoint's full config.json")
    missing = missing_size_keys(raw)
    if missing:
        raise InputError(
            f"{path}: config.json does not state {', '.join(missing)}; hf2vllm will not size a model from "
            f"Transformers' {model_type} defaults. Give the checkpoint's complete config.json (as published "
            "with the weights) or its directory"
        )
    _check_integer_sizes(raw, path)
    try:
        return _load_architecture(raw, name, model_type, path)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise InputError(f"{path}: config.json `{field}`: {first['msg']} (got {first.get('input')!r})") from None
    except (TypeError, ValueError, ZeroDivisionError) as err:
        raise InputError(f"{path}: config.json has a value of the wrong kind ({err}); compare it with the "
                         "checkpoint's published config.json") from None


def _load_architecture(raw: dict[str, Any], name: str, model_type: str, path: Path | str) -> ModelArchitecture:
    cfg = _normalised(raw, path)
    text = _text_config(cfg)
    where = "config.json" if text is cfg else "config.json text_config"
    n_layers = _require(text, "num_hidden_layers", where)
    hidden = _require(text, "hidden_size", where)
    heads = _require(text, "num_attention_heads", where)
    kv_heads = _get(text, "num_key_value_heads", default=heads)
    if not isinstance(kv_heads, int) or isinstance(kv_heads, bool) or kv_heads <= 0:
        raise InputError(f"{where}: `num_key_value_heads` is {kv_heads!r}, not a positive integer")
    head_dim = _get(text, "head_dim", default=None)
    if not isinstance(head_dim, int) or head_dim <= 0 or model_type in MLA_MODEL_TYPES:
        # DeepSeek configs carry head_dim = qk_rope_head_dim; vLLM ignores it for MLA.
        head_dim = hidden // heads
    text_model_type = getattr(text, "model_type", model_type) or model_type
    num_experts = int(_get(text, "num_local_experts", "n_routed_experts", "num_experts", default=0) or 0)
    layer_kinds = _layer_kinds(text_model_type, text, n_layers, raw.get("text_config", raw))
    sliding = getattr(text, "sliding_window", None) if LayerKind.SLIDING in layer_kinds else None
    mamba = None
    if LayerKind.MAMBA in layer_kinds:
        expand = _require(text, "mamba_expand", where)
        mamba = MambaDims(
            d_inner=expand * hidden,
            d_state=_require(text, "mamba_d_state", where),
            d_conv=_require(text, "mamba_d_conv", where),
            dt_rank=_get(text, "mamba_dt_rank", default=-(-hidden // 16)),
            conv_bias=bool(getattr(text, "mamba_conv_bias", True)),
            proj_bias=bool(getattr(text, "mamba_proj_bias", False)),
        )
    vision = raw.get("vision_config")
    dtype = str(_get(text, "dtype", "torch_dtype", default=None) or raw.get("torch_dtype") or raw.get("dtype") or "bfloat16")
    dtype = dtype.replace("torch.", "")
    quant = raw.get("quantization_config") or {}
    tie = raw.get("tie_word_embeddings")
    if tie is None:
        tie = bool(getattr(cfg, "tie_word_embeddings", False) or getattr(text, "tie_word_embeddings", False))
    shared_experts = int(_get(text, "n_shared_experts", default=0) or 0)
    shared_size = _get(text, "shared_expert_intermediate_size", default=None)
    if shared_size and not shared_experts:
        shared_experts = 1
    return ModelArchitecture(
        name=name,
        model_type=model_type,
        architectures=list(raw.get("architectures") or []),
        num_hidden_layers=n_layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_key_value_heads=int(kv_heads),
        head_dim=int(head_dim),
        vocab_size=_require(text, "vocab_size", where),
        intermediate_size=int(_get(text, "intermediate_size", default=4 * hidden)),
        max_position_embeddings=_get(text, "max_position_embeddings", default=None),
        tie_word_embeddings=bool(tie),
        torch_dtype=dtype,
        layer_kinds=layer_kinds,
        sliding_window=sliding,
        attention_bias=bool(getattr(text, "attention_bias", False)),
        kv_lora_rank=getattr(text, "kv_lora_rank", None),
        q_lora_rank=getattr(text, "q_lora_rank", None),
        qk_nope_head_dim=getattr(text, "qk_nope_head_dim", None),
        qk_rope_head_dim=getattr(text, "qk_rope_head_dim", None),
        v_head_dim=getattr(text, "v_head_dim", None),
        num_experts=num_experts,
        num_experts_per_tok=int(_get(text, "num_experts_per_tok", default=0) or 0),
        moe_intermediate_size=_get(text, "moe_intermediate_size", default=None),
        num_shared_experts=shared_experts,
        shared_expert_intermediate_size=shared_size,
        moe_layers=_moe_layers(text_model_type, text, n_layers, num_experts),
        mamba=mamba,
        vision_config=vision if isinstance(vision, dict) else None,
        mm_tokens_per_image=raw.get("mm_tokens_per_image"),
        quantization_method=quant.get("quant_method") if isinstance(quant, dict) else None,
    )
