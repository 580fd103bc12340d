"""A parity run: one request set, two backends, one ``CompareReport``.

Usage from Python::

    from hf2vllm.parity.run import CompareOptions, run_compare
    report = run_compare(CompareOptions(max_new_tokens=32))
    print(report.summary.exact_match_rate)

The backends run one after the other (reference first), each loaded, used and closed before the
next starts, so peak memory is one model at a time. Tests pass already-loaded backends instead.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hf2vllm.backends.base import Backend, GenerationResult, backend_class, create_backend
from hf2vllm.environment import collect_environment
from hf2vllm.errors import InputError
from hf2vllm.multimodal.integration import has_images, prepare_vl_prompt_set, vllm_engine_options
from hf2vllm.multimodal.prepare import is_vision_language
from hf2vllm.parity import diagnose
from hf2vllm.parity.compare import common_prefix_fraction, exact_match_rate, first_divergence, token_at
from hf2vllm.report.schema import BackendRunSummary, CompareReport, DeltaStats, ParitySummary, RequestComparison
from hf2vllm.requests import PreparedRequest, PromptOptions, bundled_prompts_path, load_requests, prepare_requests
from hf2vllm.spec import GenerationSpec


class BackendChoice(BaseModel):
    """Which backend to run and the options it is created with, plus this side's deliberate
    differences (``--hf-option``/``--vllm-option``, ``--no-chat-template``, ``--vllm-tokenize``)."""

    kind: str
    options: dict[str, Any] = Field(default_factory=dict)
    generation: dict[str, Any] = Field(default_factory=dict, description="GenerationSpec fields set on this side only.")
    prompt: PromptOptions = Field(default_factory=PromptOptions)
    decode: dict[str, bool] = Field(
        default_factory=dict, description="skip_special_tokens / spaces_between_special_tokens for this side's text."
    )


class CompareOptions(BaseModel):
    """Everything ``hf2vllm compare`` needs; the CLI is a thin layer over this model."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: str | None = Field(None, description="Cached model name or checkpoint dir; None = bundled model.")
    prompts: Path | None = Field(None, description="JSONL prompt file; None = the bundled prompt set.")
    max_new_tokens: int = Field(64, ge=1)
    dtype: str = "float32"
    limit: int | None = Field(None, ge=1, description="Use only the first N requests.")
    max_model_len: int | None = None
    spec: GenerationSpec | None = Field(None, description="Generation settings; None = greedy.")
    reference: BackendChoice = Field(default_factory=lambda: BackendChoice(kind="hf"))
    candidate: BackendChoice = Field(default_factory=lambda: BackendChoice(kind="vllm"))
    mm_processor_kwargs: dict[str, Any] | None = Field(
        None, description="VL models: image settings for both sides (HF processor call, vLLM mm_processor_kwargs)."
    )
    logprobs: int | None = Field(5, ge=0, description="Top-k logprobs per generated token on both sides; None = off.")
    explain: bool = Field(True, description="Teacher-forced scoring, divergence verdicts, cause checks, batch probe.")
    batch_probe_limit: int = Field(8, ge=0, description="Re-run at most this many divergent requests (batch probe).")


class BackendRun(BaseModel):
    """One backend's answers plus the timings that go into the report."""

    name: str
    options: dict[str, Any]
    load_seconds: float
    generate_seconds: float
    results: list[GenerationResult]

    def summary(self) -> BackendRunSummary:
        tokens = sum(len(r.output_token_ids) for r in self.results)
        rate = tokens / self.generate_seconds if self.generate_seconds > 0 else 0.0
        return BackendRunSummary(
            name=self.name,
            options=self.options,
            load_seconds=round(self.load_seconds, 3),
            generate_seconds=round(self.generate_seconds, 3),
            output_tokens=tokens,
            output_tokens_per_second=round(rate, 2),
        )


ProgressFactory = Callable[[str, int], Callable[[int], None]]
"""Given a label and a total, returns the per-request progress callback (the CLI draws bars)."""


def stop_token_ids(model_path: Path, tokenizer: Any) -> list[int]:
    """Every token id that ends a turn for this model: the tokenizer's eos plus generation_config's.

    generation_config.json may list several (Llama 3 lists ``<|eot_id|>`` there, not as eos_token).
    """
    ids: list[int] = []
    if isinstance(tokenizer.eos_token_id, int):
        ids.append(tokenizer.eos_token_id)
    gen_config = model_path / "generation_config.json"
    if gen_config.is_file():
        value = json.loads(gen_config.read_text()).get("eos_token_id")
        for tok in value if isinstance(value, list) else [value]:
            if isinstance(tok, int) and tok not in ids:
                ids.append(tok)
    return ids


def model_context_length(model_path: Path) -> int | None:
    """The context window the model declares (``max_position_embeddings`` or a known alias)."""
    config_file = model_path / "config.json"
    if not config_file.is_file():
        return None
    config = json.loads(config_file.read_text())
    sources = [config, config.get("text_config") or {}]
    for cfg in sources:
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            if isinstance(cfg.get(key), int):
                return int(cfg[key])
    return None


def load_tokenizer(model_path: Path, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)


def prepare_prompt_set(
    options: CompareOptions, model_path: Path, tokenizer: Any, prompt: PromptOptions | None = None
) -> list[PreparedRequest]:
    requests = load_requests(options.prompts or bundled_prompts_path())
    if options.limit:
        requests = requests[: options.limit]
    context = options.max_model_len or model_context_length(model_path)
    if is_vision_language(model_path):
        return prepare_vl_prompt_set(
            requests, model_path, prompts_path=options.prompts or bundled_prompts_path(),
            overrides=options.mm_processor_kwargs, max_model_len=context, max_new_tokens=options.max_new_tokens,
        )
    return prepare_requests(
        requests, tokenizer, max_model_len=context, max_new_tokens=options.max_new_tokens, options=prompt
    )


def run_backend(
    backend: Backend, requests: Sequence[PreparedRequest], spec: GenerationSpec, progress: Callable[[int], None] | None
) -> tuple[list[GenerationResult], float]:
    start = time.perf_counter()
    results = backend.generate(requests, spec, progress=progress)
    return results, time.perf_counter() - start


def compare_results(
    requests: Sequence[PreparedRequest],
    reference: Sequence[GenerationResult],
    candidate: Sequence[GenerationResult],
    tokenizer: Any,
) -> list[RequestComparison]:
    """Pair up both sides' results per request (by id) and locate each first divergence."""
    by_id = {r.request_id: r for r in candidate}
    rows = []
    for req, ref in zip(requests, reference, strict=True):
        cand = by_id.get(req.id)
        if cand is None:
            raise InputError(f"candidate backend returned no result for request {req.id!r}")
        pos = first_divergence(ref.output_token_ids, cand.output_token_ids)
        ref_tok = token_at(ref.output_token_ids, pos)
        cand_tok = token_at(cand.output_token_ids, pos)
        rows.append(
            RequestComparison(
                id=req.id,
                prompt_tokens=len(req.prompt_token_ids),
                reference_token_ids=ref.output_token_ids,
                candidate_token_ids=cand.output_token_ids,
                reference_text=ref.text,
                candidate_text=cand.text,
                reference_finish_reason=ref.finish_reason,
                candidate_finish_reason=cand.finish_reason,
                exact_match=pos is None,
                first_divergence=pos,
                reference_token_at_divergence=None if ref_tok is None else tokenizer.decode([ref_tok]),
                candidate_token_at_divergence=None if cand_tok is None else tokenizer.decode([cand_tok]),
            )
        )
    return rows


def summarise(rows: Sequence[RequestComparison], teacher_forcing: DeltaStats | None = None) -> ParitySummary:
    matches = [r.exact_match for r in rows]
    fractions = [common_prefix_fraction(r.reference_token_ids, r.candidate_token_ids) for r in rows]
    verdicts = {v: sum(r.verdict == v for r in rows) for v in ("match", "near_tie", "mismatch")}
    return ParitySummary(
        requests=len(rows),
        exact_matches=sum(matches),
        exact_match_rate=round(exact_match_rate(matches), 4),
        mean_common_prefix_fraction=round(sum(fractions) / len(fractions), 4) if fractions else 0.0,
        verdicts=verdicts,
        mean_text_similarity=round(sum(r.text_similarity for r in rows) / len(rows), 4) if rows else None,
        teacher_forcing=teacher_forcing,
    )


def resolve_spec(options: CompareOptions, model_path: Path, tokenizer: Any) -> GenerationSpec:
    if options.spec is not None:
        spec = options.spec
    else:
        spec = GenerationSpec.greedy(options.max_new_tokens, stop_token_ids(model_path, tokenizer))
    if options.logprobs is not None and spec.logprobs is None:
        spec = spec.model_copy(update={"logprobs": options.logprobs})
    return spec


def side_spec(spec: GenerationSpec, choice: BackendChoice) -> GenerationSpec:
    """The spec with this side's own overrides (``--vllm-option repetition_penalty=1.3``)."""
    if not choice.generation:
        return spec
    return GenerationSpec.checked(**{**spec.model_dump(), **choice.generation})


def run_compare(
    options: CompareOptions,
    *,
    backends: dict[str, Backend] | None = None,
    progress: ProgressFactory | None = None,
    on_status: Callable[[str], None] | None = None,
) -> CompareReport:
    """Run both backends on the prompt set and build the report.

    ``backends`` maps "reference"/"candidate" to already-loaded backends to reuse (they are not
    closed); missing ones are created from the options, used, and closed.
    """
    from hf2vllm.models import resolve_model

    backends = backends or {}
    for role, choice in (("reference", options.reference), ("candidate", options.candidate)):
        if role not in backends:
            backend_class(choice.kind).check_available()  # fail before minutes of work on the other side
    model_path = resolve_model(options.model)
    tokenizer = load_tokenizer(model_path)
    spec = resolve_spec(options, model_path, tokenizer)
    choices = {"reference": options.reference, "candidate": options.candidate}
    # One tokenisation path; a side's PromptOptions make its prompt differ only when asked to.
    prepared = {role: prepare_prompt_set(options, model_path, tokenizer, c.prompt) for role, c in choices.items()}
    requests = prepared["reference"]
    specs = {role: side_spec(spec, c) for role, c in choices.items()}
    context = model_context_length(model_path)
    runs: list[BackendRun] = []
    setups: dict[str, diagnose.SideSetup] = {}
    scores: dict[str, dict[str, Any]] = {"reference": {}, "candidate": {}}
    probes: dict[str, Any] = {}
    top_k = spec.logprobs or 0
    # Verdicts come from the generated logprobs, on every request. Teacher-forced scoring and the
    # batch probe send token ids only, no pixels: not meaningful for image requests, so skipped there.
    diagnosing = options.explain and spec.logprobs is not None
    explaining = diagnosing and not has_images(requests)
    for role, choice in choices.items():
        backend = backends.get(role)
        owned = backend is None
        if backend is None:
            if on_status:
                on_status(f"loading {choice.kind} backend")
            load = {"dtype": options.dtype, **vllm_engine_options(choice.kind, requests), **choice.options}
            backend = create_backend(choice.kind, model=model_path, **load)
        try:
            setup = diagnose.side_setup(
                role, choice.kind, backend.describe(), choice.options, specs[role], choice.prompt, model_path,
                context, choice.decode,
            )
            setups[role] = setup
            callback = progress(f"{choice.kind} generate", len(requests)) if progress else None
            start = time.perf_counter()
            results = diagnose.generate_fitting(backend, prepared[role], specs[role], setup.max_model_len, callback)
            seconds = time.perf_counter() - start
            if choice.decode:
                results = [_redecode(r, tokenizer, choice.decode) for r in results]
            runs.append(
                BackendRun(
                    name=choice.kind,
                    options=backend.describe(),
                    load_seconds=backend.load_seconds,
                    generate_seconds=seconds,
                    results=results,
                )
            )
            if role == "candidate" and explaining:
                # While the candidate is loaded: score the reference's outputs on it, then re-run
                # the divergent requests to probe batch sensitivity.
                if on_status:
                    on_status(f"{choice.kind}: teacher-forced scoring and batch probe")
                scores["candidate"] = diagnose.score_where_possible(
                    backend, prepared[role], runs[0].results, setup.max_model_len, top_k
                )
                divergent = [
                    a.request_id
                    for a, b in zip(runs[0].results, results, strict=True)
                    if a.output_token_ids != b.output_token_ids and b.finish_reason != diagnose.CONTEXT_LENGTH
                ][: options.batch_probe_limit]
                fitting = [r for r in prepared[role] if diagnose.fits(r, setup.max_model_len)]
                probes = diagnose.probe_batches(backend, fitting, results, divergent, specs[role])
        finally:
            if owned:
                backend.close()
                del backend
                gc.collect()
    if explaining:
        # The reference scores the candidate's outputs last; a reference we own is loaded again
        # rather than kept alongside the candidate (peak memory stays one model).
        ref_choice = options.reference
        backend = backends.get("reference")
        owned = backend is None
        if backend is None:
            if on_status:
                on_status(f"loading {ref_choice.kind} backend for teacher-forced scoring")
            backend = create_backend(ref_choice.kind, model=model_path, **{"dtype": options.dtype, **ref_choice.options})
        try:
            scores["reference"] = diagnose.score_where_possible(
                backend, prepared["reference"], runs[1].results, setups["reference"].max_model_len, top_k
            )
        finally:
            if owned:
                backend.close()
                del backend
                gc.collect()
    rows = compare_results(requests, runs[0].results, runs[1].results, tokenizer)
    causes: list[Any] = []
    pooled = None
    if diagnosing:
        causes, pooled = diagnose.explain_rows(
            rows, runs[0].results, runs[1].results, prepared["reference"], prepared["candidate"],
            (setups["reference"], setups["candidate"]), (scores["candidate"], scores["reference"]), probes,
            tokenizer, spec.max_new_tokens,
        )
        if not explaining:
            pooled = None  # nothing was teacher-forced (image requests)
    device = str(runs[0].options.get("device", "cpu"))
    return CompareReport(
        reference=options.reference.kind,
        candidate=options.candidate.kind,
        dtype=options.dtype,
        generation=spec.model_dump(),
        summary=summarise(rows, pooled),
        backends=[run.summary() for run in runs],
        requests=rows,
        environment=collect_environment(model_path, device),
        logprobs_mode="raw" if spec.logprobs is not None else None,
        logprobs_top_k=spec.logprobs,
        causes=causes,
        sides=[setups[role] for role in ("reference", "candidate")],
        token_strings=token_strings(rows, tokenizer),
    )


def token_strings(rows: Sequence[RequestComparison], tokenizer: Any) -> dict[int, str]:
    """Decoded text of each token id the report mentions (outputs and their top-k alternatives)."""
    ids: set[int] = set()
    for row in rows:
        ids.update(row.reference_token_ids)
        ids.update(row.candidate_token_ids)
        for steps in (row.reference_logprobs or [], row.candidate_logprobs or []):
            for step in steps:
                ids.update(step.top)
    return {i: tokenizer.decode([i]) for i in sorted(ids)}


def _redecode(result: GenerationResult, tokenizer: Any, decode: dict[str, bool]) -> GenerationResult:
    """This side's text decoded with its own detokenisation settings (the ids are unchanged)."""
    text = tokenizer.decode(result.output_token_ids, **decode)
    return result.model_copy(update={"text": text})
