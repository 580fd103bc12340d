"""LoRA on generation: the adapter must change greedy outputs on each side, and HF+adapter must match
vLLM+adapter token for token.

HF: PEFT on a *copy* of the backend's model (the shared model is never mutated). vLLM: an engine
started with ``enable_lora=True`` and ``max_lora_rank`` >= the adapter's rank, ``LoRARequest`` per call.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hf2vllm.backends.base import GenerationResult
from hf2vllm.backends.vllm_offline import to_generation_result
from hf2vllm.parity.compare import exact_match_rate
from hf2vllm.pooling.lora import AdapterInspection
from hf2vllm.pooling.report import LoraCheck, LoraSideCheck
from hf2vllm.requests import PreparedRequest
from hf2vllm.spec import GenerationSpec


def vllm_generate(backend: Any, requests: Sequence[PreparedRequest], spec: GenerationSpec, lora_request: Any = None) -> list[GenerationResult]:
    """``VLLMBackend.generate`` with an optional ``lora_request`` (the shared backend has no LoRA hook)."""
    params = backend.sampling_params(spec)
    outputs = backend.llm.generate(
        [{"prompt_token_ids": list(r.prompt_token_ids)} for r in requests], params, use_tqdm=False, lora_request=lora_request
    )
    return [to_generation_result(r.id, o.outputs[0], spec.logprobs or 0) for r, o in zip(requests, outputs, strict=True)]


def hf_generate_with_adapter(hf_backend: Any, adapter: Path, requests: Sequence[PreparedRequest], spec: GenerationSpec) -> list[GenerationResult]:
    """Generate on HF with the adapter on a copy of the model; the backend's own model is restored."""
    from peft import PeftModel

    original = hf_backend.model
    wrapped = PeftModel.from_pretrained(copy.deepcopy(original), str(adapter))
    wrapped.eval()
    hf_backend.model = wrapped
    try:
        return hf_backend.generate(requests, spec)
    finally:
        hf_backend.model = original
        del wrapped


def changed(base: Sequence[GenerationResult], adapted: Sequence[GenerationResult]) -> int:
    return sum(a.output_token_ids != b.output_token_ids for a, b in zip(base, adapted, strict=True))


def lora_generation_check(
    inspection: AdapterInspection,
    hf_base: Sequence[GenerationResult],
    hf_adapter: Sequence[GenerationResult],
    vllm_base: Sequence[GenerationResult],
    vllm_adapter: Sequence[GenerationResult],
    *,
    min_changed_fraction: float = 0.5,
    min_exact_match: float = 1.0,
) -> LoraCheck:
    """Applied on a side when at least ``min_changed_fraction`` of greedy outputs changed; the
    adapter outputs of both sides must then match at ``min_exact_match`` or better."""
    sides = []
    for name, base, adapted in (("hf", hf_base, hf_adapter), ("vllm", vllm_base, vllm_adapter)):
        n = changed(base, adapted)
        sides.append(LoraSideCheck(backend=name, changed_generations=n, applied=n >= min_changed_fraction * len(base)))
    rate = exact_match_rate([a.output_token_ids == b.output_token_ids for a, b in zip(hf_adapter, vllm_adapter, strict=True)])
    passed = all(s.applied for s in sides) and rate >= min_exact_match
    return LoraCheck(
        inspection=inspection, min_effect=min_changed_fraction, sides=sides,
        adapter_generation_exact_match_rate=round(rate, 4), passed=passed,
    )


def run_lora_generation_compare(
    adapter: Path,
    *,
    model: str | None = None,
    prompts: Path | None = None,
    limit: int | None = None,
    max_new_tokens: int = 32,
    dtype: str = "float32",
    kv_cache_gib: float | None = None,
    hf_backend: Any = None,
    vllm_backend: Any = None,
) -> Any:
    """``hf2vllm compare --lora DIR`` (generation): inspect, then base vs adapter on both sides.

    ``vllm_backend`` must have been started with ``enable_lora=True``; backends not passed are
    created (vLLM with LoRA enabled at the adapter's rank) and closed.
    """
    from hf2vllm.backends.hf import HFBackend
    from hf2vllm.backends.vllm_offline import VLLMBackend
    from hf2vllm.environment import collect_environment
    from hf2vllm.models import resolve_model
    from hf2vllm.parity.run import CompareOptions, load_tokenizer, prepare_prompt_set, resolve_spec
    from hf2vllm.pooling.report import PoolingReport
    from hf2vllm.pooling.run import inspect_or_refuse, lora_request_for

    model_path = resolve_model(model)
    inspection = inspect_or_refuse(adapter, model_path, "generate")
    tokenizer = load_tokenizer(model_path)
    options = CompareOptions(model=model, prompts=prompts, limit=limit, max_new_tokens=max_new_tokens, dtype=dtype)
    requests = prepare_prompt_set(options, model_path, tokenizer)
    spec = resolve_spec(options, model_path, tokenizer)

    owned_hf = hf_backend is None
    hf = hf_backend or HFBackend(model_path, dtype=dtype)
    try:
        hf_base = hf.generate(requests, spec)
        hf_adapter = hf_generate_with_adapter(hf, adapter, requests, spec)
    finally:
        if owned_hf:
            hf.close()
    owned_vllm = vllm_backend is None
    extra = {"kv_cache_gib": kv_cache_gib} if kv_cache_gib else {}
    engine = vllm_backend or VLLMBackend(
        model_path, dtype=dtype, enable_lora=True, max_lora_rank=inspection.required_max_lora_rank, max_loras=1, **extra
    )
    try:
        vllm_base = vllm_generate(engine, requests, spec)
        vllm_adapter = vllm_generate(engine, requests, spec, lora_request_for(adapter))
    finally:
        if owned_vllm:
            engine.close()
    check = lora_generation_check(inspection, hf_base, hf_adapter, vllm_base, vllm_adapter)
    failures = []
    if not check.passed:
        silent = [s.backend for s in check.sides if not s.applied]
        failures.append(
            f"LoRA adapter NOT applied on {', '.join(silent)} (greedy outputs unchanged)" if silent
            else f"HF+adapter vs vLLM+adapter exact-match rate {check.adapter_generation_exact_match_rate}"
        )
    return PoolingReport(
        task="generate", model=str(model_path), dtype=dtype, min_cosine=1.0, lora=check,
        passed=not failures, failures=failures, environment=collect_environment(model_path, "cpu"),
    )
