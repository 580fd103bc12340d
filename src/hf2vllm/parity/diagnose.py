"""The explanation step of a parity run: teacher-forced scoring, batch probes and cause checks.

``parity.run`` calls these with loaded backends; the verdict and cause logic itself is the pure code
in ``parity.explain``. Each function here does one kind of engine work and returns plain models.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hf2vllm.backends.base import Backend, GenerationResult, ScoredContinuation
from hf2vllm.errors import InputError
from hf2vllm.parity import explain
from hf2vllm.parity.compare import first_divergence
from hf2vllm.parity.noise import NoiseModel, calibration, calibration_subset
from hf2vllm.report.schema import BatchProbe, Cause, DeltaStats, NoiseCalibration, RequestComparison, SideSetup
from hf2vllm.requests import PreparedRequest, PromptOptions
from hf2vllm.spec import GenerationSpec

CONTEXT_LENGTH = "context_length"
"""finish_reason of a request a side could not run because its prompt does not fit max_model_len."""


def rope_scaling(model_path: Path, load_options: dict[str, Any]) -> dict[str, Any] | None:
    """The RoPE scaling a side runs with: the checkpoint's, unless the side's options override it
    (``rope_scaling`` directly or vLLM's ``hf_overrides={"rope_scaling": ...}``)."""
    if "rope_scaling" in load_options:
        return load_options["rope_scaling"]
    overrides = load_options.get("hf_overrides")
    if isinstance(overrides, dict) and "rope_scaling" in overrides:
        return overrides["rope_scaling"]
    config_file = model_path / "config.json"
    if not config_file.is_file():
        return None
    config = json.loads(config_file.read_text())
    value = config.get("rope_scaling") or (config.get("text_config") or {}).get("rope_scaling")
    return value if isinstance(value, dict) else None


def side_setup(
    role: str,
    backend_kind: str,
    described: dict[str, Any],
    load_options: dict[str, Any],
    spec: GenerationSpec,
    prompt: PromptOptions,
    model_path: Path,
    model_context: int | None,
    decode: dict[str, bool],
) -> SideSetup:
    max_len = described.get("max_model_len") or load_options.get("max_model_len") or model_context
    return SideSetup(
        role=role,  # type: ignore[arg-type]
        backend=backend_kind,
        dtype=str(described.get("dtype") or load_options.get("dtype") or "float32"),
        max_model_len=int(max_len) if max_len else None,
        generation=spec.model_dump(),
        prompt=prompt,
        rope_scaling=rope_scaling(model_path, load_options),
        skip_special_tokens=decode.get("skip_special_tokens", True),
        spaces_between_special_tokens=decode.get("spaces_between_special_tokens", True),
        dot_precision=described.get("dot_precision"),
    )


def fits(request: PreparedRequest, max_model_len: int | None) -> bool:
    """vLLM rejects a prompt of max_model_len tokens or more (it needs room for one new token)."""
    return max_model_len is None or len(request.prompt_token_ids) < max_model_len


def generate_fitting(
    backend: Backend,
    requests: Sequence[PreparedRequest],
    spec: GenerationSpec,
    max_model_len: int | None,
    progress: Any = None,
) -> list[GenerationResult]:
    """Generate for the requests whose prompt fits; the others get an empty ``context_length`` result
    (a real engine would reject the whole batch for one such prompt)."""
    runnable = [r for r in requests if fits(r, max_model_len)]
    answered = {r.request_id: r for r in backend.generate(runnable, spec, progress=progress)} if runnable else {}
    if progress and len(runnable) < len(requests):
        progress(len(requests) - len(runnable))
    return [
        answered.get(r.id)
        or GenerationResult(request_id=r.id, output_token_ids=[], text="", finish_reason=CONTEXT_LENGTH)
        for r in requests
    ]


def answer_fits(request: PreparedRequest, answer: Sequence[int], max_model_len: int | None) -> bool:
    """A non-empty answer that a side can score: prompt + answer within its context."""
    return bool(answer) and (max_model_len is None or len(request.prompt_token_ids) + len(answer) <= max_model_len)


def score_where_possible(
    backend: Backend,
    requests: Sequence[PreparedRequest],
    continuations: Sequence[GenerationResult],
    max_model_len: int | None,
    top_k: int,
) -> dict[str, ScoredContinuation]:
    """Teacher-force the other side's outputs on ``backend`` (with this side's own prompts); requests
    whose prompt + continuation exceed this side's context are left out."""
    pairs = [
        (req, res.output_token_ids)
        for req, res in zip(requests, continuations, strict=True)
        if answer_fits(req, res.output_token_ids, max_model_len)
    ]
    if not pairs:
        return {}
    scored = backend.score([p[0] for p in pairs], [p[1] for p in pairs], top_k=top_k)
    return {s.request_id: s for s in scored}


def probe_batches(
    backend: Backend,
    requests: Sequence[PreparedRequest],
    full_batch: Sequence[GenerationResult],
    divergent_ids: Sequence[str],
    spec: GenerationSpec,
) -> dict[str, BatchProbe]:
    """Re-run divergent requests on the candidate alone and as a smaller batch (just those requests)
    and record whether the output changes: batch composition should never change greedy tokens."""
    by_id = {r.id: r for r in requests}
    original = {r.request_id: r.output_token_ids for r in full_batch}
    chosen = [by_id[i] for i in divergent_ids if i in by_id]
    if not chosen:
        return {}
    probes: dict[str, BatchProbe] = {}
    small: dict[str, list[int]] = {}
    if 1 < len(chosen) < len(requests):
        small = {r.request_id: r.output_token_ids for r in backend.generate(chosen, spec)}
    for req in chosen:
        alone = backend.generate([req], spec)[0].output_token_ids
        probes[req.id] = BatchProbe(
            alone_changed=alone != original[req.id],
            small_batch_changed=(small[req.id] != original[req.id]) if small else None,
            small_batch_size=len(chosen) if small else None,
        )
    return probes


def unexplained_forks(
    reference: Sequence[GenerationResult],
    candidate: Sequence[GenerationResult],
    ref_requests: Sequence[PreparedRequest],
    cand_requests: Sequence[PreparedRequest],
    noise: NoiseModel,
) -> list[str]:
    """Requests of ``reference`` whose answer parts from the candidate's by more than a near tie (the ones a
    batch probe can still explain); a prompt the candidate could not run is not among them."""
    cand_by_id = {r.request_id: r for r in candidate}
    ref_prompts = {r.id: list(r.prompt_token_ids) for r in ref_requests}
    cand_prompts = {r.id: list(r.prompt_token_ids) for r in cand_requests}
    found = []
    for ref in reference:
        cand = cand_by_id[ref.request_id]
        position = first_divergence(ref.output_token_ids, cand.output_token_ids)
        if position is None or cand.finish_reason == CONTEXT_LENGTH:
            continue
        same_prompt = ref_prompts[ref.request_id] == list(cand.prompt_token_ids or cand_prompts[ref.request_id])
        verdict = explain.diagnose_divergence(
            position, ref.output_token_ids, cand.output_token_ids, ref.logprobs, cand.logprobs,
            same_prompt=same_prompt, noise=noise,
        ).verdict
        if verdict != "near_tie":
            found.append(ref.request_id)
    return found


def batch_cause(probes: dict[str, BatchProbe]) -> Cause | None:
    changed = [i for i, p in probes.items() if p.alone_changed or p.small_batch_changed]
    if not changed:
        return None
    evidence = [
        f"{i}: output {'changes' if probes[i].alone_changed else 'is the same'} when run alone"
        + (
            ""
            if probes[i].small_batch_changed is None
            else f", {'changes' if probes[i].small_batch_changed else 'is the same'} in a batch of "
            f"{probes[i].small_batch_size}"
        )
        for i in changed
    ]
    return Cause(id="batch_sensitive", title="candidate output depends on batch composition",
                 evidence=evidence, requests=changed)


def explain_rows(
    rows: list[RequestComparison],
    reference: Sequence[GenerationResult],
    candidate: Sequence[GenerationResult],
    ref_requests: Sequence[PreparedRequest],
    cand_requests: Sequence[PreparedRequest],
    sides: tuple[SideSetup, SideSetup],
    scores: tuple[dict[str, ScoredContinuation], dict[str, ScoredContinuation]],
    probes: dict[str, BatchProbe],
    tokenizer: Any,
    max_new_tokens: int,
    noise: NoiseModel,
) -> tuple[list[Cause], DeltaStats]:
    """Fill each row's verdict, diagnosis, similarity and teacher forcing; return the run's causes
    and the pooled teacher-forcing statistics. ``scores`` = (reference scored under the candidate,
    candidate scored under the reference); ``noise`` sets the near-tie threshold."""
    decode = lambda ids: tokenizer.decode(list(ids))  # noqa: E731 - tiny adapter
    ref_prompts = {r.id: list(r.prompt_token_ids) for r in ref_requests}
    cand_prompts = {
        r.id: list(res.prompt_token_ids or r.prompt_token_ids) for r, res in zip(cand_requests, candidate, strict=True)
    }
    ref_by_id = {r.request_id: r for r in reference}
    cand_by_id = {r.request_id: r for r in candidate}
    special = {int(t) for t in getattr(tokenizer, "all_special_ids", [])}
    bos = getattr(tokenizer, "bos_token_id", None)
    ref_side, cand_side = sides
    causes: list[Cause] = explain.check_prompts(
        {i: (ref_prompts[i], cand_prompts[i]) for i in ref_prompts}, bos, special, decode
    )
    for check in (
        explain.check_generation_settings(ref_side, cand_side),
        explain.check_stop_sets(ref_side, cand_side, decode),
        explain.check_dtype(ref_side, cand_side),
        explain.check_context(
            sides, {i: (len(ref_prompts[i]), len(cand_prompts[i])) for i in ref_prompts}, max_new_tokens
        ),
        explain.check_rope_scaling(ref_side, cand_side),
        explain.check_decoding(
            ref_side, cand_side,
            [r.id for r in rows if r.exact_match and not explain.same_text(r.reference_text, r.candidate_text)],
        ),
        batch_cause(probes),
    ):
        if check is not None:
            causes.append(check)
    all_diffs: list[float] = []
    all_agree: list[bool] = []
    for row in rows:
        ref, cand = ref_by_id[row.id], cand_by_id[row.id]
        same_prompt = ref_prompts[row.id] == cand_prompts[row.id]
        if not same_prompt:
            row.candidate_prompt_tokens = len(cand_prompts[row.id])
        row.reference_logprobs = ref.logprobs
        row.candidate_logprobs = cand.logprobs
        row.text_similarity = explain.edit_similarity(row.reference_text, row.candidate_text)
        position = first_divergence(ref.output_token_ids, cand.output_token_ids)
        if position is not None or not same_prompt:
            row.diagnosis = explain.diagnose_divergence(
                position if position is not None else 0,
                ref.output_token_ids,
                cand.output_token_ids,
                ref.logprobs,
                cand.logprobs,
                same_prompt=same_prompt,
                reference_stop_ids=ref_side.generation.get("stop_token_ids") or [],
                candidate_stop_ids=cand_side.generation.get("stop_token_ids") or [],
                decode=decode,
                noise=noise,
            )
            row.verdict = row.diagnosis.verdict
        ref_scored, cand_scored = scores[0].get(row.id), scores[1].get(row.id)
        if ref.logprobs is not None and cand.logprobs is not None and (ref_scored or cand_scored):
            record, agree = explain.teacher_forcing(
                ref.logprobs if ref_scored else [],
                ref_scored.steps if ref_scored else [],
                cand.logprobs if cand_scored else [],
                cand_scored.steps if cand_scored else [],
            )
            row.teacher_forcing = record
            all_diffs.extend(record.reference_output_diff + record.candidate_output_diff)
            all_agree.extend(agree)
        row.causes = explain.causes_for_request(row.id, row.verdict, causes)  # type: ignore[assignment]
    return causes, explain.delta_stats(all_diffs, all_agree)


# ----------------------------------------------------------------------------- logprobs mode
RAW_LOGPROBS = "raw_logprobs"
"""What the reference computes (log-softmax of the raw logits) and vLLM's default ``logprobs_mode``."""


def _has_processors(spec: GenerationSpec) -> bool:
    canonical = spec.canonical()
    return bool(
        canonical.do_sample or canonical.repetition_penalty != 1.0 or canonical.logit_bias
        or canonical.suppress_token_ids or canonical.min_new_tokens or canonical.bad_words_ids
    )


def check_logprobs_mode(mode: str | None, spec: GenerationSpec, where: str) -> None:
    """Refuse numbers that are not the reference's kind: logits, or processed logprobs where processors
    change them (processed equals raw for plain greedy decoding)."""
    if mode is None or mode == RAW_LOGPROBS:
        return
    if mode == "processed_logprobs" and not _has_processors(spec):
        return
    what = "logits, not log-probabilities" if "logits" in mode else "log-probabilities after penalties/sampling"
    raise InputError(
        f"{where}: logprobs_mode={mode!r} returns {what}; the reference computes raw log-probabilities, so the "
        f"numbers would not be comparable. Use logprobs_mode={RAW_LOGPROBS!r} (vLLM's default) on the candidate"
    )


def check_returned_logprobs(results: Sequence[GenerationResult], where: str) -> None:
    """A backend that cannot say its mode (a server): log-probabilities are never positive, logits are."""
    for result in results:
        for step in result.logprobs or []:
            if step.logprob > 1e-4 or any(v > 1e-4 for v in step.top.values()):
                raise InputError(
                    f"{where}: request {result.request_id!r} returned a logprob of {max(step.top.values() or [step.logprob]):.4g} "
                    f"> 0: the server returns logits (logprobs_mode raw_logits/processed_logits); start it with "
                    f"--logprobs-mode {RAW_LOGPROBS} to compare with the reference"
                )


# ----------------------------------------------------------------------------- the reference's own noise
CALIBRATION_TOKEN_BUDGET = 2048
"""Most positions the second scoring pass spends: noise is a per-position property, so long prompts add
cost (their prefill) without adding evidence about the continuation positions."""

def score_again(
    backend: Backend, requests: Sequence[PreparedRequest], continuations: Sequence[Sequence[int]], top_k: int
) -> list[ScoredContinuation]:
    """The same continuations scored once more, each in a batch of its own."""
    forced = getattr(backend, "teacher_force", None)
    if forced is not None:  # the layout the main pass did not use
        return forced(requests, continuations, top_k=top_k, alone=not getattr(backend, "prefers_alone", False))
    return [backend.score([req], [cont], top_k=top_k)[0] for req, cont in zip(requests, continuations, strict=True)]


def calibrate_reference(
    backend: Backend,
    requests: Sequence[PreparedRequest],
    main: dict[str, ScoredContinuation],
    continuations: dict[str, Sequence[int]],
    generated: Sequence[GenerationResult],
    *,
    count: int,
    top_k: int,
    dtype: str,
    device: str,
) -> NoiseCalibration:
    """Measure the reference against itself: ``count`` of the requests it scored (``main``) scored again
    alone, and its generated answers (``generated``) against its full-sequence pass over the same tokens."""
    scored = [r for r in requests if r.id in main and main[r.id].steps]
    lengths = [len(r.prompt_token_ids) + len(continuations[r.id]) for r in scored]
    subset = [scored[i] for i in calibration_subset(lengths, count, budget=CALIBRATION_TOKEN_BUDGET)]
    again = score_again(backend, subset, [continuations[r.id] for r in subset], top_k) if subset else []
    pairs = []
    for result in generated:
        forced = main.get(result.request_id)
        if forced is None or not result.logprobs:
            continue
        same = first_divergence(result.output_token_ids, continuations.get(result.request_id, []))
        shared = len(result.output_token_ids) if same is None else same
        pairs.append((result.logprobs[:shared], forced.steps[:shared]))
    return calibration([main[r.id].steps for r in subset], [a.steps for a in again], pairs, dtype=dtype, device=device)
