"""Named presets, each derived from the plan for the user's own model and hardware.

A preset is not a table of flags: it adjusts the *request* (goal, lengths, dtype, limits) and the
planner then computes capacity, parallelism and ``max_num_seqs`` for that model. The same preset
gives a 0.5B model and a 70B model different numbers.

Usage (what ``hf2vllm serve --preset NAME`` calls)::

    preset = build_preset("low-latency", PlanRequest(model=path, gpu="L4"))
    subprocess.run(["vllm", "serve", path, *preset.plan.vllm_serve_args])
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel

from hf2vllm.deploy.architecture import load_architecture
from hf2vllm.deploy.plan import Plan, PlanRequest, make_plan
from hf2vllm.errors import InputError


class Preset(BaseModel):
    """A named deployment recipe and the plan it produced for one model."""

    name: str
    description: str
    request: PlanRequest
    plan: Plan


def _high_throughput(r: PlanRequest) -> PlanRequest:
    return r.model_copy(update={"goal": "throughput", "concurrency": max(r.concurrency, 256)})


def _balanced(r: PlanRequest) -> PlanRequest:
    return r.model_copy(update={"goal": "balanced"})


def _low_latency(r: PlanRequest) -> PlanRequest:
    return r.model_copy(update={"goal": "latency", "concurrency": min(r.concurrency, 8)})


def _debug(r: PlanRequest) -> PlanRequest:
    return r.model_copy(
        update={
            "goal": "latency",
            "concurrency": 1,
            "max_num_seqs": 4,
            "max_model_len": min(r.max_model_len or 2048, 2048),
            "enforce_eager": True,
            "gpus": 1,
            "nodes": 1,
        }
    )


def _long_context(r: PlanRequest) -> PlanRequest:
    arch = load_architecture(r.model)
    length = arch.max_position_embeddings or r.max_model_len or 32768
    return r.model_copy(
        update={
            "goal": "latency",
            "max_model_len": length,
            "prompt_tokens": length // 2,
            "output_tokens": min(4096, length // 4),
            "concurrency": min(r.concurrency, 4),
            "max_num_batched_tokens": r.max_num_batched_tokens or 8192,
        }
    )


def _memory_constrained(r: PlanRequest) -> PlanRequest:
    update: dict[str, object] = {
        "goal": "balanced",
        "max_model_len": min(r.max_model_len or 4096, 4096),
        "max_num_batched_tokens": r.max_num_batched_tokens or 1024,
    }
    if r.device == "gpu":
        update["gpu_memory_utilization"] = min(r.gpu_memory_utilization, 0.8)
        update["kv_cache_dtype"] = "fp8"
    return r.model_copy(update=update)


def _vision_language(r: PlanRequest) -> PlanRequest:
    if not load_architecture(r.model).is_vision_language:
        raise InputError(f"--preset vision-language: {r.model} has no vision_config (not a vision-language model)")
    return r.model_copy(update={"goal": "balanced", "images_per_prompt": max(r.images_per_prompt, 4)})


def _reasoning(r: PlanRequest) -> PlanRequest:
    arch = load_architecture(r.model)
    longest = arch.max_position_embeddings or 32768
    return r.model_copy(
        update={
            "goal": "throughput",
            "output_tokens": max(r.output_tokens, 8192),
            "max_model_len": min(max(r.max_model_len or 0, 32768), longest),
        }
    )


PRESETS: dict[str, tuple[str, Callable[[PlanRequest], PlanRequest]]] = {
    "high-throughput": ("batch as many sequences as KV holds; big prefill chunks", _high_throughput),
    "balanced": ("throughput with bounded queueing (the default)", _balanced),
    "low-latency": ("few concurrent sequences, small prefill chunks for steady inter-token latency", _low_latency),
    "debug": ("eager mode, one GPU, 2k context, 4 sequences: fast start, readable errors", _debug),
    "long-context": ("the model's full context window, few sequences, chunked prefill", _long_context),
    "memory-constrained": ("80% of the GPU, fp8 KV cache, 4k context", _memory_constrained),
    "vision-language": ("up to 4 images per prompt; encoder budget and KV sized for image tokens", _vision_language),
    "reasoning": ("long outputs (8k+ thinking tokens) and the family's reasoning parser", _reasoning),
}


def check_preset_name(name: str) -> str:
    """``name`` if it is a preset; otherwise one ``InputError`` listing them (and the closest one)."""
    if name not in PRESETS:
        import difflib

        close = difflib.get_close_matches(name, PRESETS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InputError(f"--preset {name!r}: unknown preset{hint} (known: {', '.join(PRESETS)})")
    return name


def preset_request(name: str, base: PlanRequest) -> PlanRequest:
    """The plan request a preset makes from the user's request."""
    return PRESETS[check_preset_name(name)][1](base)


def build_preset(name: str, base: PlanRequest) -> Preset:
    """Derive preset ``name`` for the model and hardware in ``base``."""
    request = preset_request(name, base)
    plan = make_plan(request)
    if name == "reasoning" and plan.reasoning_parser is None:
        plan.warnings.append(
            "no reasoning parser is known for this model family: thinking text stays in the answer"
        )
    return Preset(name=name, description=PRESETS[name][0], request=request, plan=plan)
