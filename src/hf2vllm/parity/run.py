"""A parity run: one request set, two backends, one ``CompareReport``.

Usage from Python::

    from hf2vllm.parity.run import CompareOptions, run_compare
    report = run_compare(CompareOptions(max_new_tokens=32))
    print(report.summary.exact_match_rate)

Greedy runs are decided by teacher forcing (``parity.teacher_forced``): the candidate generates, stays
loaded, and the reference scores its answers and generates only where it disagrees, so both models are
in memory at once. ``hf_generate=True`` is the older path: the reference generates every request, one
model loaded at a time. Tests pass already-loaded backends instead.
"""

from __future__ import annotations

import gc
import json
import time
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hf2vllm.backends.base import Backend, GenerationResult, ScoredContinuation, backend_class, create_backend
from hf2vllm.environment import collect_environment
from hf2vllm.errors import InputError
from hf2vllm.multimodal.integration import has_images, prepare_vl_prompt_set, vllm_engine_options
from hf2vllm.multimodal.prepare import is_vision_language
from hf2vllm.parity import diagnose
from hf2vllm.parity.head_start import PromptHeadStart, head_start_applies
from hf2vllm.parity.collapse import collapse_cause, collapse_check
from hf2vllm.parity.compare import common_prefix_fraction, exact_match_rate, first_divergence, token_at
from hf2vllm.parity.groups import group_key, summarise, summarise_groups
from hf2vllm.parity.noise import NoiseModel, coarsest, step_resolution
from hf2vllm.parity.run_verdict import run_verdict, survival_curve
from hf2vllm.parity.teacher_forced import find_fork, reproduced_result
from hf2vllm.report.schema import (
    BackendRunSummary,
    CompareReport,
    DeltaStats,
    NoiseCalibration,
    ParitySummary,
    RequestComparison,
)
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
    max_new_tokens_given: bool = Field(
        False, description="max_new_tokens was asked for (--max-new-tokens), not a default: an OpenAI batch file "
        "whose bodies set another max_tokens is then refused rather than followed.",
    )
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
    hf_generate: bool = Field(
        False, description="The reference generates every request (the old path); default: it teacher-forces the "
        "candidate's answers and generates only where it disagrees (greedy runs).",
    )
    calibration_requests: int = Field(
        16, ge=1, description="Requests the reference scores a second time (alone) to measure its own noise."
    )
    against: Path | None = Field(
        None, description="A reference directory (hf2vllm record): the reference side is read from it, no HF model "
        "loads; the run must be the recorded one (reference.against).",
    )
    group_by: str | None = Field(
        None, description="Request metadata key the report is grouped by (report.groups); None: \"domain\" when "
        "any request carries it, else no groups (parity.groups.group_key).",
    )


class BackendRun(BaseModel):
    """One backend's answers plus the timings that go into the report."""

    name: str
    options: dict[str, Any]
    load_seconds: float
    generate_seconds: float
    results: list[GenerationResult]
    mode: str = "generate"

    def summary(self) -> BackendRunSummary:
        tokens = sum(len(r.output_token_ids) for r in self.results)
        rate = tokens / self.generate_seconds if self.generate_seconds > 0 else 0.0
        return BackendRunSummary(
            name=self.name,
            options=self.options,
            load_seconds=round(self.load_seconds, 3),
            generate_seconds=round(self.generate_seconds, 3),
            mode=self.mode,  # type: ignore[arg-type]
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


def resolve_spec(options: CompareOptions, model_path: Path, tokenizer: Any) -> GenerationSpec:
    if options.spec is not None:
        spec = options.spec
    else:
        spec = GenerationSpec.greedy(options.max_new_tokens, stop_token_ids(model_path, tokenizer))
    if options.prompts is not None:
        from hf2vllm.requests_openai_batch import prompt_file_spec

        # An OpenAI batch file states its own settings: they replace the default, or must agree with given ones.
        spec = prompt_file_spec(options.prompts, model_path, spec, explicit=options.spec is not None,
                                length_given=options.max_new_tokens_given)
    if options.logprobs is not None and spec.logprobs is None:
        spec = spec.model_copy(update={"logprobs": options.logprobs})
    return spec


def side_spec(spec: GenerationSpec, choice: BackendChoice) -> GenerationSpec:
    """The spec with this side's own overrides (``--vllm-option repetition_penalty=1.3``)."""
    if not choice.generation:
        return spec
    return GenerationSpec.checked(**{**spec.model_dump(), **choice.generation})


def verdict_method(options: CompareOptions, spec: GenerationSpec, requests: Sequence[PreparedRequest]) -> tuple[str, str | None]:
    """``teacher_forcing`` unless asked for ``--hf-generate`` or the run cannot use it (and then why)."""
    if options.reference.kind == "record":
        return "record", None
    if options.hf_generate:
        return "hf_generate", None
    reasons = []
    if spec.do_sample:
        reasons.append("sampling (teacher forcing decides greedy runs only)")
    if spec.stop_strings:
        reasons.append("stop strings (the reference's stop check needs its own text)")
    if has_images(requests):
        reasons.append("image requests (the forward pass carries token ids, no pixels)")
    if not hasattr(backend_class(options.reference.kind), "teacher_force"):
        reasons.append(f"the {options.reference.kind} reference cannot teacher-force")
    if reasons:
        return "hf_generate", "the reference generated every request: " + "; ".join(reasons)
    return "teacher_forcing", None


class Stopwatch:
    """Seconds per named stage of a run (``report.stage_seconds``); a stage entered twice adds up."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 3)


class _Sides:
    """The two backends of a run: given ones are reused, missing ones created on first use and closed
    by ``close`` (a given backend is never closed here)."""

    def __init__(self, options: CompareOptions, given: dict[str, Backend], model_path: Path,
                 requests: Sequence[PreparedRequest], on_status: Callable[[str], None] | None,
                 watch: Stopwatch) -> None:
        self.options, self.given, self.model_path, self.requests = options, given, model_path, requests
        self.on_status = on_status
        self.watch = watch
        self.owned: dict[str, Backend] = {}
        self.loading: dict[str, Future[Backend]] = {}
        self.closing: list[threading.Thread] = []

    def _create(self, role: str, stage: str) -> Backend:
        choice: BackendChoice = getattr(self.options, role)
        load = {"dtype": self.options.dtype, **vllm_engine_options(choice.kind, self.requests), **choice.options}
        model = load.pop("model", self.model_path)  # a side's own checkpoint (--vllm-model: a quantised copy)
        with self.watch.stage(stage):
            return create_backend(choice.kind, model=model, **load)

    def prefetch(self, role: str) -> None:
        """Load an in-process backend on a thread while the main thread waits on the other engine's
        generation (never while an engine is being spawned: a fork during a load could deadlock)."""
        if role in self.given or role in self.owned or role in self.loading:
            return
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"hf2vllm-load-{role}")
        self.loading[role] = pool.submit(self._create, role, f"{role} load (overlapped)")
        pool.shutdown(wait=False)

    def get(self, role: str, purpose: str = "") -> Backend:
        if role in self.given:
            return self.given[role]
        if role in self.loading:
            with self.watch.stage(f"{role} load (waited)"):
                self.owned[role] = self.loading.pop(role).result()
        if role not in self.owned:
            choice: BackendChoice = getattr(self.options, role)
            if self.on_status:
                self.on_status(f"loading {choice.kind} backend{purpose}")
            self.owned[role] = self._create(role, f"{role} load")
        return self.owned[role]

    def _close_one(self, name: str, backend: Backend, stage: str) -> None:
        with self.watch.stage(stage):
            backend.close()
            gc.collect()

    def close_in_background(self, role: str) -> None:
        """Shut an engine down on a thread while the other side finishes (``close`` waits for it)."""
        backend = self.owned.pop(role, None)
        if backend is not None:
            thread = threading.Thread(target=self._close_one, args=(role, backend, f"{role} close (overlapped)"))
            thread.start()
            self.closing.append(thread)

    @contextmanager
    def beside_closing(self, backend: Backend) -> Iterator[None]:
        """On a CPU, one core fewer for ``backend`` while an engine shuts down beside it: its shutdown
        keeps a core busy for seconds (each process's final garbage collection), and two thread pools
        competing for two cores are slower together than taking turns."""
        if not getattr(backend, "prefers_alone", False) or not any(t.is_alive() for t in self.closing):
            yield
            return
        import torch

        from hf2vllm.backends.hf import torch_threads

        with torch_threads(torch.get_num_threads() - 1):
            yield

    def close(self, role: str | None = None) -> None:
        for name in [role] if role else list(self.loading):
            if name in self.loading:  # a failed run must not leave a load behind
                self.owned[name] = self.loading.pop(name).result()
        for name in [role] if role else list(self.owned):
            backend = self.owned.pop(name, None)
            if backend is not None:
                self._close_one(name, backend, f"{name} close")
        if role is None:
            for thread in self.closing:
                thread.join()


class _Outcome(BaseModel):
    """What either verdict path hands to the shared explanation and report steps."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    runs: dict[str, BackendRun]
    setups: dict[str, Any]
    scores: dict[str, dict[str, Any]] = Field(default_factory=lambda: {"reference": {}, "candidate": {}})
    probes: dict[str, Any] = Field(default_factory=dict)
    calibration: NoiseCalibration | None = None
    forks: dict[str, int | None] = Field(default_factory=dict)
    generated: set[str] | None = None
    logprobs_mode: str | None = None


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
    started = time.perf_counter()
    watch = Stopwatch()
    backends = backends or {}
    if options.against is not None:
        if "reference" in backends:
            raise InputError("against: the reference side is the record; pass only a candidate backend")
        options = _against_options(options)
    choices = {"reference": options.reference, "candidate": options.candidate}
    for role, choice in choices.items():
        if role not in backends:
            backend_class(choice.kind).check_available()  # fail before minutes of work on the other side
    recorded = None
    with watch.stage("prepare prompts"):
        if options.against is not None:
            from hf2vllm.reference.against import prepare_against

            model_path, tokenizer, spec, prepared, recorded = prepare_against(options, choices)
        else:
            model_path, tokenizer, spec, prepared = _prepare(options, choices)
    requests = prepared["reference"]
    group_by = group_key(options.group_by, [r.source.metadata for r in requests])  # a bad key fails before loads
    specs = {role: side_spec(spec, c) for role, c in choices.items()}
    if options.candidate.kind != "hf":
        diagnose.check_logprobs_mode(options.candidate.options.get("logprobs_mode"), specs["candidate"], "candidate")
    method, method_note = verdict_method(options, spec, requests)
    # Verdicts come from the generated logprobs, on every request. Teacher-forced scoring and the
    # batch probe send token ids only, no pixels: not meaningful for image requests, so skipped there.
    diagnosing = options.explain and spec.logprobs is not None
    explaining = diagnosing and not has_images(requests)
    context = model_context_length(model_path)
    sides = _Sides(options, backends, model_path, requests, on_status, watch)
    run = _teacher_forced if method == "teacher_forcing" else _hf_generate
    try:
        outcome = run(options, sides, prepared, specs, model_path, context, tokenizer, progress, on_status,
                      explaining=explaining)
    finally:
        sides.close()
    explain_started = time.perf_counter()
    ref_run, cand_run = outcome.runs["reference"], outcome.runs["candidate"]
    rows = compare_results(requests, ref_run.results, cand_run.results, tokenizer)
    for row in rows:
        row.teacher_forced_fork = outcome.forks.get(row.id)
        row.reference_generated = outcome.generated is None or row.id in outcome.generated
    causes: list[Any] = []
    pooled = None
    verdict = None
    if diagnosing:
        noise = NoiseModel(measured=outcome.calibration.noise if outcome.calibration else 0.0,
                           dtype=verdict_precision(outcome.setups["reference"], outcome.setups["candidate"]))
        causes, pooled = diagnose.explain_rows(
            rows, ref_run.results, cand_run.results, prepared["reference"], prepared["candidate"],
            (outcome.setups["reference"], outcome.setups["candidate"]),
            (outcome.scores["candidate"], outcome.scores["reference"]), outcome.probes,
            tokenizer, spec.max_new_tokens, noise,
        )
        collapse = collapse_check(
            {r.id: (r.reference_token_ids, r.candidate_token_ids) for r in rows}, stop_ids=spec.stop_token_ids
        )
        degenerate = (set(collapse.reference_degenerate), set(collapse.candidate_degenerate))
        for row in rows:
            row.reference_degenerate = row.id in degenerate[0]
            row.candidate_degenerate = row.id in degenerate[1]
        flagged = collapse_cause(collapse)
        if flagged is not None:
            causes.append(flagged)
            for row in rows:
                if row.id in flagged.requests and flagged.id not in row.causes:
                    row.causes.append(flagged.id)
        if not explaining:
            pooled = None  # nothing was teacher-forced (image requests)
        elif outcome.calibration is not None:
            verdict = run_verdict(
                pooled, outcome.calibration.reference_vs_reference,
                resolution_p99=resolution_p99(ref_run.results, str(outcome.setups["reference"].dtype)),
                survival=survival_curve([(r.first_divergence, _shared_length(r)) for r in rows]),
                collapse=collapse, names=(_side_name(options.reference), options.candidate.kind),
            )
    watch.seconds["verdicts and causes"] = round(time.perf_counter() - explain_started, 3)
    device = str(ref_run.options.get("device", "cpu"))
    with watch.stage("report"):
        environment = collect_environment(model_path, device)
        strings = token_strings(rows, tokenizer)
    return CompareReport(
        reference=options.reference.kind,
        candidate=options.candidate.kind,
        dtype=options.dtype,
        generation=spec.model_dump(),
        summary=summarise(rows, pooled),
        group_by=group_by,
        groups=summarise_groups(rows, {r.id: r.source.metadata for r in requests}, group_by),
        backends=[ref_run.summary(), cand_run.summary()],
        requests=rows,
        environment=environment,
        logprobs_mode=(outcome.logprobs_mode or diagnose.RAW_LOGPROBS) if spec.logprobs is not None else None,
        logprobs_top_k=spec.logprobs,
        causes=causes,
        sides=[outcome.setups[role] for role in ("reference", "candidate")],
        token_strings=strings,
        verdict_method=method,  # type: ignore[arg-type]
        reference_record=recorded,
        verdict_method_note=method_note,
        noise=outcome.calibration,
        run_verdict=verdict,
        wall_seconds=round(time.perf_counter() - started, 3),
        stage_seconds=watch.seconds,
    )


def verdict_precision(reference: Any, candidate: Any) -> str:
    """The resolution near ties are judged at: the reference's dtype, or a coarser precision either side
    really multiplies in (``SideSetup.dot_precision``: vLLM's float32 attention on CUDA runs TF32 dots)."""
    return coarsest(str(reference.dtype), reference.dot_precision, candidate.dot_precision)


def _side_name(choice: BackendChoice) -> str:
    return "hf (recorded)" if choice.kind == "record" else choice.kind


def _against_options(options: CompareOptions) -> CompareOptions:
    """The run's options against a record: the reference side is the record, and the candidate runs the
    recorded dtype unless another was asked for (a dtype change is a candidate change like any other)."""
    from hf2vllm.reference.store import read_manifest

    if options.reference.kind not in ("hf", "record"):
        raise InputError(f"--against: the reference is the record; --reference {options.reference.kind} cannot be used with it")
    if options.candidate.kind == "hf":
        raise InputError("--against: the candidate must be vllm or server (the record is the HF reference)")
    if options.hf_generate:
        raise InputError("--against with --hf-generate: the record already holds the reference's own answers")
    manifest = read_manifest(options.against)  # type: ignore[arg-type]
    update: dict[str, Any] = {"reference": BackendChoice(kind="record", options={"path": str(options.against)})}
    if "dtype" not in options.model_fields_set:
        update["dtype"] = manifest.dtype
    declared = options.candidate.options.get("model")
    if declared is not None and options.candidate.kind == "vllm" and "dtype" not in options.candidate.options:
        # A quantised copy runs the activation dtype its method needs here (int8 W8A8 on AMX: bfloat16).
        from hf2vllm.models import resolve_model
        from hf2vllm.pooling.vllm_side import resolve_vllm_side

        copy = resolve_model(str(declared))
        side = resolve_vllm_side(copy, copy, dtype=update.get("dtype", options.dtype), quantization=None)
        candidate = options.candidate.model_copy(update={"options": {**options.candidate.options, "model": str(copy),
                                                                     "dtype": side.dtype}})
        update["candidate"] = candidate
    return options.model_copy(update=update)


def _prepare(options: CompareOptions, choices: dict[str, BackendChoice]
             ) -> tuple[Path, Any, GenerationSpec, dict[str, list[PreparedRequest]]]:
    """The model, its tokenizer, the resolved settings and each side's prompts (one tokenisation path; a
    side's PromptOptions make its prompt differ only when asked to)."""
    from hf2vllm.models import resolve_model

    model_path = resolve_model(options.model)
    tokenizer = load_tokenizer(model_path)
    spec = resolve_spec(options, model_path, tokenizer)
    if spec.max_new_tokens != options.max_new_tokens:  # a batch file's max_tokens: the length check uses it
        options = options.model_copy(update={"max_new_tokens": spec.max_new_tokens})
    prepared = {role: prepare_prompt_set(options, model_path, tokenizer, c.prompt) for role, c in choices.items()}
    return model_path, tokenizer, spec, prepared


def run_candidate_alone(options: CompareOptions, progress: ProgressFactory | None = None) -> BackendRun:
    """The candidate side of ``run_compare`` and nothing else: the same prompts, settings and engine
    options, loaded, generating, closed. The baseline for "vLLM's own time" (``bench verdict``)."""
    backend_class(options.candidate.kind).check_available()
    model_path, tokenizer, spec, prepared = _prepare(options, {"candidate": options.candidate})
    spec = side_spec(spec, options.candidate)
    requests = prepared["candidate"]
    sides = _Sides(options, {}, model_path, requests, None, Stopwatch())
    try:
        candidate = sides.get("candidate")
        setup = _setup("candidate", options.candidate, candidate, spec, model_path, model_context_length(model_path))
        results, seconds = _generate("candidate", options.candidate, candidate, requests, spec, setup, tokenizer,
                                     progress, sides.watch)
    finally:
        sides.close()
    return BackendRun(name=options.candidate.kind, options=candidate.describe(), load_seconds=candidate.load_seconds,
                      generate_seconds=seconds, results=results)


def _shared_length(row: RequestComparison) -> int:
    return len(row.reference_token_ids) if row.first_divergence is None else row.first_divergence


def resolution_p99(results: Sequence[GenerationResult], dtype: str) -> float:
    """p99 over the reference's positions of one dtype step at the largest logit."""
    steps = [step_resolution(dtype, s) for r in results for s in r.logprobs or [] if s.top_logits]
    return diagnose.explain.percentile(steps, 99) if steps else 0.0


def _setup(role: str, choice: BackendChoice, backend: Backend, spec: GenerationSpec, model_path: Path,
           context: int | None) -> diagnose.SideSetup:
    return diagnose.side_setup(
        role, choice.kind, backend.describe(), choice.options, spec, choice.prompt, model_path, context, choice.decode,
    )


def _generate(
    role: str, choice: BackendChoice, backend: Backend, requests: Sequence[PreparedRequest], spec: GenerationSpec,
    setup: diagnose.SideSetup, tokenizer: Any, progress: ProgressFactory | None, watch: Stopwatch,
    label: str = "generate",
) -> tuple[list[GenerationResult], float]:
    callback = progress(f"{choice.kind} {label}", len(requests)) if progress and requests else None
    start = time.perf_counter()
    with watch.stage(f"{role} {label}"):
        results = diagnose.generate_fitting(backend, requests, spec, setup.max_model_len, callback)
    seconds = time.perf_counter() - start
    if choice.decode:
        results = [_redecode(r, tokenizer, choice.decode) for r in results]
    return results, seconds


def _candidate_logprobs_mode(backend: Backend, spec: GenerationSpec, results: Sequence[GenerationResult]) -> str:
    mode = backend.describe().get("logprobs_mode")
    diagnose.check_logprobs_mode(mode, spec, "candidate")
    if mode is None:
        diagnose.check_returned_logprobs(results, "candidate")
        return f"{diagnose.RAW_LOGPROBS} (assumed: the backend does not report its mode; its values are <= 0)"
    return str(mode)


def _teacher_forced(
    options: CompareOptions, sides: _Sides, prepared: dict[str, list[PreparedRequest]],
    specs: dict[str, GenerationSpec], model_path: Path, context: int | None, tokenizer: Any,
    progress: ProgressFactory | None, on_status: Callable[[str], None] | None, *, explaining: bool,
) -> _Outcome:
    """The candidate generates; the reference scores its answers in batched forward passes and generates
    only the requests where its greedy pick leaves the candidate's answer (parity.teacher_forced)."""
    cand_choice, ref_choice = options.candidate, options.reference
    cand_spec, ref_spec = specs["candidate"], specs["reference"]
    top_k = ref_spec.logprobs or 0
    watch = sides.watch
    requests = prepared["reference"]
    head_start = None
    if head_start_applies(ref_choice.kind, ref_choice.options, cand_choice.kind, "candidate" not in sides.given):
        reference = sides.get("reference", " (it prefills the prompts while vLLM loads)")
        ref_max = _setup("reference", ref_choice, reference, ref_spec, model_path, context).max_model_len

        def prefilled(seconds: float) -> None:
            watch.seconds["reference prompt prefill (overlapped)"] = round(seconds, 3)

        head_start = PromptHeadStart(reference, requests, max_model_len=ref_max, on_done=prefilled)  # type: ignore[arg-type]
    try:
        candidate = sides.get("candidate")
    except BaseException:
        if head_start is not None:
            head_start.result()  # a thread still inside torch must not outlive the run (abort at exit)
        raise
    if head_start is not None:
        head_start.stop()
    cand_setup = _setup("candidate", cand_choice, candidate, cand_spec, model_path, context)
    if ref_choice.kind == "hf":
        sides.prefetch("reference")
    cand_results, cand_seconds = _generate("candidate", cand_choice, candidate, prepared["candidate"], cand_spec,
                                           cand_setup, tokenizer, progress, watch)
    mode = _candidate_logprobs_mode(candidate, cand_spec, cand_results) if cand_spec.logprobs is not None else None
    # The candidate stays loaded: the reference's forks are scored on it and probed for batch effects.
    reference = sides.get("reference", " (teacher forcing)")
    ref_setup = _setup("reference", ref_choice, reference, ref_spec, model_path, context)
    cand_by_id = {r.request_id: r for r in cand_results}
    forced = [r for r in requests if diagnose.answer_fits(r, cand_by_id[r.id].output_token_ids, ref_setup.max_model_len)]
    start = time.perf_counter()
    callback = progress(f"{ref_choice.kind} teacher-force", len(forced)) if progress and forced else None
    prefixes = head_start.result() if head_start is not None else None
    with watch.stage("reference teacher-force"):
        scored = reference.teacher_force(  # type: ignore[attr-defined]
            forced, [cand_by_id[r.id].output_token_ids for r in forced], top_k=top_k, spec=ref_spec, progress=callback,
            **({"prefixes": prefixes} if prefixes else {}),
        ) if forced else []
    by_id = {s.request_id: s for s in scored}
    forks: dict[str, int | None] = {}
    for req in requests:
        answer = cand_by_id[req.id]
        own = ref_spec.for_prompt(len(req.prompt_token_ids))
        scored_here = by_id.get(req.id)
        forks[req.id] = 0 if scored_here is None else find_fork(
            answer.output_token_ids, scored_here.greedy_token_ids or [], stop_ids=own.stop_token_ids,
            min_new_tokens=own.min_new_tokens, max_new_tokens=own.max_new_tokens,
        )
    to_generate = [r for r in requests if forks[r.id] is not None]
    if not to_generate:
        sides.close_in_background("candidate")  # nothing left for it: no fork to score or probe
    generated, _ = _generate("reference", ref_choice, reference, to_generate, ref_spec, ref_setup, tokenizer,
                             progress, watch, label="generate forks")
    generated_by_id = {r.request_id: r for r in generated}
    ref_results = [
        generated_by_id.get(r.id) or reproduced_result(
            cand_by_id[r.id], by_id[r.id], stop_ids=ref_spec.stop_token_ids,
            text=tokenizer.decode(cand_by_id[r.id].output_token_ids, **(ref_choice.decode or {"skip_special_tokens": True})),
        )
        for r in requests
    ]
    calibration = None
    if explaining and by_id:
        if on_status:
            on_status(f"{ref_choice.kind}: measuring its own noise")
        with watch.stage("reference noise calibration"), sides.beside_closing(reference):
            calibration = diagnose.calibrate_reference(
                reference, requests, by_id, {r.id: cand_by_id[r.id].output_token_ids for r in forced}, generated,
                count=options.calibration_requests, top_k=top_k, dtype=ref_setup.dtype,
                device=str(reference.describe().get("device", "cpu")),
            )
    ref_seconds = time.perf_counter() - start
    scores: dict[str, dict[str, Any]] = {"reference": by_id, "candidate": {}}
    probes: dict[str, Any] = {}
    if explaining and generated:
        if on_status:
            on_status(f"{cand_choice.kind}: scoring the reference's forks and batch probe")
        cand_requests = {r.id: r for r in prepared["candidate"]}
        forked = [cand_requests[r.request_id] for r in generated]
        with watch.stage("candidate scores forks"):
            scores["candidate"] = diagnose.score_where_possible(
                candidate, forked, generated, cand_setup.max_model_len, top_k
            )
        # Forks already explained as near ties need no probe: batch effects matter where noise does not explain.
        noise = NoiseModel(measured=calibration.noise if calibration else 0.0,
                           dtype=verdict_precision(ref_setup, cand_setup))
        divergent = diagnose.unexplained_forks(
            generated, cand_results, prepared["reference"], prepared["candidate"], noise
        )[: options.batch_probe_limit]
        fitting = [r for r in prepared["candidate"] if diagnose.fits(r, cand_setup.max_model_len)]
        with watch.stage("candidate batch probe"):
            probes = diagnose.probe_batches(candidate, fitting, cand_results, divergent, cand_spec)
    return _Outcome(
        runs={
            "reference": BackendRun(name=ref_choice.kind, options=reference.describe(), load_seconds=reference.load_seconds,
                                    generate_seconds=ref_seconds, results=ref_results, mode="teacher_forced"),
            "candidate": BackendRun(name=cand_choice.kind, options=candidate.describe(), load_seconds=candidate.load_seconds,
                                    generate_seconds=cand_seconds, results=cand_results),
        },
        setups={"reference": ref_setup, "candidate": cand_setup},
        scores=scores, probes=probes, calibration=calibration, forks=forks,
        generated={r.request_id for r in generated}, logprobs_mode=mode,
    )


def _candidate_scores(
    backend: Backend, requests: Sequence[PreparedRequest], reference: Sequence[GenerationResult],
    own: Sequence[GenerationResult], max_model_len: int | None, top_k: int, *, reuse_own: bool,
) -> dict[str, ScoredContinuation]:
    """The candidate's logprobs of the reference's tokens, per request.

    ``reuse_own`` (against a record): where the candidate generated exactly the recorded tokens, its own
    generation logprobs already are the logprobs of those tokens after the same prefixes, so only the
    requests that differ are scored again. Scoring every recorded answer (prompt logprobs over whole
    sequences) cost vLLM on a CPU 14 s of a 47 s run on the bundled set, more than the HF pass a live
    compare makes."""
    if not reuse_own:
        return diagnose.score_where_possible(backend, requests, reference, max_model_len, top_k)
    mine = {r.request_id: r for r in own}
    reused: dict[str, ScoredContinuation] = {}
    for ref in reference:
        cand = mine.get(ref.request_id)
        if (cand is not None and cand.output_token_ids == ref.output_token_ids and cand.logprobs
                and len(cand.logprobs) == len(cand.output_token_ids) and all(step.top for step in cand.logprobs)):
            reused[ref.request_id] = ScoredContinuation(request_id=ref.request_id, steps=list(cand.logprobs))
    rest = [(req, ref) for req, ref in zip(requests, reference, strict=True) if ref.request_id not in reused]
    scored = diagnose.score_where_possible(backend, [r for r, _ in rest], [x for _, x in rest], max_model_len, top_k)
    return {**reused, **scored}


def _hf_generate(
    options: CompareOptions, sides: _Sides, prepared: dict[str, list[PreparedRequest]],
    specs: dict[str, GenerationSpec], model_path: Path, context: int | None, tokenizer: Any,
    progress: ProgressFactory | None, on_status: Callable[[str], None] | None, *, explaining: bool,
) -> _Outcome:
    """Both sides generate every request (reference first, one model loaded at a time); then each side's
    answers are scored on the other, and the reference measures its own noise."""
    runs: dict[str, BackendRun] = {}
    setups: dict[str, diagnose.SideSetup] = {}
    scores: dict[str, dict[str, Any]] = {"reference": {}, "candidate": {}}
    probes: dict[str, Any] = {}
    mode = None
    recorded_noise = None
    top_k = specs["reference"].logprobs or 0
    for role in ("reference", "candidate"):
        choice: BackendChoice = getattr(options, role)
        backend = sides.get(role)
        if role == "reference":
            recorded_noise = getattr(backend, "calibration", None)  # a recorded reference brings its own
        setups[role] = setup = _setup(role, choice, backend, specs[role], model_path, context)
        results, seconds = _generate(role, choice, backend, prepared[role], specs[role], setup, tokenizer, progress,
                                     sides.watch)
        runs[role] = BackendRun(name=choice.kind, options=backend.describe(), load_seconds=backend.load_seconds,
                                generate_seconds=seconds, results=results,
                                mode="recorded" if choice.kind == "record" else "generate")
        if role == "candidate" and specs[role].logprobs is not None:
            mode = _candidate_logprobs_mode(backend, specs[role], results)
        if role == "candidate" and explaining:
            # While the candidate is loaded: score the reference's outputs on it, then re-run
            # the divergent requests to probe batch sensitivity.
            if on_status:
                on_status(f"{choice.kind}: teacher-forced scoring and batch probe")
            with sides.watch.stage("candidate scores reference"):
                scores["candidate"] = _candidate_scores(
                    backend, prepared[role], runs["reference"].results, results, setup.max_model_len, top_k,
                    reuse_own=options.reference.kind == "record",
                )
            divergent = [
                a.request_id
                for a, b in zip(runs["reference"].results, results, strict=True)
                if a.output_token_ids != b.output_token_ids and b.finish_reason != diagnose.CONTEXT_LENGTH
            ][: options.batch_probe_limit]
            fitting = [r for r in prepared[role] if diagnose.fits(r, setup.max_model_len)]
            with sides.watch.stage("candidate batch probe"):
                probes = diagnose.probe_batches(backend, fitting, results, divergent, specs[role])
        sides.close(role)  # peak memory stays one model
    calibration = None
    if explaining and options.reference.kind == "record":
        calibration = recorded_noise  # no model to score the candidate's tokens: they are scored one way only
    elif explaining:
        # The reference scores the candidate's outputs last, and scores some of them again to measure
        # its own noise; a reference we own is loaded again rather than kept alongside the candidate.
        backend = sides.get("reference", " for teacher-forced scoring")
        cand = runs["candidate"].results
        with sides.watch.stage("reference scores candidate"):
            scores["reference"] = diagnose.score_where_possible(
                backend, prepared["reference"], cand, setups["reference"].max_model_len, top_k
            )
        continuations = {r.request_id: r.output_token_ids for r in cand}
        with sides.watch.stage("reference noise calibration"):
            calibration = diagnose.calibrate_reference(
                backend, prepared["reference"], scores["reference"], continuations, runs["reference"].results,
                count=options.calibration_requests, top_k=top_k, dtype=setups["reference"].dtype,
                device=str(backend.describe().get("device", "cpu")),
            )
    return _Outcome(runs=runs, setups=setups, scores=scores, probes=probes, calibration=calibration,
                    logprobs_mode=mode)


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
