"""Rules over ``vllm serve`` launches (HVD1xx), wherever written: shell, YAML, Python argument lists."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path

from hf2vllm.doctor.context import FileContext
from hf2vllm.doctor.knowledge import MODEL_SIZE_IN_NAME, VL_MODEL_PATTERN
from hf2vllm.doctor.model import Example, Hit, Rule, Severity
from hf2vllm.doctor.serve import FlagValue, ServeInvocation

SERVE = ("shell", "yaml", "python")
GIB = 1024**3


def _at_flag(flag: FlagValue, message: str) -> Hit:
    return Hit(line=flag.line, column=flag.column, message=message)


# -- HVD101 -------------------------------------------------------------------------------------------
def _has_debug_marker(ctx: FileContext, inv: ServeInvocation) -> bool:
    if "debug" in ctx.path.name.lower():
        return True
    if any("debug" in key.lower() and value not in ("", "0", "false") for key, value in inv.env.items()):
        return True
    return any("debug" in comment.lower() for comment in inv.comments)


def check_enforce_eager(ctx: FileContext) -> Iterator[Hit]:
    for inv in ctx.invocations:
        if inv.bool_flag("enforce-eager") and not _has_debug_marker(ctx, inv):
            yield _at_flag(inv.flags["enforce-eager"],
                           "`--enforce-eager` in a launch without a debug marker: it disables CUDA graphs and "
                           "torch.compile, costing decode throughput in production")


HVD101 = Rule(
    id="HVD101", name="enforce-eager-in-production", severity=Severity.WARNING, applies_to=SERVE,
    summary="`--enforce-eager` left in a launch that is not marked as a debug launch.",
    why="Eager mode skips CUDA-graph capture and compilation: start-up is faster, but small-batch "
        "decoding on GPU is markedly slower. It is a debugging switch that tends to survive into "
        "production scripts.",
    fix="Remove it, or mark the launch as a debug one: a comment containing `debug` on or directly above "
        "the command, a `DEBUG=1` prefix, or `debug` in the file name.",
    bad=Example.of("serve.sh", """\
#!/usr/bin/env bash
vllm serve meta-llama/Llama-3.1-8B-Instruct --port 8000 --enforce-eager
"""),
    good=Example.of("serve.sh", """\
#!/usr/bin/env bash
# debug: eager mode gives readable stack traces while we bisect the crash
vllm serve meta-llama/Llama-3.1-8B-Instruct --port 8000 --enforce-eager
"""),
    check=check_enforce_eager,
)


# -- HVD102 -------------------------------------------------------------------------------------------
def estimate_parameters(config: dict) -> float:
    """Parameter count of a decoder-only transformer from its config.json (gated MLP, GQA, MoE)."""
    cfg = config.get("text_config") or config
    h = cfg["hidden_size"]
    layers = cfg["num_hidden_layers"]
    inter = cfg.get("intermediate_size", 4 * h)
    vocab = cfg.get("vocab_size", 32000)
    heads = cfg.get("num_attention_heads", max(1, h // 64))
    kv_heads = cfg.get("num_key_value_heads") or heads
    head_dim = cfg.get("head_dim") or h // heads
    attention = 2 * h * heads * head_dim + 2 * h * kv_heads * head_dim
    experts = cfg.get("num_local_experts") or cfg.get("num_experts") or 1
    mlp = 3 * h * (cfg.get("moe_intermediate_size") or inter) * experts
    embeddings = vocab * h * (1 if config.get("tie_word_embeddings", cfg.get("tie_word_embeddings", False)) else 2)
    return float(embeddings + layers * (attention + mlp))


_DTYPE_BYTES = {"float32": 4, "float": 4, "bfloat16": 2, "float16": 2, "half": 2, "fp8": 1, "int8": 1}


def _model_size(ctx: FileContext, inv: ServeInvocation) -> tuple[float, str] | None:
    """(parameters, where the figure came from) for the served model."""
    candidates: list[Path] = []
    if ctx.settings.model_config_path:
        candidates.append(Path(ctx.settings.model_config_path))
    if inv.model:
        local = ctx.path.parent / inv.model / "config.json"
        candidates.append(local)
    for path in candidates:
        if path.is_file():
            try:
                return estimate_parameters(json.loads(path.read_text(encoding="utf-8"))), str(path.name)
            except (KeyError, ValueError, TypeError):
                continue
    if inv.model:
        sizes = [
            float(m.group(1)) * (1e9 if m.group(2).lower() == "b" else 1e6)
            for m in MODEL_SIZE_IN_NAME.finditer(inv.model.rsplit("/", 1)[-1])
        ]
        if sizes:
            return max(sizes), "model name"
    return None


def check_tensor_parallel_small_model(ctx: FileContext) -> Iterator[Hit]:
    for inv in ctx.invocations:
        tp = inv.number("tensor-parallel-size")
        if tp is None or tp <= 1:
            continue
        size = _model_size(ctx, inv)
        if size is None:
            continue
        params, source = size
        dtype = (inv.flag("dtype").value if inv.flag("dtype") else "bfloat16").lower()  # type: ignore[union-attr]
        weight_bytes = params * _DTYPE_BYTES.get(dtype, 2)
        budget = ctx.settings.device_memory_gib * GIB
        if weight_bytes <= 0.5 * budget:
            yield _at_flag(inv.flags["tensor-parallel-size"],
                           f"tensor parallel {int(tp)} for a ~{params / 1e9:.2g}B-parameter model "
                           f"({weight_bytes / GIB:.1f} GiB of weights, from {source}) that fits one "
                           f"{ctx.settings.device_memory_gib:g} GiB device: use `--data-parallel-size {int(tp)}` "
                           "or separate replicas")


HVD102 = Rule(
    id="HVD102", name="tensor-parallel-small-model", severity=Severity.WARNING, applies_to=SERVE,
    summary="`--tensor-parallel-size` > 1 for a model whose weights fit one device.",
    why="Tensor parallelism splits every layer and adds all-reduces per layer; for a model that fits "
        "one device it lowers throughput per GPU. Small models scale with data parallelism (independent "
        "replicas), which also keeps each replica's KV cache whole.",
    fix="Use `--data-parallel-size N` (or N separate servers behind a load balancer) and keep "
        "`--tensor-parallel-size 1`. The size comes from `--model-config config.json`, a local model "
        "directory, or the parameter count in the model name; the device size from `--device-memory-gib`.",
    bad=Example.of("serve.sh", """\
#!/usr/bin/env bash
vllm serve meta-llama/Llama-3.2-1B-Instruct --tensor-parallel-size 4
"""),
    good=Example.of("serve.sh", """\
#!/usr/bin/env bash
vllm serve meta-llama/Llama-3.2-1B-Instruct --data-parallel-size 4
"""),
    check=check_tensor_parallel_small_model,
)


# -- HVD103 -------------------------------------------------------------------------------------------
def _workload_need(ctx: FileContext, inv: ServeInvocation) -> tuple[int, str] | None:
    """Longest request this server must take: the setting, else the benchmarks aimed at it."""
    if ctx.settings.workload_max_tokens is not None:
        return ctx.settings.workload_max_tokens, "workload-max-tokens setting"
    names = {inv.model}
    if (served := inv.flag("served-model-name")) is not None:
        names.update(served.value.split())
    aimed = [w for w in ctx.project.workloads if w.model is None or w.model in names]
    if not aimed:
        return None
    longest = max(aimed, key=lambda w: w.max_tokens)
    return longest.max_tokens, f"benchmark at {longest.place.path}:{longest.place.line}"


def check_max_model_len_oversized(ctx: FileContext) -> Iterator[Hit]:
    for inv in ctx.invocations:
        mml = inv.number("max-model-len")
        if mml is None or (need := _workload_need(ctx, inv)) is None:
            continue
        tokens, source = need
        if mml >= ctx.settings.max_model_len_factor * tokens:
            yield _at_flag(inv.flags["max-model-len"],
                           f"`--max-model-len {int(mml)}` is {mml / tokens:.0f}x the longest request of the "
                           f"workload ({tokens} tokens, {source}): the memory reserved for one long sequence "
                           "is taken from concurrency")


HVD103 = Rule(
    id="HVD103", name="max-model-len-oversized", severity=Severity.WARNING, applies_to=SERVE,
    summary="`--max-model-len` far above what the workload's requests need.",
    why="vLLM must fit at least one sequence of max-model-len in the KV cache and schedules with it in "
        "mind; a 32k limit for 2k-token requests wastes start-up profiling and memory headroom, and on "
        "small devices refuses to start. The need comes from `--workload-max-tokens` (or pyproject) or "
        "from a `vllm bench` command in the scanned scripts (input + output length).",
    fix="Set `--max-model-len` to the longest request plus a margin (e.g. 1.25x).",
    bad=Example.of("serve.sh", """\
#!/usr/bin/env bash
vllm serve Qwen/Qwen2.5-7B-Instruct --max-model-len 32768 &
vllm bench serve --model Qwen/Qwen2.5-7B-Instruct --random-input-len 1024 --random-output-len 256
"""),
    good=Example.of("serve.sh", """\
#!/usr/bin/env bash
vllm serve Qwen/Qwen2.5-7B-Instruct --max-model-len 2048 &
vllm bench serve --model Qwen/Qwen2.5-7B-Instruct --random-input-len 1024 --random-output-len 256
"""),
    check=check_max_model_len_oversized,
)


# -- HVD104 -------------------------------------------------------------------------------------------
def check_vl_memory_utilization(ctx: FileContext) -> Iterator[Hit]:
    for inv in ctx.invocations:
        gmu = inv.number("gpu-memory-utilization")
        if gmu is None or gmu < 0.95:
            continue
        vl = bool(inv.model and VL_MODEL_PATTERN.search(inv.model)) or "limit-mm-per-prompt" in inv.flags
        if vl:
            yield _at_flag(inv.flags["gpu-memory-utilization"],
                           f"`--gpu-memory-utilization {gmu:g}` with a vision-language model: the vision "
                           "encoder's activations and image preprocessing need headroom outside the KV cache")


HVD104 = Rule(
    id="HVD104", name="vl-memory-utilization-high", severity=Severity.WARNING, applies_to=SERVE,
    summary="`--gpu-memory-utilization` >= 0.95 for a vision-language model.",
    why="vLLM hands that fraction of the device to weights + KV cache; the vision encoder's peak "
        "activations (large images, many per prompt) come on top and end in out-of-memory errors under "
        "load. VL requests also need 3-4x the KV of text requests, so the cache is not where headroom "
        "comes from.",
    fix="Use 0.85-0.9, and bound images with `--limit-mm-per-prompt` and `--mm-processor-kwargs` "
        "(max pixels).",
    bad=Example.of("serve_vl.sh", """\
#!/usr/bin/env bash
vllm serve Qwen/Qwen2.5-VL-7B-Instruct --gpu-memory-utilization 0.98
"""),
    good=Example.of("serve_vl.sh", """\
#!/usr/bin/env bash
vllm serve Qwen/Qwen2.5-VL-7B-Instruct --gpu-memory-utilization 0.88 --limit-mm-per-prompt '{"image": 2}'
"""),
    check=check_vl_memory_utilization,
)


# -- HVD105 -------------------------------------------------------------------------------------------
def check_prefix_caching_off_few_shot(ctx: FileContext) -> Iterator[Hit]:
    if not ctx.project.few_shot:
        return
    place = ctx.project.few_shot[0]
    for inv in ctx.invocations:
        if inv.bool_flag("enable-prefix-caching") is False:
            flag = inv.flags.get("no-enable-prefix-caching") or inv.flags["enable-prefix-caching"]
            yield _at_flag(flag, f"prefix caching is off for a few-shot workload ({place.detail} at "
                                 f"{place.path}:{place.line}): every request re-computes the shared examples")


HVD105 = Rule(
    id="HVD105", name="prefix-caching-off-few-shot", severity=Severity.WARNING, applies_to=SERVE,
    summary="Prefix caching disabled while the project runs a few-shot workload.",
    why="Few-shot prompts share a long identical prefix (the examples). With prefix caching vLLM computes "
        "it once and reuses its KV blocks (hit rates of 98% have been seen); without it every request "
        "pays the full prefill.",
    fix="Drop `--no-enable-prefix-caching` (it is on by default) and put the shared examples first in "
        "the prompt.",
    bad=Example.of("eval.sh", """\
#!/usr/bin/env bash
vllm serve HuggingFaceTB/SmolLM2-135M-Instruct --no-enable-prefix-caching &
lm_eval --model local-completions --tasks gsm8k --num_fewshot 5 \\
    --model_args base_url=http://127.0.0.1:8000/v1/completions
"""),
    good=Example.of("eval.sh", """\
#!/usr/bin/env bash
vllm serve HuggingFaceTB/SmolLM2-135M-Instruct &
lm_eval --model local-completions --tasks gsm8k --num_fewshot 5 \\
    --model_args base_url=http://127.0.0.1:8000/v1/completions
"""),
    check=check_prefix_caching_off_few_shot,
)


# -- HVD106 -------------------------------------------------------------------------------------------
_THREAD_VARS = ("OMP_NUM_THREADS", "VLLM_CPU_OMP_THREADS_BIND")


def check_omp_threads_multi_instance(ctx: FileContext) -> Iterator[Hit]:
    # Offline ``LLM(...)`` objects in one script usually run one after the other, not side by side.
    servers = [inv for inv in ctx.invocations if inv.origin != "python-llm"]
    instances = len(servers) + sum(1 for inv in servers if inv.in_loop)
    if instances < 2:
        return
    unexported = ctx.shell is not None and "OMP_NUM_THREADS" in ctx.shell.variables
    for inv in servers:
        if not any(var in inv.env for var in _THREAD_VARS):
            detail = "is set but not exported, so vLLM never sees it" if unexported else "is unset"
            yield Hit(line=inv.line, column=inv.column,
                      message=f"several vLLM instances start from this file and `OMP_NUM_THREADS` {detail}: each "
                              "sizes its thread pools to every core and they contend")


HVD106 = Rule(
    id="HVD106", name="omp-threads-unset-multi-instance", severity=Severity.WARNING, applies_to=SERVE,
    summary="Several vLLM instances on one host with `OMP_NUM_THREADS` unset.",
    why="Each process (and each of its workers) sizes OpenMP/torch thread pools to all cores. Two or "
        "more instances on one host oversubscribe the CPU: tokenisation, sampling and (on CPU backends) "
        "the whole forward pass slow down, erratically.",
    fix="Give every instance its share: `OMP_NUM_THREADS=<cores per instance> vllm serve ...` or "
        "`export OMP_NUM_THREADS=...` before the launches (on vLLM-CPU also `VLLM_CPU_OMP_THREADS_BIND`).",
    bad=Example.of("replicas.sh", """\
#!/usr/bin/env bash
CUDA_VISIBLE_DEVICES=0 vllm serve HuggingFaceTB/SmolLM2-135M-Instruct --port 8001 &
CUDA_VISIBLE_DEVICES=1 vllm serve HuggingFaceTB/SmolLM2-135M-Instruct --port 8002 &
wait
"""),
    good=Example.of("replicas.sh", """\
#!/usr/bin/env bash
export OMP_NUM_THREADS=8
CUDA_VISIBLE_DEVICES=0 vllm serve HuggingFaceTB/SmolLM2-135M-Instruct --port 8001 &
CUDA_VISIBLE_DEVICES=1 vllm serve HuggingFaceTB/SmolLM2-135M-Instruct --port 8002 &
wait
"""),
    check=check_omp_threads_multi_instance,
)


# -- HVD107 -------------------------------------------------------------------------------------------
def check_memory_utilization_full(ctx: FileContext) -> Iterator[Hit]:
    for inv in ctx.invocations:
        gmu = inv.number("gpu-memory-utilization")
        if gmu is not None and gmu >= 0.99:
            yield _at_flag(inv.flags["gpu-memory-utilization"],
                           f"gpu memory utilization {gmu:g} leaves nothing for CUDA graphs, the sampler, NCCL "
                           "buffers or any other process on the device: start-up fails or the server dies with "
                           "out-of-memory under load")


HVD107 = Rule(
    id="HVD107", name="gpu-memory-utilization-full", severity=Severity.WARNING, applies_to=SERVE,
    summary="`--gpu-memory-utilization` (or `gpu_memory_utilization=`) of 0.99 or 1.0.",
    why="vLLM pre-allocates that fraction of the device for weights and KV cache at start-up. Activation "
        "peaks, CUDA-graph pools, the sampler and NCCL buffers need memory outside it, and so does anything "
        "else on the GPU (a second process, the display). At 1.0 start-up profiling fails or the first large "
        "batch runs out of memory, whatever the model.",
    fix="Use 0.85-0.95 (the default is 0.9-0.92); grow the KV cache with a smaller `--max-model-len` or "
        "`--kv-cache-dtype fp8` instead.",
    bad=Example.of("docker-compose.yaml", """\
services:
  vllm:
    image: vllm/vllm-openai:latest
    command: --model Qwen/Qwen2.5-7B-Instruct --gpu-memory-utilization ${GPU_MEMORY_UTILIZATION:-1.0}
"""),
    good=Example.of("docker-compose.yaml", """\
services:
  vllm:
    image: vllm/vllm-openai:latest
    command: --model Qwen/Qwen2.5-7B-Instruct --gpu-memory-utilization ${GPU_MEMORY_UTILIZATION:-0.9}
"""),
    check=check_memory_utilization_full,
)


# -- HVD108 -------------------------------------------------------------------------------------------
def _counts_devices(node: ast.AST) -> bool:
    """``torch.cuda.device_count()``, ``len(os.environ["CUDA_VISIBLE_DEVICES"].split(","))`` and the like."""
    text = ast.unparse(node)
    return "device_count" in text or ("CUDA_VISIBLE_DEVICES" in text and "len(" in text)


def check_tensor_parallel_from_device_count(ctx: FileContext) -> Iterator[Hit]:
    py = ctx.python
    assert py is not None
    for call in py.vllm_llm_calls:
        for kw in call.keywords:
            if kw.arg != "tensor_parallel_size":
                continue
            value = kw.value
            if isinstance(value, ast.Name):  # tp = torch.cuda.device_count(); LLM(..., tensor_parallel_size=tp)
                resolver = ctx.resolver
                stores = [n for n in resolver.stores(value.id, resolver.scope_of(call)) if isinstance(n, ast.Assign)]
                value = stores[-1].value if len(stores) == 1 else value
            if _counts_devices(value):
                yield Hit(line=kw.lineno, column=kw.col_offset + 1, end_line=kw.end_lineno,
                          end_column=(kw.end_col_offset or 0) + 1,
                          message="tensor parallel size taken from the number of visible GPUs, not from the "
                                  "model: a small model is split across every GPU (slower than one replica per "
                                  "GPU), and 3, 5, 6 or 7 GPUs fail for models whose head count they do not "
                                  "divide")


HVD108 = Rule(
    id="HVD108", name="tensor-parallel-from-device-count", severity=Severity.WARNING, applies_to=("python",),
    summary="`tensor_parallel_size=torch.cuda.device_count()` regardless of the model's size.",
    why="Tensor parallelism is a property of the model (it must fit, and the GPU count must divide the "
        "attention heads), not of the machine. Taking every visible GPU splits a 1B model eight ways, adds "
        "an all-reduce per layer for nothing, and crashes on hosts with a GPU count the heads do not divide.",
    fix="Choose the size from the model (the smallest power of two whose devices hold the weights plus KV "
        "cache) and use the other GPUs for data parallelism (`data_parallel_size=` or separate replicas).",
    bad=Example.of("infer.py", """\
import torch
from vllm import LLM

llm = LLM(model="Qwen/Qwen2.5-1.5B-Instruct", tensor_parallel_size=torch.cuda.device_count())
"""),
    good=Example.of("infer.py", """\
from vllm import LLM

llm = LLM(model="Qwen/Qwen2.5-1.5B-Instruct", tensor_parallel_size=1)
"""),
    check=check_tensor_parallel_from_device_count,
)


# -- HVD109 -------------------------------------------------------------------------------------------
def check_removed_serve_flag(ctx: FileContext) -> Iterator[Hit]:
    from hf2vllm.doctor.knowledge import REMOVED_ENGINE_ARGS, installed_vllm_api, parse_version

    pin = ctx.project.vllm_pin
    for inv in ctx.invocations:
        if inv.origin == "python-llm":
            continue  # HVD019 reads LLM(...) keywords
        for name, flag in inv.flags.items():
            removal = REMOVED_ENGINE_ARGS.get(name.replace("-", "_"))
            if removal is None:
                continue
            if removal.removed_in is None:
                api = installed_vllm_api()
                if api is None or name.replace("-", "_") in api.engine_args:
                    continue
                yield _at_flag(flag, f"`--{name}`: absent from the installed vLLM {api.version}, which refuses it "
                                     f"({removal.source}): {removal.instead}")
                continue
            removed = parse_version(removal.removed_in)
            if inv.image_version is not None and inv.image_version < removed:
                when = f"works with the image `{inv.image}` but breaks on vLLM >= {removal.removed_in}"
            elif inv.image_version is not None:
                when = f"the image `{inv.image}` refuses it (removed in vLLM {removal.removed_in})"
            elif pin is not None and not pin.allows(removed):
                when = f"works with the pinned `{pin.spec}` but breaks on vLLM >= {removal.removed_in}"
            else:
                when = f"vLLM >= {removal.removed_in} refuses it and does not start"
            yield _at_flag(flag, f"`--{name}`: {when} ({removal.source}): {removal.instead}")


HVD109 = Rule(
    id="HVD109", name="removed-serve-flag", severity=Severity.ERROR, applies_to=SERVE,
    summary="A launch passes a server flag that current vLLM releases removed.",
    why="Launch scripts and compose files outlive the vLLM they were written for. `--swap-space`, "
        "`--device`, `--tokenizer-pool-size`, `--disable-log-requests` were removed (the release, where "
        "documented, and the source are in the message); a server started with them exits at argument parsing, "
        "which in a container restart loop looks like an outage, not a typo. Only flags in the doctor's "
        "table of documented removals are reported, each checked against the installed vLLM.",
    fix="Drop the flag (the message says what replaced it), or pin the image/package to a version that has it.",
    bad=Example.of("serve.sh", """\
#!/usr/bin/env bash
vllm serve Qwen/Qwen2.5-7B-Instruct --swap-space 8 --max-model-len 8192
"""),
    good=Example.of("serve.sh", """\
#!/usr/bin/env bash
vllm serve Qwen/Qwen2.5-7B-Instruct --max-model-len 8192
"""),
    check=check_removed_serve_flag,
)
