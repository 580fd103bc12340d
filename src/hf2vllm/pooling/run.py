"""A pooling parity run: hidden states or embeddings (plus probe and LoRA checks) on HF and vLLM.

Usage from Python::

    from hf2vllm.pooling.run import PoolingOptions, run_pooling_compare
    report = run_pooling_compare(PoolingOptions(task="hidden-states"))
    print(report.overall.cosine_min, report.normalisation)

Tests pass already-loaded sides (``hf_model``, ``vllm_pooler``) instead of starting new ones.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from hf2vllm.dtypes import normalise_dtype
from hf2vllm.errors import InputError
from hf2vllm.pooling.checks import (
    DEFAULT_LORA_MIN_EFFECT,
    DEFAULT_MIN_COSINE,
    lora_applied,
    normalisation_fix,
    parity_failures,
)
from hf2vllm.pooling.extract import (
    hf_hidden_states,
    l2_normalise,
    pool_sequence,
    sentence_transformers_pooling,
    vllm_sequence_embeddings,
    vllm_token_states,
)
from hf2vllm.pooling.lora import AdapterInspection, inspect_adapter
from hf2vllm.pooling.metrics import VectorAgreement, agreement_rate, compare_vectors, normalisation_state, row_norms
from hf2vllm.pooling.probe import (
    LabelledSpan,
    ProbeHead,
    is_labelled,
    labelled_spans,
    load_probe,
    probe_inputs,
    span_predictions,
)
from hf2vllm.pooling.quantisation_note import quantisation_note
from hf2vllm.pooling.report import (
    LoraCheck,
    LoraSideCheck,
    PoolingReport,
    ProbeComparison,
    ProbeDisagreement,
    RequestVectorParity,
)
from hf2vllm.pooling.vllm_compat import PoolingAPI, detect_pooling_api, pooling_engine_kwargs
from hf2vllm.pooling.vllm_side import check_engine_pooling, engine_facts, resolve_vllm_side
from hf2vllm.requests import PreparedRequest, bundled_prompts_path, load_requests, prepare_requests

Normalise = Literal["auto", "off", "on", "default"]
StatusCallback = Callable[[str], None]


class PoolingOptions(BaseModel):
    """Everything ``hf2vllm compare --task hidden-states|embed`` needs; the CLI is a thin layer over it."""

    task: Literal["hidden-states", "embed"] = "hidden-states"
    model: str | None = None
    prompts: Path | None = Field(None, description="JSONL prompts; lines with spans+label form a labelled set.")
    limit: int | None = None
    dtype: str = "float32"
    max_model_len: int | None = None
    kv_cache_gib: float | None = None
    vllm_normalise: Normalise = Field(
        "auto",
        description="auto: off for hidden states, as the sentence-transformers config says for embed "
        "(off without one); off/on: set explicitly; default: leave vLLM's default (normalises).",
    )
    probe: Path | None = None
    lora: Path | None = None
    min_cosine: float = DEFAULT_MIN_COSINE
    lora_min_effect: float = DEFAULT_LORA_MIN_EFFECT
    quantization: str | None = Field(
        None, description="vLLM-side quantisation method; default: the --vllm-model checkpoint's quant_method."
    )
    vllm_model: str | None = Field(
        None, description="Checkpoint for the vLLM side only (e.g. a quantised copy); HF runs `model`. Same tokenizer "
        "and architecture required."
    )
    hf_placement: dict[str, Any] = Field(
        default_factory=dict, description="HF side over several devices: device_map, max_memory, offload_folder "
        "(Accelerate; backends/placement.py)."
    )


class LoadedSides(BaseModel):
    """Already-loaded models to reuse (tests); anything missing is created and closed by the run."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    hf_model: Any = None
    tokenizer: Any = None
    vllm_pooler: Any = Field(None, description="A VLLMBackend started with pooling_engine_kwargs(...).")


def lora_request_for(adapter_dir: Path) -> Any:
    """A ``LoRARequest`` with a stable id per adapter path (vLLM caches adapters by id)."""
    from vllm.lora.request import LoRARequest

    path = str(Path(adapter_dir).resolve())
    return LoRARequest(Path(path).name, zlib.crc32(path.encode()) % 1_000_000 + 1, path)


def inspect_or_refuse(adapter: Path, model_path: Path, runner: Literal["generate", "pooling"]) -> AdapterInspection:
    """Inspect an adapter and refuse to run (before any model loads) when it cannot be applied."""
    inspection = inspect_adapter(adapter, model_path, runner=runner)
    if inspection.blocking:
        details = "; ".join(f.message for f in inspection.blocking)
        raise InputError(f"--lora {adapter}: {details}")
    return inspection


def hf_adapter_model(hf_model: Any, adapter: Path, inspection: AdapterInspection) -> Any:
    """A PEFT-wrapped *copy* of ``hf_model`` (the shared model is never mutated).

    An inner-model adapter is attached to the inner ``*Model`` it was trained on.
    """
    from peft import PeftModel

    base = copy.deepcopy(hf_model)
    target = base.model if inspection.layout == "inner-model" else base
    wrapped = PeftModel.from_pretrained(target, str(adapter))
    wrapped.eval()
    return wrapped


def vllm_engine_options(
    api: PoolingAPI, options: PoolingOptions, *, normalise: bool | None, pooling_type: str | None,
    inspection: AdapterInspection | None,
) -> dict[str, Any]:
    """``VLLMBackend`` kwargs for the pooling side: pooler config, LoRA limits, context and KV size."""
    kwargs = pooling_engine_kwargs(
        api, "token" if options.task == "hidden-states" else "sequence", normalise=bool(normalise), pooling_type=pooling_type
    )
    if normalise is None:
        # "default": leave the pooler's normalisation unset, as a user who never touched it would.
        from vllm.config import PoolerConfig

        pooler = {k: v for k, v in vars(kwargs["pooler_config"]).items() if k in ("task", "pooling_type") and v is not None}
        kwargs["pooler_config"] = PoolerConfig(**pooler)
    if inspection is not None:
        kwargs.update(enable_lora=True, max_lora_rank=inspection.required_max_lora_rank, max_loras=1)
    if options.max_model_len:
        kwargs["max_model_len"] = options.max_model_len
    if options.kv_cache_gib:
        kwargs["kv_cache_gib"] = options.kv_cache_gib
    if options.quantization:
        kwargs["quantization"] = options.quantization
    return kwargs


def resolve_normalisation(options: PoolingOptions, model_path: Path) -> tuple[bool, bool | None, str | None, str | None]:
    """(HF side normalises, vLLM normalise setting, sequence pooling type, where it came from)."""
    st = sentence_transformers_pooling(model_path) if options.task == "embed" else None
    reference_normalises = bool(st and st.normalise)
    if options.task == "embed":
        pooling, source = (st.pooling, f"sentence-transformers config {st.source}") if st else ("LAST", "no sentence-transformers config: LAST token, vLLM's default for decoder models")
    else:
        pooling, source = None, None
    choice: bool | None = {"off": False, "on": True, "default": None}.get(options.vllm_normalise, reference_normalises)
    return reference_normalises, choice, pooling, source


def prepare_set(options: PoolingOptions, tokenizer: Any, model_path: Path) -> list[PreparedRequest]:
    from hf2vllm.parity.run import model_context_length

    requests = load_requests(options.prompts or bundled_prompts_path())
    if options.limit:
        requests = requests[: options.limit]
    context = options.max_model_len or model_context_length(model_path)
    return prepare_requests(requests, tokenizer, max_model_len=context, max_new_tokens=0)


def vector_parity(
    requests: Sequence[PreparedRequest], reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]
) -> tuple[list[RequestVectorParity], VectorAgreement]:
    rows = [
        RequestVectorParity(id=r.id, tokens=int(np.atleast_2d(a).shape[0]), agreement=compare_vectors(a, b))
        for r, a, b in zip(requests, reference, candidate, strict=True)
    ]
    overall = compare_vectors(np.concatenate([np.atleast_2d(a) for a in reference]), np.concatenate([np.atleast_2d(b) for b in candidate]))
    return rows, overall


def compare_probe(
    probe: ProbeHead,
    requests: Sequence[PreparedRequest],
    reference: Sequence[np.ndarray],
    candidate: Sequence[np.ndarray],
    tokenizer: Any,
    *,
    token_level: bool = True,
    spans: Sequence[LabelledSpan] | None = None,
    max_listed: int = 10,
) -> ProbeComparison:
    """Agreement of the probe's predictions on both sides, and accuracy on a labelled set."""
    pooling = probe.pooling if token_level else "last"
    if token_level:
        ref_pred = probe.predict(probe_inputs(reference, pooling))
        cand_pred = probe.predict(probe_inputs(candidate, pooling))
    else:  # embeddings: one row per request already
        ref_pred = probe.predict(np.stack(reference))
        cand_pred = probe.predict(np.stack(candidate))
    where: list[tuple[str, int | None, int | None]] = []
    for req in requests:
        if pooling == "token" and token_level:
            where.extend((req.id, pos, tok) for pos, tok in enumerate(req.prompt_token_ids))
        else:
            where.append((req.id, None, None))
    listed = []
    for i in np.flatnonzero(ref_pred != cand_pred)[:max_listed]:
        rid, pos, tok = where[int(i)]
        listed.append(
            ProbeDisagreement(
                request_id=rid, position=pos, token=None if tok is None else tokenizer.decode([tok]),
                reference=probe.label_name(int(ref_pred[i])), candidate=probe.label_name(int(cand_pred[i])),
            )
        )
    comparison = ProbeComparison(
        source=probe.source, pooling=pooling, rows=int(len(ref_pred)),
        agreement_rate=round(agreement_rate(ref_pred.tolist(), cand_pred.tolist()), 6), disagreements=listed,
    )
    if token_level and spans:
        gold = [s.label for s in spans]
        ref_by_id = {r.id: s for r, s in zip(requests, reference, strict=True)}
        cand_by_id = {r.id: s for r, s in zip(requests, candidate, strict=True)}
        ref_span = span_predictions(probe, ref_by_id, spans)
        cand_span = span_predictions(probe, cand_by_id, spans)
        comparison.labelled_spans = len(spans)
        comparison.reference_accuracy = round(agreement_rate(gold, ref_span), 6)
        comparison.candidate_accuracy = round(agreement_rate(gold, cand_span), 6)
    return comparison


def run_pooling_compare(
    options: PoolingOptions,
    *,
    sides: LoadedSides | None = None,
    on_status: StatusCallback | None = None,
) -> PoolingReport:
    """Run HF and vLLM on the same token ids and build the pooling report (see module docstring)."""
    from hf2vllm.backends.vllm_offline import VLLMBackend
    from hf2vllm.environment import collect_environment
    from hf2vllm.models import resolve_model
    from hf2vllm.parity.run import load_tokenizer

    status = on_status or (lambda _m: None)
    sides = sides or LoadedSides()
    model_path = resolve_model(options.model)
    vllm_path = resolve_model(options.vllm_model) if options.vllm_model else None
    # Everything that can be refused is refused before a model (or even vLLM) loads.
    side = resolve_vllm_side(model_path, vllm_path, dtype=normalise_dtype(options.dtype), quantization=options.quantization)
    inspection = inspect_or_refuse(options.lora, model_path, "pooling") if options.lora else None
    probe = load_probe(options.probe) if options.probe else None
    api = detect_pooling_api()
    tokenizer = sides.tokenizer or load_tokenizer(model_path)
    requests = prepare_set(options, tokenizer, model_path)
    spans = labelled_spans(requests, tokenizer, probe) if probe is not None and is_labelled(requests) else None
    ref_normalises, vllm_normalise, pooling_type, pooling_source = resolve_normalisation(options, model_path)
    if sides.vllm_pooler is not None and options.task == "embed":
        check_engine_pooling(engine_facts(sides.vllm_pooler.llm), pooling_type)

    status("HF: hidden states")
    hf_model = (sides.hf_model if sides.hf_model is not None
                else _load_hf_model(model_path, options.dtype, options.hf_placement))
    ref_states = hf_hidden_states(hf_model, requests)
    ref_adapter_states = None
    if inspection is not None:
        status("HF: hidden states with the adapter (PEFT)")
        ref_adapter_states = hf_hidden_states(hf_adapter_model(hf_model, options.lora, inspection), requests)

    status("vLLM: starting the pooling engine")
    pooler = sides.vllm_pooler
    owned = pooler is None
    if pooler is None:
        kwargs = vllm_engine_options(api, options, normalise=vllm_normalise, pooling_type=pooling_type, inspection=inspection)
        pooler = VLLMBackend(Path(side.checkpoint), dtype=side.dtype, **kwargs)
    try:
        facts = engine_facts(pooler.llm)
        if owned and options.task == "embed":  # a shared engine was checked before the HF side ran
            check_engine_pooling(facts, pooling_type)
        # A shared engine may be configured differently: an explicit per-request setting wins.
        per_request = None if (owned or options.vllm_normalise == "default") else vllm_normalise
        status("vLLM: pooling")
        cand_states, cand_adapter_states = _vllm_side(pooler.llm, api, options, requests, per_request, inspection)
    finally:
        if owned:
            pooler.close()

    if options.task == "embed":
        ref_vectors = [pool_sequence(s, pooling_type or "LAST") for s in ref_states]
        ref_vectors = list(l2_normalise(np.stack(ref_vectors))) if ref_normalises else ref_vectors
        cand_vectors = list(cand_states)
    else:
        ref_vectors, cand_vectors = ref_states, cand_states
    per_request, overall = vector_parity(requests, ref_vectors, cand_vectors)
    state = normalisation_state(
        row_norms(np.concatenate([np.atleast_2d(v) for v in ref_vectors])),
        row_norms(np.concatenate([np.atleast_2d(v) for v in cand_vectors])),
    )
    failures = []
    if (fix := normalisation_fix(state, api)) is not None:
        failures.append(fix)
    quantisation = quantisation_note(side, facts, overall, options.min_cosine, options.dtype)
    if quantisation is None:
        failures.extend(parity_failures(overall, options.min_cosine))

    probe_report = None
    if probe is not None:
        probe_report = compare_probe(probe, requests, ref_vectors, cand_vectors, tokenizer, token_level=options.task == "hidden-states", spans=spans)
        if probe_report.agreement_rate < 1.0:
            failures.append(f"probe predictions differ on {1 - probe_report.agreement_rate:.1%} of rows")

    lora_report = None
    if inspection is not None:
        lora_report = lora_hidden_state_check(
            inspection, ref_states, ref_adapter_states, cand_states, cand_adapter_states,
            min_effect=options.lora_min_effect, min_cosine=options.min_cosine,
        )
        if not lora_report.passed:
            failures.append(_lora_failure(lora_report))

    from hf2vllm.backends.placement import placement_summary

    device_map = getattr(hf_model, "hf_device_map", None) if options.hf_placement else None
    return PoolingReport(
        hf_placement=placement_summary(device_map) if device_map else None,
        task=options.task,
        model=str(model_path),
        dtype=options.dtype,
        vllm_api=api,
        vllm_pooler={
            "normalise": {"auto": vllm_normalise, "off": False, "on": True, "default": "vLLM default"}[options.vllm_normalise],
            "setting": options.vllm_normalise,
            "task": api.token_task if options.task == "hidden-states" else api.sequence_task,
            **({"seq_pooling_type": facts.seq_pooling_type} if options.task == "embed" else {}),
        },
        vllm_side=side,
        engine=facts,
        sequence_pooling=f"{pooling_type} ({pooling_source})" if pooling_type else None,
        min_cosine=options.min_cosine,
        normalisation=state,
        overall=overall,
        requests=per_request,
        probe=probe_report,
        lora=lora_report,
        quantisation=quantisation,
        passed=not failures,
        failures=failures,
        environment=collect_environment(model_path, "cpu"),
    )


def _vllm_side(
    llm: Any, api: PoolingAPI, options: PoolingOptions, requests: Sequence[PreparedRequest],
    normalise: bool | None, inspection: AdapterInspection | None,
) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    def run(lora: Any) -> list[np.ndarray]:
        if options.task == "hidden-states":
            return vllm_token_states(llm, api, requests, normalise=normalise, lora_request=lora)
        return list(vllm_sequence_embeddings(llm, api, requests, normalise=normalise, lora_request=lora))

    base = run(None)
    adapter = run(lora_request_for(Path(inspection.adapter_dir))) if inspection is not None else None
    return base, adapter


def lora_hidden_state_check(
    inspection: AdapterInspection,
    hf_base: Sequence[np.ndarray],
    hf_adapter: Sequence[np.ndarray] | None,
    vllm_base: Sequence[np.ndarray],
    vllm_adapter: Sequence[np.ndarray] | None,
    *,
    min_effect: float = DEFAULT_LORA_MIN_EFFECT,
    min_cosine: float = DEFAULT_MIN_COSINE,
) -> LoraCheck:
    """Applied on each side (base vs adapter differ by > ``min_effect``) and HF == vLLM with the adapter."""
    def stack(states: Sequence[np.ndarray]) -> np.ndarray:
        return np.concatenate([np.atleast_2d(s) for s in states])

    sides = []
    for name, base, adapted in (("hf", hf_base, hf_adapter), ("vllm", vllm_base, vllm_adapter)):
        effect = compare_vectors(stack(base), stack(adapted or base))
        sides.append(LoraSideCheck(backend=name, base_vs_adapter=effect, applied=lora_applied(effect, min_effect)))
    parity = compare_vectors(stack(hf_adapter or hf_base), stack(vllm_adapter or vllm_base))
    passed = all(s.applied for s in sides) and parity.cosine_min >= min_cosine
    return LoraCheck(inspection=inspection, min_effect=min_effect, sides=sides, adapter_parity=parity, passed=passed)


def _lora_failure(check: LoraCheck) -> str:
    silent = [s.backend for s in check.sides if not s.applied]
    if silent:
        return (
            f"LoRA adapter NOT applied on {', '.join(silent)}: base and adapter outputs differ by less than "
            f"{check.min_effect:.0%} (relative L2); the adapter was loaded without error and ignored"
        )
    cos = check.adapter_parity.cosine_min if check.adapter_parity else float("nan")
    return f"LoRA applied on both sides but HF and vLLM disagree with it (lowest cosine {cos:.6f})"


def _load_hf_model(model_path: Path, dtype: str, placement: dict[str, Any] | None = None) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    from hf2vllm.backends.placement import from_pretrained_placement
    from hf2vllm.dtypes import resolve_torch_dtype

    torch.set_grad_enabled(False)
    placement = placement or {}
    placed = from_pretrained_placement(placement.get("device_map"), placement.get("max_memory"),
                                       placement.get("offload_folder"))
    return AutoModelForCausalLM.from_pretrained(model_path, dtype=resolve_torch_dtype(dtype), **placed).eval()
