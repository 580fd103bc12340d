"""``hf2vllm record``: run the reference once and keep what every later check needs.

The reference (HF Transformers) generates every request greedily with per-step logprobs (top-k and the
top raw logits, for the verdicts' dtype resolution), in batches appended to the journal as they finish;
then it measures its own noise on a sample of its answers, as a live compare does, and the manifest is
marked complete. ``compare --against`` later checks candidates against this directory with no HF model.

Usage from Python::

    from hf2vllm.reference.record import RecordOptions, record_reference
    manifest = record_reference(RecordOptions(max_new_tokens=32, limit=8), out=Path("ref"))

With ``ray_workers=N`` the same record runs on N HF replicas on a Ray cluster, with the same answers
(``reference/ray_workers.py``, docs/scale.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from hf2vllm.backends.base import Backend, GenerationResult, create_backend
from hf2vllm.errors import InputError
from hf2vllm.reference.fingerprint import model_fingerprint, prompts_fingerprint
from hf2vllm.reference.schema import REQUESTS, RecordedRequest, ReferenceManifest
from hf2vllm.reference.store import read_manifest, read_requests, write_manifest
from hf2vllm.requests import PreparedRequest, PromptOptions
from hf2vllm.spec import GenerationSpec

NOISE_SAMPLE_REQUESTS = 64
"""Most recorded answers the reference scores again (full-sequence pass) to measure its own noise: the
noise is a per-position property, so a sample bounds the cost on prompt sets of any size."""
NOISE_SAMPLE_TOKENS = 16384


class RecordOptions(BaseModel):
    """Everything ``hf2vllm record`` needs; the CLI is a thin layer over this model."""

    model: str | None = Field(None, description="Cached model name or checkpoint dir; None = bundled model.")
    prompts: Path | None = Field(None, description="Prompt file; None = the bundled prompt set.")
    max_new_tokens: int = Field(64, ge=1)
    spec: GenerationSpec | None = Field(None, description="Generation settings (greedy only); None = greedy.")
    dtype: str = "float32"
    limit: int | None = Field(None, ge=1)
    max_model_len: int | None = None
    logprobs: int = Field(5, ge=1, description="Top-k logprobs kept per generated token (verdicts need them).")
    hf_options: dict[str, Any] = Field(default_factory=dict, description="HF backend options (device, batch_size...).")
    prompt: PromptOptions = Field(default_factory=PromptOptions)
    calibration_requests: int = Field(16, ge=1, description="Requests scored again alone to measure the noise.")
    chunk_requests: int | None = Field(
        None, ge=1, description="Requests per journaled batch (default: the backend's batch size)."
    )
    ray_workers: int | None = Field(
        None, ge=1, description="HF replicas on a Ray cluster (reference/ray_workers.py); None = this process."
    )
    ray_address: str | None = Field(None, description="Ray cluster to join (`ray start` prints it); None = local.")
    ray_worker_cpus: float = Field(1, gt=0, description="CPU cores (and threads) each Ray worker takes.")
    ray_worker_gpus: float | None = Field(
        None, ge=0, description="GPUs each Ray worker takes; None = 1 for a GPU reference (several for device_map=auto)."
    )


ProgressFactory = Callable[[str, int], Callable[[int], None]]


class RecordInputsChangedError(InputError):
    """``--resume`` of a record made with other inputs (model, prompts, settings, dtype or device)."""

    def __init__(self, out: Path, differences: str) -> None:
        self.out, self.differences = out, differences
        super().__init__(f"--resume: {out} was recorded with other inputs ({differences}); record into another --out")


def record_reference(
    options: RecordOptions,
    *,
    out: Path,
    resume: bool = False,
    backend: Backend | None = None,
    progress: ProgressFactory | None = None,
    on_status: Callable[[str], None] | None = None,
) -> ReferenceManifest:
    """Record the reference answers of ``options`` into ``out`` (resuming a crashed run with ``resume``).

    ``backend`` reuses a loaded HF backend (not closed here); otherwise one is created and closed.
    """
    from hf2vllm.backends.base import backend_class
    from hf2vllm.environment import collect_environment
    from hf2vllm.parity.run import BackendChoice, CompareOptions, _prepare, model_context_length
    from hf2vllm.requests import bundled_prompts_path
    from hf2vllm.server.journal import run_fingerprint

    started = time.perf_counter()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a directory for the reference")
    previous = read_manifest(out) if (out / "manifest.json").is_file() else None
    if previous is not None and not resume:
        state = "a complete" if previous.complete else "an incomplete"
        raise InputError(f"{out} already holds {state} reference: pass --resume to continue it, or choose another --out")
    if backend is None:
        backend_class("hf").check_available()
    if options.ray_workers and backend is not None:
        raise InputError("record: a loaded backend runs in this process; give ray_workers or backend, not both")
    if options.ray_workers:
        from hf2vllm.reference.ray_workers import import_ray

        import_ray()  # before any slow work: without the extra, say how to install it
    choice = BackendChoice(kind="hf", options=dict(options.hf_options), prompt=options.prompt)
    compare_options = CompareOptions(
        model=options.model, prompts=options.prompts, max_new_tokens=options.max_new_tokens, spec=options.spec,
        dtype=options.dtype, limit=options.limit, max_model_len=options.max_model_len, logprobs=options.logprobs,
        reference=choice,
    )
    model_path, tokenizer, spec, prepared = _prepare(compare_options, {"reference": choice})
    if spec.do_sample:
        raise InputError("record: sampled answers cannot be checked token by token; record greedy settings (do_sample=false)")
    requests = prepared["reference"]
    prompts_path = options.prompts or bundled_prompts_path()
    identity = model_fingerprint(model_path, tokenizer)
    prompts = prompts_fingerprint(Path(prompts_path), str(options.prompts) if options.prompts else "bundled",
                                  len(requests), options.limit)
    device = str(options.hf_options.get("device", "cpu"))
    run_key = run_fingerprint(
        identity.model_dump(exclude={"path"}), prompts.model_dump(exclude={"path"}), spec.model_dump(),
        options.prompt.model_dump(), options.dtype, device,
    )
    if previous is not None and previous.run_key != run_key:
        from hf2vllm.reference.against import describe_differences

        found = describe_differences(previous, identity, prompts, spec, options.prompt.model_dump(), options.dtype)
        raise RecordInputsChangedError(out, "; ".join(found) or "device or settings differ")
    if previous is not None and previous.complete:
        return previous  # --resume of a finished record: the same inputs, nothing left to do
    out.mkdir(parents=True, exist_ok=True)
    owned = backend is None
    pool = None
    if options.ray_workers:
        from hf2vllm.reference.ray_workers import RayReference

        if on_status:
            on_status(f"starting {options.ray_workers} hf reference workers on Ray")
        pool = RayReference.start(model_path, options.dtype, options.hf_options, workers=options.ray_workers,
                                  address=options.ray_address, cpus_per_worker=options.ray_worker_cpus,
                                  gpus_per_worker=options.ray_worker_gpus)
    elif backend is None:
        if on_status:
            on_status("loading the hf reference")
        backend = create_backend("hf", model=model_path, dtype=options.dtype, **options.hf_options)
    try:
        described = (pool or backend).describe()  # type: ignore[union-attr]
        context = options.max_model_len or model_context_length(model_path)
        manifest = previous or ReferenceManifest(
            run_key=run_key, backend="hf", backend_options=described, dtype=options.dtype, model=identity,
            prompts=prompts, prompt_options=options.prompt, generation=spec.model_dump(), max_model_len=context,
            environment=collect_environment(model_path, device),
        )
        write_manifest(out, manifest)
        _generate_into(out / REQUESTS, run_key, backend, requests, spec, context, options.chunk_requests, progress,
                       pool=pool, on_status=on_status)
        recorded = read_requests(out, run_key)
        missing = [r.id for r in requests if r.id not in recorded]
        if missing:
            raise InputError(f"record: {len(missing)} requests were not recorded (first {missing[0]!r}); run again with --resume")
        if on_status:
            on_status("hf: measuring its own noise")
        answers = [recorded[r.id].result for r in requests]
        if pool is not None:
            noise = pool.measure_noise(requests, answers, spec, count=options.calibration_requests)
        else:
            noise = measure_noise(backend, requests, answers, spec, count=options.calibration_requests)
    finally:
        if pool is not None:
            pool.close()
        elif owned:
            backend.close()
    spent = (manifest.record_seconds or 0.0) + time.perf_counter() - started
    manifest = manifest.model_copy(update={
        "complete": True, "completed_at": datetime.now(UTC).isoformat(timespec="seconds"), "noise": noise,
        "record_seconds": round(spent, 3),
    })
    write_manifest(out, manifest)
    return manifest


def _generate_into(
    path: Path, run_key: str, backend: Backend | None, requests: Sequence[PreparedRequest], spec: GenerationSpec,
    context: int | None, chunk: int | None, progress: ProgressFactory | None, *, pool: Any = None,
    on_status: Callable[[str], None] | None = None,
) -> None:
    """Generate the requests not yet in the journal at ``path``, one batch at a time, appending each
    (on ``backend``, or over ``pool``'s Ray workers, cut along the same chunks: the same numbers)."""
    from hf2vllm import interrupt
    from hf2vllm.parity import diagnose
    from hf2vllm.server.journal import Journal, read_journal

    journal = Journal.open(path, run_key=run_key, resume=True)  # the manifest check above decided resuming
    interrupt.saves(path, lambda p: f"{len(read_journal(p)[1])} recorded answers in {p} (--resume continues from them)")
    try:
        callback = progress("hf record", len(requests)) if progress and requests else None
        done_before = sum(r.id in journal.done for r in requests)
        if callback and done_before:
            callback(done_before)
        size = chunk or int((pool or backend).describe().get("batch_size") or 8)
        # Chunks are cut from the whole request set, not from what is left, and a chunk with any answer
        # missing runs whole again (its recorded answers are not appended twice): a resumed record computes
        # every request in the batch it would have had in one uninterrupted run, so the numbers are the same.
        ordered = sorted(requests, key=lambda r: len(r.prompt_token_ids))
        by_id = {r.id: r for r in ordered}
        chunks = [ordered[start : start + size] for start in range(0, len(ordered), size)]
        chunks = [c for c in chunks if any(r.id not in journal.done for r in c)]

        def keep(results: list[GenerationResult]) -> None:
            added = 0
            for result in results:
                req = by_id[result.request_id]
                line = RecordedRequest(id=req.id, prompt_token_ids=list(req.prompt_token_ids),
                                       prompt_text=req.prompt_text, source=req.source, result=result)
                added += journal.append(req.id, line.model_dump(mode="json"))
            if callback and added:
                callback(added)

        if pool is not None:
            pool.generate(chunks, spec, context, keep, on_status, done=journal.done)
        else:
            for batch in chunks:
                keep(diagnose.generate_fitting(backend, batch, spec, context, None))
    finally:
        journal.close()


def measure_noise(
    backend: Backend, requests: Sequence[PreparedRequest], results: Sequence[GenerationResult], spec: GenerationSpec,
    *, count: int,
) -> Any:
    """The reference against itself on a sample of its own answers: its full-sequence pass against its
    cached decode (the answers it generated), and ``count`` of them scored again in the other batch layout."""
    from hf2vllm.parity import diagnose
    from hf2vllm.parity.noise import calibration_subset

    answered = [(req, res) for req, res in zip(requests, results, strict=True) if res.output_token_ids]
    if not answered:
        return None
    lengths = [len(req.prompt_token_ids) + len(res.output_token_ids) for req, res in answered]
    sample = [answered[i] for i in calibration_subset(lengths, NOISE_SAMPLE_REQUESTS, budget=NOISE_SAMPLE_TOKENS)]
    top_k = spec.logprobs or 0
    forced = getattr(backend, "teacher_force", None)
    sample_requests = [req for req, _ in sample]
    continuations = [res.output_token_ids for _, res in sample]
    if forced is not None:
        scored = forced(sample_requests, continuations, top_k=top_k, spec=spec)
    else:
        scored = backend.score(sample_requests, continuations, top_k=top_k)
    main = {s.request_id: s for s in scored}
    described = backend.describe()
    return diagnose.calibrate_reference(
        backend, sample_requests, main, {req.id: res.output_token_ids for req, res in sample},
        [res for _, res in sample], count=count, top_k=top_k, dtype=str(described.get("dtype", "float32")),
        device=str(described.get("device", "cpu")),
    )


def record(
    out: str | Path,
    model: str | Path | None = None,
    prompts: str | Path | None = None,
    *,
    max_new_tokens: int = 64,
    hf_kwargs: Any = None,
    generation_config: str | Path | None = None,
    dtype: str = "float32",
    limit: int | None = None,
    max_model_len: int | None = None,
    logprobs: int = 5,
    hf_options: Any = None,
    hf_batch_size: int = 32,
    hf_batch_tokens: int = 16384,
    calibration_requests: int = 16,
    resume: bool = False,
    ray_workers: int | None = None,
    ray_address: str | None = None,
    ray_worker_cpus: float = 1,
    ray_worker_gpus: float | None = None,
    backend: Backend | None = None,
    progress: ProgressFactory | None = None,
    on_status: Callable[[str], None] | None = None,
) -> ReferenceManifest:
    """Record the HF reference of a prompt set into the directory ``out`` (``hf2vllm record``).

    The same arguments as ``hf2vllm.compare`` for the reference side: ``hf_kwargs`` (your ``generate()``
    kwargs, greedy only) or ``max_new_tokens``; ``hf_options`` load and prompt options of the HF side
    (``{"device": "cuda"}``, ``{"chat_template": False}``; generation settings go in ``hf_kwargs``).
    ``resume=True`` continues a run that stopped (the inputs must be the same). ``ray_workers=N`` runs N HF
    replicas on a Ray cluster (``ray_address``, default a local one; needs the ``ray`` extra) with the same
    answers as one process (reference/ray_workers.py). Returns the manifest.
    """
    from hf2vllm import checks
    from hf2vllm.dtypes import normalise_dtype
    from hf2vllm.options import json_object_option, side_assignments
    from hf2vllm.parity.overrides import apply_side_options
    from hf2vllm.parity.run import BackendChoice

    for name, value, minimum in (("--max-new-tokens", max_new_tokens, 1), ("--limit", limit, 1),
                                 ("--logprobs", logprobs, 1), ("--hf-batch-size", hf_batch_size, 1),
                                 ("--hf-batch-tokens", hf_batch_tokens, 1), ("--max-model-len", max_model_len, 2),
                                 ("--calibration-requests", calibration_requests, 1),
                                 ("--ray-workers", ray_workers, 1)):
        checks.number(value, name, minimum=minimum)
    checks.number(ray_worker_cpus, "--ray-worker-cpus", minimum=0, exclusive_minimum=True)
    checks.number(ray_worker_gpus, "--ray-worker-gpus", minimum=0)
    if ray_address and not ray_workers:
        raise InputError("--ray-address: give --ray-workers N too (how many HF replicas to start on that cluster)")
    checks.output_dir(Path(out), "--out")
    if prompts is not None:
        checks.input_file(Path(prompts), "--prompts")
    choice = apply_side_options(
        BackendChoice(kind="hf", options={"batch_size": hf_batch_size, "max_batch_tokens": hf_batch_tokens}),
        side_assignments(hf_options), "--hf-option",
    )
    if choice.generation or choice.decode:
        keys = ", ".join([*choice.generation, *choice.decode])
        raise InputError(f"--hf-option {keys}: a record has one set of generation settings; give them in --hf-kwargs")
    load = dict(choice.options)
    dtype = normalise_dtype(str(load.pop("dtype", dtype)))
    spec = None
    if hf_kwargs is not None or generation_config is not None:
        from hf2vllm.models import resolve_model
        from hf2vllm.translation import spec_for_compare

        settings = json_object_option(hf_kwargs, "--hf-kwargs", example='{"max_new_tokens": 32}') or {}
        spec = spec_for_compare(settings, generation_config, resolve_model(None if model is None else str(model)))
        max_new_tokens = spec.max_new_tokens
    options = RecordOptions(
        model=None if model is None else str(model), prompts=None if prompts is None else Path(prompts),
        max_new_tokens=max_new_tokens, spec=spec, dtype=dtype, limit=limit, max_model_len=max_model_len,
        logprobs=logprobs, hf_options=load, prompt=choice.prompt, calibration_requests=calibration_requests,
        ray_workers=ray_workers, ray_address=ray_address, ray_worker_cpus=ray_worker_cpus,
        ray_worker_gpus=ray_worker_gpus,
    )
    return record_reference(options, out=Path(out), resume=resume, backend=backend, progress=progress,
                            on_status=on_status)
