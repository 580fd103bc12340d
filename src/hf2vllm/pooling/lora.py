"""LoRA adapters: inspect one against the model and vLLM's limits *before* running, and build test ones.

The silent failure this guards against (vLLM issue #12808): an adapter trained with PEFT on the
*inner* model (``AutoModel`` -> ``LlamaModel``, which is what sentence-transformers and most embedding
trainers wrap) saves keys ``base_model.model.layers.0.self_attn.q_proj.lora_A.weight``; vLLM's module
is ``model.layers.0.self_attn.q_proj``. vLLM only checks the last name component (``q_proj``) when it
loads the adapter, so nothing complains; at activation each module looks up its full name, finds
nothing and runs with the base weights. vLLM 0.32's pooling runner retries without ``model.``
(``_get_lora_layer_weights``); the generate runner does not, and older versions did not either.

Usage::

    inspection = inspect_adapter(Path("my-adapter"), model_dir)
    for finding in inspection.findings: print(finding.severity, finding.message)
    if inspection.blocking: raise ...
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from hf2vllm.errors import InputError

PEFT_PREFIX = "base_model.model."
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""``LoRAConfig.max_lora_rank`` accepts only these values (vllm/config/lora.py ``MaxLoRARanks``)."""

AdapterLayout = Literal["causal-lm", "inner-model", "unmatched", "mixed"]
Severity = Literal["error", "warning", "info"]


class AdapterFinding(BaseModel):
    severity: Severity
    code: str = Field(description="Stable identifier, e.g. lora-keys-unmatched.")
    message: str


class AdapterInspection(BaseModel):
    """What an adapter targets and whether vLLM and PEFT will both really apply it."""

    adapter_dir: str
    rank: int
    alpha: float
    target_modules: list[str]
    tensor_count: int
    layout: AdapterLayout = Field(
        description="causal-lm: keys match the checkpoint's module names; inner-model: they match only "
        "after adding 'model.' (adapter trained on AutoModel); unmatched: some keys match nothing."
    )
    matched_modules: int
    unmatched_keys: list[str] = Field(default_factory=list, description="First few keys that match no module.")
    required_max_lora_rank: int | None = Field(None, description="Smallest vLLM max_lora_rank that fits.")
    findings: list[AdapterFinding] = Field(default_factory=list)

    @property
    def blocking(self) -> list[AdapterFinding]:
        return [f for f in self.findings if f.severity == "error"]


def read_adapter_config(adapter_dir: Path) -> dict:
    path = adapter_dir / "adapter_config.json"
    if not path.is_file():
        raise InputError(f"--lora {adapter_dir}: no adapter_config.json (not a PEFT adapter directory)")
    try:
        return dict(json.loads(path.read_text()))
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err.msg})") from None


def read_adapter_keys(adapter_dir: Path) -> list[str]:
    """Tensor names of the adapter, read from the safetensors header (no tensors loaded)."""
    st = adapter_dir / "adapter_model.safetensors"
    if st.is_file():
        return safetensors_keys(st)
    for name in ("adapter_model.bin", "adapter_model.pt"):
        if (adapter_dir / name).is_file():
            import torch

            return list(torch.load(adapter_dir / name, map_location="cpu", weights_only=True).keys())
    raise InputError(f"--lora {adapter_dir}: no adapter_model.safetensors (or .bin) in the directory")


def safetensors_keys(path: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return list(fh.keys())


def model_module_names(model_dir: Path) -> set[str]:
    """Module names that own a ``.weight`` in the checkpoint (``model.layers.0.self_attn.q_proj``...)."""
    names: set[str] = set()
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        keys = list(json.loads(index.read_text())["weight_map"])
    else:
        files = sorted(model_dir.glob("*.safetensors"))
        if not files:
            raise InputError(f"{model_dir}: no safetensors weights to match the adapter against")
        keys = [k for f in files for k in safetensors_keys(f)]
    for key in keys:
        if key.endswith(".weight"):
            names.add(key.removesuffix(".weight"))
    return names


def lora_module_name(key: str) -> str | None:
    """The module a LoRA tensor belongs to, after PEFT's prefix (mirrors vLLM's name parsing)."""
    name = key.removeprefix(PEFT_PREFIX)
    for suffix in (".lora_A.weight", ".lora_B.weight", ".lora_embedding_A", ".lora_embedding_B"):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return None


def smallest_vllm_rank(rank: int) -> int | None:
    return next((r for r in VLLM_LORA_RANKS if r >= rank), None)


def inspect_adapter(
    adapter_dir: Path,
    model_dir: Path,
    *,
    runner: Literal["generate", "pooling"] = "generate",
    max_lora_rank: int | None = None,
    vllm_has_pooling_prefix_retry: bool = True,
) -> AdapterInspection:
    """Check an adapter's keys, rank and targets against the model and vLLM; pure file reading.

    ``vllm_has_pooling_prefix_retry``: whether the installed vLLM's pooling runner retries a module
    name without ``model.`` (true for 0.32; see module docstring).
    """
    adapter_dir = Path(adapter_dir)
    config = read_adapter_config(adapter_dir)
    keys = read_adapter_keys(adapter_dir)
    modules = model_module_names(Path(model_dir))
    rank = int(config.get("r") or 0)
    targets = config.get("target_modules") or []
    targets = [targets] if isinstance(targets, str) else list(targets)
    findings: list[AdapterFinding] = []

    direct = inner = 0
    unmatched: list[str] = []
    for key in keys:
        module = lora_module_name(key)
        if module is None:
            unmatched.append(key)
        elif module in modules:
            direct += 1
        elif f"model.{module}" in modules:
            inner += 1
        else:
            unmatched.append(key)
    layout: AdapterLayout
    if unmatched:
        layout = "unmatched" if not (direct or inner) else "mixed"
    elif inner and direct:
        layout = "mixed"
    elif inner:
        layout = "inner-model"
    else:
        layout = "causal-lm"

    if unmatched:
        near = _nearest_modules(unmatched[0], modules)
        findings.append(
            AdapterFinding(
                severity="error",
                code="lora-keys-unmatched",
                message=(
                    f"{len(unmatched)} of {len(keys)} adapter tensors match no module of the model "
                    f"(e.g. {unmatched[0]!r}; the model has e.g. {near}). vLLM checks only the last name "
                    "component when loading, so this adapter would load without error and those layers "
                    "would silently run with base weights. Was it trained on a different architecture "
                    "or checkpoint?"
                ),
            )
        )
    if layout in ("inner-model", "mixed") and inner:
        if runner == "pooling" and vllm_has_pooling_prefix_retry:
            findings.append(
                AdapterFinding(
                    severity="warning",
                    code="lora-inner-model-prefix",
                    message=(
                        f"adapter keys are relative to the inner model ({inner} tensors like "
                        f"'{PEFT_PREFIX}layers.N...', trained on AutoModel) while vLLM's modules are "
                        "'model.layers.N...'. This vLLM's pooling runner retries without 'model.' and "
                        "applies it; the generate runner and vLLM before that fix (issue #12808) skip it "
                        "silently. Re-save with keys 'base_model.model.model.layers...' to be portable."
                    ),
                )
            )
        else:
            findings.append(
                AdapterFinding(
                    severity="error",
                    code="lora-inner-model-prefix",
                    message=(
                        f"adapter keys are relative to the inner model ({inner} tensors like "
                        f"'{PEFT_PREFIX}layers.N...', trained on AutoModel) but vLLM's {runner} runner looks "
                        "up 'model.layers.N...': vLLM would load it without error and never apply it "
                        "(vLLM issue #12808). Re-save the adapter with keys "
                        "'base_model.model.model.layers...' (load it with PEFT on AutoModelForCausalLM)."
                    ),
                )
            )

    required = smallest_vllm_rank(rank) if rank > 0 else None
    if rank <= 0:
        findings.append(AdapterFinding(severity="error", code="lora-rank", message=f"adapter rank r={rank} is invalid"))
    elif required is None:
        findings.append(
            AdapterFinding(
                severity="error",
                code="lora-rank",
                message=f"adapter rank r={rank} exceeds vLLM's largest max_lora_rank ({VLLM_LORA_RANKS[-1]})",
            )
        )
    elif max_lora_rank is not None and rank > max_lora_rank:
        findings.append(
            AdapterFinding(
                severity="error",
                code="lora-rank",
                message=f"adapter rank r={rank} > the engine's max_lora_rank={max_lora_rank}; "
                f"start vLLM with max_lora_rank={required}",
            )
        )

    findings.extend(_feature_findings(config, targets, modules, runner))
    return AdapterInspection(
        adapter_dir=str(adapter_dir),
        rank=rank,
        alpha=float(config.get("lora_alpha") or rank),
        target_modules=sorted(targets),
        tensor_count=len(keys),
        layout=layout,
        matched_modules=(direct + inner) // 2 if keys else 0,
        unmatched_keys=unmatched[:5],
        required_max_lora_rank=required,
        findings=findings,
    )


def _feature_findings(
    config: dict, targets: Sequence[str], modules: set[str], runner: str
) -> list[AdapterFinding]:
    """Adapter features vLLM refuses or ignores (mirrors vllm/lora/peft_helper.py's validation)."""
    out: list[AdapterFinding] = []
    if config.get("peft_type", "LORA") != "LORA":
        out.append(AdapterFinding(severity="error", code="lora-type", message=f"peft_type {config.get('peft_type')!r}: vLLM serves only LoRA"))
    if config.get("use_dora"):
        out.append(AdapterFinding(severity="error", code="lora-dora", message="use_dora=true: vLLM does not support DoRA"))
    if config.get("bias", "none") != "none" or config.get("lora_bias"):
        out.append(AdapterFinding(severity="error", code="lora-bias", message="adapter trains biases: vLLM does not support LoRA bias"))
    extra = [m for m in config.get("modules_to_save") or [] if m not in ("classifier", "score")]
    if extra:
        out.append(
            AdapterFinding(
                severity="error",
                code="lora-modules-to-save",
                message=f"modules_to_save={extra}: vLLM only supports classifier/score there; those "
                "fully-trained modules would be missing on the vLLM side",
            )
        )
    base_names = {m.rsplit(".", 1)[-1] for m in modules}
    for target in targets:
        leaf = target.rsplit(".", 1)[-1]
        if leaf not in base_names and not any(m.endswith(target) for m in modules):
            out.append(
                AdapterFinding(
                    severity="error",
                    code="lora-target-missing",
                    message=f"target module {target!r} is not a module of this model",
                )
            )
        elif leaf == "lm_head" and runner == "pooling":
            out.append(
                AdapterFinding(
                    severity="warning",
                    code="lora-lm-head-pooling",
                    message="target lm_head has no effect on hidden states: the pooling runner drops the LM head",
                )
            )
        elif leaf in ("norm", "input_layernorm", "post_attention_layernorm"):
            out.append(
                AdapterFinding(severity="error", code="lora-target-unsupported", message=f"target {target!r}: vLLM applies LoRA to linear and embedding layers only")
            )
    return out


def _nearest_modules(key: str, modules: set[str], limit: int = 2) -> list[str]:
    leaf = (lora_module_name(key) or key).rsplit(".", 1)[-1]
    same_leaf = sorted(m for m in modules if m.endswith("." + leaf))
    return (same_leaf or sorted(modules))[:limit]


def build_test_adapter(
    model_dir: Path,
    out_dir: Path,
    *,
    layout: Literal["causal-lm", "inner-model"] = "causal-lm",
    rank: int = 8,
    alpha: int = 16,
    target_modules: Sequence[str] = ("q_proj", "v_proj"),
    seed: int = 0,
    scale: float = 1.0,
) -> Path:
    """Save a PEFT LoRA adapter with random non-zero A *and* B (PEFT's default B=0 is a no-op adapter).

    ``layout="inner-model"`` builds it on ``AutoModel`` (the inner ``LlamaModel``), which reproduces
    the key layout vLLM failed to match. ``scale`` multiplies B to make the adapter's effect larger.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel, AutoModelForCausalLM

    torch.manual_seed(seed)
    loader = AutoModelForCausalLM if layout == "causal-lm" else AutoModel
    model = loader.from_pretrained(model_dir, dtype=torch.float32)
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(target_modules), init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    if scale != 1.0:
        with torch.no_grad():
            for name, param in peft_model.named_parameters():
                if "lora_B" in name:
                    param.mul_(scale)
    out_dir.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(str(out_dir))
    return out_dir
