"""The deployment plan: parallelism, capacity and scheduler limits for one model on given hardware,
with the reasons, the ``vllm serve`` command and an equivalent ``vllm serve --config`` YAML file.

Usage::

    request = PlanRequest(model="path/to/checkpoint", gpu="H100-80GB", gpus=8)
    plan = make_plan(request)
    print(plan.vllm_serve_command)

Everything here is arithmetic over the config and the request; the only I/O is reading
config.json and safetensors headers.
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import Literal, get_args

import yaml
from pydantic import BaseModel, Field

from hf2vllm.deploy.architecture import LayerKind, ModelArchitecture, load_architecture
from hf2vllm.deploy.hardware import GIB, Accelerator, resolve_accelerator
from hf2vllm.deploy.hf_reference import HFReferencePlacement, hf_reference_placement
from hf2vllm.deploy.kv_cache import KVCapacity, dtype_bytes, kv_bytes_per_token, kv_capacity, layer_caches
from hf2vllm.deploy.weights import WeightEstimate, estimate_weights
from hf2vllm.errors import InputError

Goal = Literal["throughput", "latency", "balanced"]
GOALS: tuple[str, ...] = get_args(Goal)
DEVICES = ("gpu", "cpu")
# The most GPUs one node holds in practice (8 is typical: DGX/HGX; 16 on a few); more means several nodes.
MAX_GPUS_PER_NODE = 16

# vLLM's CPU build defaults to 128-token blocks (16 for its MLA kernel); GPU attention backends
# use 16, and the FlashMLA/Cutlass MLA backends need 64.
CPU_BLOCK_SIZE = 128
GPU_BLOCK_SIZE = 16
GPU_MLA_BLOCK_SIZE = 64
# Memory vLLM's start-up profile finds outside weights and activations (CUDA context, NCCL,
# allocator slack) and, unless --enforce-eager, captured CUDA graphs. Estimates, shown as such.
NON_TORCH_OVERHEAD_BYTES = int(0.75 * GIB)
CUDA_GRAPH_BYTES = int(0.75 * GIB)

REASONING_PARSERS: list[tuple[str, str, str]] = [
    # (model_type, name fragment or "" for any, parser)
    ("deepseek_v3", "r1", "deepseek_r1"),
    ("qwen2", "qwq", "deepseek_r1"),
    ("qwen2", "r1-distill", "deepseek_r1"),
    ("llama", "r1-distill", "deepseek_r1"),
    ("qwen3", "", "qwen3"),
    ("qwen3_moe", "", "qwen3"),
    ("gpt_oss", "", "openai_gptoss"),
    ("glm4_moe", "", "glm45"),
    ("ernie4_5_moe", "", "ernie45"),
    ("mistral", "magistral", "mistral"),
    ("granite", "reason", "granite"),
]


class PlanRequest(BaseModel):
    """What the user asks for: a model, hardware and a workload."""

    model: str = Field(description="Checkpoint directory or a config.json file.")
    device: Literal["gpu", "cpu"] = "gpu"
    gpu: str | None = None
    gpu_memory_gib: float | None = None
    gpus: int = 1
    nodes: int = 1
    kv_cache_memory_gib: float | None = Field(default=None, description="CPU: KV space (vLLM's --kv-cache-memory-bytes).")
    max_model_len: int | None = None
    prompt_tokens: int = 512
    output_tokens: int = 256
    concurrency: int = 32
    goal: Goal = "balanced"
    kv_cache_dtype: str = "auto"
    quantization: str | None = None
    dtype: str | None = None
    gpu_memory_utilization: float = 0.9
    block_size: int | None = None
    max_num_batched_tokens: int | None = None
    max_num_seqs: int | None = None
    enforce_eager: bool = False
    images_per_prompt: int = 1
    host: str = "127.0.0.1"
    port: int = 8000
    served_model_name: str | None = None
    serve_model: str | None = Field(
        default=None, description="Model id or path to put in the vllm serve command (default: the checkpoint directory)."
    )


class MemoryBudget(BaseModel):
    """Where one rank's memory goes, in bytes."""

    device_total_bytes: int
    gpu_memory_utilization: float | None
    weights_per_rank_bytes: int
    activation_estimate_bytes: int
    overhead_estimate_bytes: int
    kv_cache_bytes_per_rank: int
    source: str


class Plan(BaseModel):
    """A deployment plan; ``--json`` prints this model."""

    model: str
    model_type: str
    architectures: list[str]
    device: str
    accelerator: str
    gpus_per_node: int
    nodes: int
    dtype: str
    goal: Goal
    weights_bytes: int
    weights_parameters: int
    weights_source: str
    weights_per_rank_bytes: int
    kv_cache_dtype: str
    kv_cache_bytes_per_token: int
    kv_cache_bytes_per_token_per_rank: int
    layer_kinds: dict[str, int]
    block_size: int
    memory: MemoryBudget
    kv_cache_tokens: int
    max_concurrency: float
    capacity: KVCapacity
    max_model_len: int
    tensor_parallel_size: int
    pipeline_parallel_size: int
    data_parallel_size: int
    parallelism_reason: str
    max_num_seqs: int
    max_num_batched_tokens: int
    enable_chunked_prefill: bool
    enable_prefix_caching: bool
    reasoning_parser: str | None
    limit_mm_per_prompt: dict[str, int] | None
    mm_tokens_per_image: int | None
    requests_in_kv_at_typical_length: int
    reasons: list[str]
    warnings: list[str]
    vllm_serve_args: list[str]
    vllm_serve_command: str
    yaml_config: str
    ray_commands: list[str]
    hf_reference: HFReferencePlacement | None = Field(
        None, description="Where the HF reference of a comparison goes on this hardware (deploy/hf_reference.py)."
    )


class _Candidate(BaseModel):
    tp: int
    pp: int
    capacity: KVCapacity
    memory: MemoryBudget
    caches_bytes_per_token: int


def _gib(value: float) -> str:
    return f"{value / GIB:.2f} GiB"


def _reasoning_parser(arch: ModelArchitecture, model: str) -> str | None:
    name = f"{Path(model).name} {arch.name}".lower()
    for model_type, fragment, parser in REASONING_PARSERS:
        if arch.model_type == model_type and fragment in name:
            return parser
    return None


def _image_tokens(arch: ModelArchitecture) -> int | None:
    if not arch.is_vision_language:
        return None
    if arch.mm_tokens_per_image:
        return int(arch.mm_tokens_per_image)
    vision = arch.vision_config or {}
    if "image_size" in vision and "patch_size" in vision:
        # Most projectors merge 2x2 patches; an estimate where the config does not say.
        return (vision["image_size"] // vision["patch_size"]) ** 2 // 4
    return None


def _default_block_size(request: PlanRequest, arch: ModelArchitecture) -> int:
    if request.block_size:
        return request.block_size
    if request.device == "cpu":
        return 16 if arch.is_mla else CPU_BLOCK_SIZE
    return GPU_MLA_BLOCK_SIZE if arch.is_mla else GPU_BLOCK_SIZE


def _batched_tokens(request: PlanRequest, image_budget: int) -> int:
    if request.max_num_batched_tokens:
        return request.max_num_batched_tokens
    base = {"throughput": 8192, "balanced": 4096, "latency": 2048}[request.goal]
    if request.device == "cpu":
        base = min(base, 2048)
    return max(base, image_budget)


def _activation_estimate(arch: ModelArchitecture, tp: int, batched_tokens: int, max_num_seqs: int, element: int) -> int:
    """Peak activation of vLLM's profiling forward pass (an estimate: residual stream, attention
    projections and the widest MLP for ``max_num_batched_tokens`` tokens, plus float32 logits for
    ``max_num_seqs`` sampled rows)."""
    ffn = arch.intermediate_size
    if arch.is_moe:
        ffn = (arch.moe_intermediate_size or arch.intermediate_size) * max(arch.num_experts_per_tok, 1)
    width = 4 * arch.hidden_size + (
        arch.num_attention_heads + 2 * arch.num_key_value_heads
    ) * arch.head_dim // tp + 2 * ffn // tp
    return batched_tokens * width * element + max_num_seqs * arch.vocab_size * 4


def _evaluate(
    request: PlanRequest,
    arch: ModelArchitecture,
    weights: WeightEstimate,
    accelerator: Accelerator | None,
    tp: int,
    pp: int,
    dtype: str,
    block_size: int,
    max_model_len: int,
    batched_tokens: int,
) -> _Candidate | None:
    caches = layer_caches(arch, kv_cache_dtype=request.kv_cache_dtype, model_dtype=dtype, tensor_parallel_size=tp)
    weights_rank = math.ceil(weights.weights_bytes / (tp * pp))
    if request.device == "cpu":
        kv_bytes = int((request.kv_cache_memory_gib or 1.0) * GIB)
        memory = MemoryBudget(
            device_total_bytes=kv_bytes,
            gpu_memory_utilization=None,
            weights_per_rank_bytes=weights_rank,
            activation_estimate_bytes=0,
            overhead_estimate_bytes=0,
            kv_cache_bytes_per_rank=kv_bytes,
            source="cpu: --kv-cache-memory-bytes is used as given (vLLM logs 'Explicitly set ... GiB for KV cache')",
        )
    else:
        assert accelerator is not None
        total = int(accelerator.memory_gib * GIB)
        element = dtype_bytes("auto", dtype)
        activation = _activation_estimate(arch, tp, batched_tokens, request.max_num_seqs or 256, element)
        overhead = NON_TORCH_OVERHEAD_BYTES + (0 if request.enforce_eager else CUDA_GRAPH_BYTES)
        kv_bytes = int(total * request.gpu_memory_utilization) - weights_rank - activation - overhead
        memory = MemoryBudget(
            device_total_bytes=total,
            gpu_memory_utilization=request.gpu_memory_utilization,
            weights_per_rank_bytes=weights_rank,
            activation_estimate_bytes=activation,
            overhead_estimate_bytes=overhead,
            kv_cache_bytes_per_rank=max(kv_bytes, 0),
            source="gpu: utilization x device memory - weights - estimated activations and overhead",
        )
        if kv_bytes <= 0:
            return None
    capacity = kv_capacity(
        caches,
        available_bytes=memory.kv_cache_bytes_per_rank,
        block_size=block_size,
        max_model_len=max_model_len,
        max_num_batched_tokens=batched_tokens,
        # Async scheduling keeps two batches in flight on GPU; the CPU build turns it off.
        max_concurrent_batches=(2 if pp == 1 else pp) if request.device == "gpu" else 1,
        pipeline_parallel_size=pp,
    )
    if capacity.kv_cache_tokens < max_model_len:
        return None
    return _Candidate(tp=tp, pp=pp, capacity=capacity, memory=memory, caches_bytes_per_token=kv_bytes_per_token(caches))


def _tp_options(arch: ModelArchitecture, gpus: int) -> list[int]:
    options = []
    tp = 1
    while tp <= gpus:
        if gpus % tp == 0 and arch.num_attention_heads % tp == 0:
            options.append(tp)
        tp *= 2
    return options


def check_options(
    *, goal: str = "balanced", device: str = "gpu", gpus: int = 1, nodes: int = 1, gpu_memory_gib: float | None = None,
    kv_cache_memory_gib: float | None = None, max_model_len: int | None = None, prompt_tokens: int = 512,
    output_tokens: int = 256, concurrency: int = 32, kv_cache_dtype: str = "auto", quantization: str | None = None,
    dtype: str | None = None, gpu_memory_utilization: float = 0.9, block_size: int | None = None,
    max_num_batched_tokens: int | None = None, max_num_seqs: int | None = None, images_per_prompt: int = 1,
    port: int = 8000, **_ignored: object,
) -> str | None:
    """Refuse option values that mean nothing (one ``InputError`` naming the option) before any file is
    read; returns ``dtype`` as vLLM spells it canonically (None for the config's own)."""
    from hf2vllm import checks
    from hf2vllm.deploy.vllm_names import kv_cache_dtypes, model_dtypes, quantization_methods

    checks.choice(goal, "--goal", GOALS)
    checks.choice(device, "--device", DEVICES)
    checks.number(gpus, "--gpus", minimum=1)
    if gpus > MAX_GPUS_PER_NODE:
        raise InputError(
            f"--gpus {gpus}: that is GPUs per node, and a node holds at most {MAX_GPUS_PER_NODE} in practice "
            f"(8 is typical); for {gpus} GPUs pass --nodes {-(-gpus // 8)} --gpus 8"
        )
    checks.number(nodes, "--nodes", minimum=1)
    checks.positive(gpu_memory_gib, "--gpu-memory-gib", "memory of one accelerator in GiB")
    checks.positive(kv_cache_memory_gib, "--kv-cache-memory-gib", "KV cache space in GiB")
    checks.number(max_model_len, "--max-model-len", minimum=1, meaning="tokens per request, prompt + output")
    checks.number(prompt_tokens, "--prompt-tokens", minimum=1)
    checks.number(output_tokens, "--output-tokens", minimum=1)
    checks.number(concurrency, "--concurrency", minimum=1)
    if not 0 < gpu_memory_utilization <= 1:  # False for NaN too
        raise InputError(f"--gpu-memory-utilization: got {gpu_memory_utilization:g}; give the fraction of each "
                         "GPU's memory vLLM may use, above 0 and at most 1 (e.g. 0.9)")
    checks.number(block_size, "--block-size", minimum=1, meaning="KV block size in tokens, e.g. 16")
    checks.number(max_num_batched_tokens, "--max-num-batched-tokens", minimum=1)
    checks.number(max_num_seqs, "--max-num-seqs", minimum=1)
    checks.number(images_per_prompt, "--images-per-prompt", minimum=0)
    checks.port(port)
    checks.choice(kv_cache_dtype, "--kv-cache-dtype", kv_cache_dtypes())
    checks.choice(quantization, "--quantization", quantization_methods())
    if dtype is None or dtype == "auto":
        return None
    checks.choice(dtype, "--dtype", model_dtypes())
    return {"half": "float16", "float": "float32"}.get(dtype, dtype)


def check_request(request: PlanRequest) -> None:
    """``check_options`` for a whole request (the Python API refuses what the CLI refuses)."""
    check_options(**request.model_dump())


def make_plan(request: PlanRequest) -> Plan:
    """Pick parallelism and limits for ``request`` and render the serve command."""
    check_request(request)
    if request.dtype == "auto" or request.dtype in ("half", "float"):
        request = request.model_copy(update={"dtype": check_options(dtype=request.dtype)})
    arch = load_architecture(request.model)
    model_path = Path(request.model)
    model_dir = model_path if model_path.is_dir() else None
    dtype = request.dtype or arch.torch_dtype
    weights = estimate_weights(arch, model_dir, dtype=request.dtype, quantization=request.quantization)
    accelerator = None if request.device == "cpu" else resolve_accelerator(request.gpu, request.gpu_memory_gib)
    max_pos = arch.max_position_embeddings or 4096
    max_model_len = request.max_model_len or min(max_pos, 32768)
    if max_model_len > max_pos:
        raise InputError(f"--max-model-len {max_model_len} exceeds the model's max_position_embeddings ({max_pos})")
    image_tokens = _image_tokens(arch)
    image_budget = (image_tokens or 0) * request.images_per_prompt
    batched_tokens = _batched_tokens(request, image_budget)
    block_size = _default_block_size(request, arch)
    reasons: list[str] = []
    warnings: list[str] = []

    if request.device == "cpu":
        tp_options, pp_options = [1], [1]
    else:
        tp_options = _tp_options(arch, request.gpus)
        pp_options = [p for p in range(1, request.nodes + 1) if request.nodes % p == 0]
    chosen: _Candidate | None = None
    for pp in pp_options:
        # PP only spans nodes, so it is tried only with a node's full TP width.
        for tp in tp_options if pp == 1 else [max(tp_options)]:
            chosen = _evaluate(request, arch, weights, accelerator, tp, pp, dtype, block_size, max_model_len, batched_tokens)
            if chosen:
                break
        if chosen:
            break
    if chosen is None:
        largest = max(tp_options) * max(pp_options)
        where = f"{request.nodes} node(s) x {request.gpus} {accelerator.name if accelerator else 'cpu'}"
        fix = ("lower --max-model-len or raise --kv-cache-memory-gib" if request.device == "cpu"
               else "lower --max-model-len, quantize, or add GPUs")
        raise InputError(
            f"{arch.name}: weights ({_gib(weights.weights_bytes)}) plus KV for one {max_model_len}-token "
            f"request do not fit {where} at any parallelism (tried up to {largest} ranks per replica); {fix}"
        )
    tp, pp = chosen.tp, chosen.pp
    total_devices = request.gpus * request.nodes if request.device == "gpu" else 1
    dp = max(total_devices // (tp * pp), 1)
    capacity = chosen.capacity

    weights_rank = chosen.memory.weights_per_rank_bytes
    if tp == 1 and pp == 1:
        parallelism_reason = (
            f"weights ({_gib(weights.weights_bytes)}) and KV for a full {max_model_len}-token request fit "
            "one device, so each device serves its own replica"
            + (f": data parallel {dp} gives {dp} independent engines with no inter-GPU traffic; tensor "
               "parallel would only add all-reduces for a model this size" if dp > 1 else "")
        )
    elif pp == 1:
        parallelism_reason = (
            f"one device cannot hold weights ({_gib(weights.weights_bytes)}) plus KV for a "
            f"{max_model_len}-token request; tensor parallel {tp} inside a node splits weights and KV "
            f"heads ({_gib(weights_rank)} weights per GPU)" + (f", data parallel {dp} over the rest" if dp > 1 else "")
        )
    else:
        parallelism_reason = (
            f"one node of {request.gpus} GPUs cannot hold the model with KV for a {max_model_len}-token "
            f"request; tensor parallel {tp} inside each node and pipeline parallel {pp} across nodes "
            "(only activations cross the slower inter-node link), multi-node through vLLM's Ray backend"
        )

    typical = request.prompt_tokens + request.output_tokens + image_budget
    fits_typical = capacity.kv_cache_tokens // max(typical, 1)
    per_replica_target = math.ceil(request.concurrency / dp)
    if request.max_num_seqs:
        max_num_seqs = request.max_num_seqs
    elif request.goal == "throughput":
        max_num_seqs = min(max(fits_typical, 1), 1024)
    elif request.goal == "latency":
        max_num_seqs = max(1, min(fits_typical, per_replica_target))
    else:
        max_num_seqs = max(1, min(fits_typical, max(per_replica_target, 64), 256))
    batched_tokens = max(batched_tokens, max_num_seqs)
    if request.device == "gpu":
        # Re-check with the final max_num_seqs: it sizes the sampler's share of the profile.
        final = _evaluate(
            request.model_copy(update={"max_num_seqs": max_num_seqs}),
            arch, weights, accelerator, tp, pp, dtype, block_size, max_model_len, batched_tokens,
        )
        if final is not None:
            chosen, capacity = final, final.capacity

    element = dtype_bytes(request.kv_cache_dtype, dtype)
    per_token_all = kv_bytes_per_token(layer_caches(arch, kv_cache_dtype=request.kv_cache_dtype, model_dtype=dtype))
    kinds = {kind.value: arch.layer_kinds.count(kind) for kind in LayerKind if kind in arch.layer_kinds}
    reasons.append(
        f"weights: {weights.parameters:,} parameters, {_gib(weights.weights_bytes)} ({weights.source}: {weights.note})"
    )
    if arch.is_mla:
        reasons.append(
            f"KV per token: MLA caches one latent of kv_lora_rank+qk_rope_head_dim = {arch.kv_head_size} "
            f"values x {element} B x {arch.num_hidden_layers} layers = {per_token_all:,} B (replicated on every TP rank)"
        )
    else:
        reasons.append(
            f"KV per token: 2 (K,V) x {arch.num_key_value_heads} KV heads x {arch.head_dim} head_dim x "
            f"{element} B x {sum(1 for k in arch.layer_kinds if k is not LayerKind.MAMBA)} attention layers = "
            f"{per_token_all:,} B; {chosen.caches_bytes_per_token:,} B per rank at TP {tp}"
        )
    if arch.sliding_window:
        n_sliding = arch.layer_kinds.count(LayerKind.SLIDING)
        reasons.append(
            f"{n_sliding} sliding-window layers keep only ~{arch.sliding_window} tokens (+ in-flight "
            "batch) each, so a long request costs less than bytes/token x length"
        )
    if arch.is_hybrid:
        reasons.append(
            f"{arch.layer_kinds.count(LayerKind.MAMBA)} Mamba layers keep a fixed state per sequence "
            f"(padded to one {capacity.groups[0].page_bytes:,}-byte page each); vLLM raises the attention "
            f"block size to {capacity.block_size} tokens to match it"
        )
    reasons.append(
        f"usable KV memory per rank: {_gib(chosen.memory.kv_cache_bytes_per_rank)} ({chosen.memory.source}) "
        f"-> {capacity.num_blocks:,} blocks of {capacity.block_size} tokens "
        f"({capacity.bytes_per_block:,} B per block across {len(capacity.groups)} cache group(s))"
    )
    reasons.append(
        f"KV cache size {capacity.kv_cache_tokens:,} tokens; maximum concurrency for "
        f"{max_model_len:,} tokens per request {capacity.max_concurrency:.2f}x (the two figures vLLM logs)"
    )
    reasons.append(
        f"max_num_seqs {max_num_seqs} ({request.goal}): KV holds ~{fits_typical} requests of "
        f"{typical} tokens (prompt {request.prompt_tokens} + output {request.output_tokens}"
        + (f" + {image_budget} image tokens" if image_budget else "")
        + f"); target concurrency {request.concurrency} -> {per_replica_target} per replica"
    )
    reasons.append(
        f"max_num_batched_tokens {batched_tokens}: chunked prefill splits long prompts into chunks of "
        "this size so decodes keep flowing" + ("; smaller chunks favour inter-token latency" if request.goal == "latency" else "")
    )
    prefix_caching = not arch.is_hybrid
    reasons.append(
        "prefix caching on: shared system prompts and few-shot examples are computed once (hit rates "
        "near 98% on few-shot workloads)" if prefix_caching else
        "prefix caching off: Mamba state cannot be reused from a prefix in this configuration"
    )
    reasoning_parser = _reasoning_parser(arch, request.model)
    if reasoning_parser:
        reasons.append(
            f"--reasoning-parser {reasoning_parser}: the server splits thinking from the answer; do not "
            "also strip think tags in the client"
        )
    limit_mm = None
    if arch.is_vision_language:
        limit_mm = {"image": request.images_per_prompt}
        reasons.append(
            f"vision-language: {image_tokens} tokens per image, at most {request.images_per_prompt} image(s) per "
            f"prompt; image tokens sit in the KV cache like text, so plan 3-4x the KV of a text-only "
            f"prompt; max_num_batched_tokens {batched_tokens} >= one prompt's image tokens (encoder budget)"
        )
    if max_model_len >= max_pos and max_pos > 32768:
        warnings.append(
            f"max_model_len {max_model_len} is the model's theoretical limit; most workloads need far less "
            "and every token of it is reserved per long request"
        )
    if capacity.max_concurrency < 2:
        warnings.append(
            f"only {capacity.max_concurrency:.2f} requests of {max_model_len} tokens fit in KV: requests will queue"
        )
    if request.device == "gpu" and not weights.exact:
        warnings.append("weights counted from config.json (no safetensors here): a few % from the real files")

    args = _serve_args(request, arch, dtype, max_model_len, tp, pp, dp, max_num_seqs, batched_tokens,
                       block_size, prefix_caching, reasoning_parser, limit_mm, chosen.memory)
    model_arg = request.serve_model or (request.model if model_dir else str(model_path.parent))
    command = shlex.join(["vllm", "serve", model_arg, *args])
    ray = _ray_commands(request, pp) if request.nodes > 1 else []
    if ray:
        reasons.append("nodes > 1: start Ray on every node first (commands below), then run vllm serve on the head")
    hf_reference = hf_reference_placement(
        weights_bytes=weights.weights_bytes, device=request.device, gpus=request.gpus, nodes=request.nodes,
        device_memory_bytes=int(accelerator.memory_gib * GIB) if accelerator else None,
    )
    if hf_reference.warning:
        warnings.append(hf_reference.warning)

    return Plan(
        model=request.model,
        model_type=arch.model_type,
        architectures=arch.architectures,
        device=request.device,
        accelerator=accelerator.name if accelerator else "cpu",
        gpus_per_node=request.gpus,
        nodes=request.nodes,
        dtype=dtype,
        goal=request.goal,
        weights_bytes=weights.weights_bytes,
        weights_parameters=weights.parameters,
        weights_source=weights.source,
        weights_per_rank_bytes=chosen.memory.weights_per_rank_bytes,
        kv_cache_dtype=request.kv_cache_dtype,
        kv_cache_bytes_per_token=per_token_all,
        kv_cache_bytes_per_token_per_rank=chosen.caches_bytes_per_token,
        layer_kinds=kinds,
        block_size=capacity.block_size,
        memory=chosen.memory,
        kv_cache_tokens=capacity.kv_cache_tokens,
        max_concurrency=capacity.max_concurrency,
        capacity=capacity,
        max_model_len=max_model_len,
        tensor_parallel_size=tp,
        pipeline_parallel_size=pp,
        data_parallel_size=dp,
        parallelism_reason=parallelism_reason,
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=batched_tokens,
        enable_chunked_prefill=True,
        enable_prefix_caching=prefix_caching,
        reasoning_parser=reasoning_parser,
        limit_mm_per_prompt=limit_mm,
        mm_tokens_per_image=image_tokens,
        requests_in_kv_at_typical_length=fits_typical,
        reasons=reasons,
        warnings=warnings,
        vllm_serve_args=args,
        vllm_serve_command=command,
        yaml_config=_yaml(model_arg, args),
        ray_commands=ray,
        hf_reference=hf_reference,
    )


def _serve_args(
    request: PlanRequest,
    arch: ModelArchitecture,
    dtype: str,
    max_model_len: int,
    tp: int,
    pp: int,
    dp: int,
    max_num_seqs: int,
    batched_tokens: int,
    block_size: int,
    prefix_caching: bool,
    reasoning_parser: str | None,
    limit_mm: dict[str, int] | None,
    memory: MemoryBudget,
) -> list[str]:
    args = ["--host", request.host, "--port", str(request.port), "--dtype", dtype,
            "--max-model-len", str(max_model_len)]
    if request.served_model_name:
        args += ["--served-model-name", request.served_model_name]
    if request.device == "gpu":
        args += ["--tensor-parallel-size", str(tp), "--pipeline-parallel-size", str(pp),
                 "--data-parallel-size", str(dp),
                 "--gpu-memory-utilization", f"{request.gpu_memory_utilization:g}"]
    else:
        args += ["--kv-cache-memory-bytes", str(memory.kv_cache_bytes_per_rank)]
    args += ["--max-num-seqs", str(max_num_seqs), "--max-num-batched-tokens", str(batched_tokens),
             "--block-size", str(block_size), "--kv-cache-dtype", request.kv_cache_dtype,
             "--enable-chunked-prefill",
             "--enable-prefix-caching" if prefix_caching else "--no-enable-prefix-caching"]
    if request.quantization:
        args += ["--quantization", request.quantization]
    if request.enforce_eager:
        args.append("--enforce-eager")
    if reasoning_parser:
        args += ["--reasoning-parser", reasoning_parser]
    if limit_mm:
        args += ["--limit-mm-per-prompt", json.dumps(limit_mm, separators=(",", ":"))]
    if request.nodes > 1:
        if pp > 1:
            args += ["--distributed-executor-backend", "ray"]
        else:
            args += ["--data-parallel-backend", "ray"]
    return args


def _yaml(model: str, args: list[str]) -> str:
    """The same settings as a ``vllm serve --config`` file (flag names without the dashes)."""
    config: dict[str, object] = {"model": model}
    index = 0
    while index < len(args):
        key = args[index].removeprefix("--")
        value: object = True
        if index + 1 < len(args) and not args[index + 1].startswith("--"):
            raw = args[index + 1]
            index += 1
            if key == "limit-mm-per-prompt":
                value = json.loads(raw)
            else:
                try:
                    value = int(raw)
                except ValueError:
                    try:
                        value = float(raw)
                    except ValueError:
                        value = raw
        if key.startswith("no-"):
            key, value = key.removeprefix("no-"), False
        config[key] = value
        index += 1
    return yaml.safe_dump(config, sort_keys=False)


def _ray_commands(request: PlanRequest, pp: int) -> list[str]:
    gpus = request.gpus
    return [
        f"# on the head node (note its IP as HEAD_IP):\nray start --head --port=6379 --num-gpus={gpus}",
        f"# on each of the other {request.nodes - 1} node(s):\nray start --address=HEAD_IP:6379 --num-gpus={gpus}",
        "# check all nodes joined, then run the vllm serve command on the head node:\nray status",
    ]
