"""Why two backends' outputs differ: pure functions over token ids, logprobs and side setups.

Nothing here loads a model or touches a file; ``parity.run`` gathers the inputs (generation logprobs,
teacher-forced scores, batch re-runs) and these functions turn them into verdicts and causes.

The near-tie rule (also in docs/parity.md). At the first divergence ``d`` of two outputs made from
the same prompt ids, both sides saw the same context, so their distributions at ``d`` are comparable:

- ``noise`` = the noise measured for this run at ``d`` (``parity.noise.NoiseModel``): the larger of the
  reference's largest |Δlogprob| against itself and one dtype step at the position's largest logit;
- ``reference_margin`` = reference logprob of its token − its best other token, at ``d``;
- ``candidate_margin`` = candidate logprob of its token − its logprob of the reference token, at ``d``.

The divergence is a ``near_tie`` when ``0 <= reference_margin <= 2 * noise`` and
``0 <= candidate_margin <= 2 * noise`` (two tokens that can each move by the noise can swap when they
are within twice of it). Everything else is a ``mismatch``: prompts differ, one side stopped where the
other went on, the reference token is outside the candidate's top-k, or a margin exceeds twice the noise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hf2vllm.backends.base import StepLogprobs
from hf2vllm.parity.noise import NEAR_TIE_FACTOR, NoiseModel, top1
from hf2vllm.report.schema import Cause, DeltaStats, DivergenceDiagnosis, SideSetup, TeacherForcing

Decode = Callable[[Sequence[int]], str]


# ----------------------------------------------------------------------------- divergence verdicts
def reference_margin(step: StepLogprobs) -> float | None:
    """Logprob of the chosen token minus the best other token's (None without alternatives)."""
    others = [lp for tok, lp in step.top.items() if tok != step.token_id]
    if not others:
        return None
    return step.logprob - max(others)


def rank_of(step: StepLogprobs, token_id: int) -> int | None:
    """1-based rank of ``token_id`` among the step's top-k (None when outside it)."""
    ranked = sorted(step.top.items(), key=lambda kv: kv[1], reverse=True)
    for rank, (tok, _) in enumerate(ranked, start=1):
        if tok == token_id:
            return rank
    return None


def diagnose_divergence(
    position: int,
    reference_ids: Sequence[int],
    candidate_ids: Sequence[int],
    reference_steps: Sequence[StepLogprobs] | None,
    candidate_steps: Sequence[StepLogprobs] | None,
    *,
    same_prompt: bool,
    reference_stop_ids: Sequence[int] = (),
    candidate_stop_ids: Sequence[int] = (),
    decode: Decode = lambda ids: str(list(ids)),
    noise: NoiseModel,
) -> DivergenceDiagnosis:
    """Apply the near-tie rule of this module's docstring at the first divergence ``position``."""
    ref_tok = reference_ids[position] if position < len(reference_ids) else None
    cand_tok = candidate_ids[position] if position < len(candidate_ids) else None
    ref_step = reference_steps[position] if reference_steps and position < len(reference_steps) else None
    floor, source = noise.at(ref_step)
    limit = NEAR_TIE_FACTOR * floor
    base = {
        "position": position,
        "reference_token_id": ref_tok,
        "candidate_token_id": cand_tok,
        "noise_floor": round(floor, 9),
        "noise_source": source,
    }
    cand_step = candidate_steps[position] if candidate_steps and position < len(candidate_steps) else None
    ref_margin = reference_margin(ref_step) if ref_step else None
    cand_rank = rank_of(cand_step, ref_tok) if cand_step is not None and ref_tok is not None else None
    cand_margin = None
    if cand_step is not None and ref_tok is not None and cand_rank is not None:
        cand_margin = cand_step.logprob - cand_step.top[ref_tok]
    base.update(
        reference_margin=None if ref_margin is None else round(ref_margin, 6),
        candidate_margin=None if cand_margin is None else round(cand_margin, 6),
        candidate_rank_of_reference_token=cand_rank,
    )
    if not same_prompt:
        return DivergenceDiagnosis(
            **base, verdict="mismatch", reason="the two sides were given different prompt token ids"
        )
    if ref_tok is None or cand_tok is None:
        return DivergenceDiagnosis(
            **base, verdict="mismatch",
            reason=_stopped_reason(position, reference_ids, candidate_ids, reference_stop_ids, candidate_stop_ids,
                                   decode),
        )
    if ref_margin is None or (cand_step is not None and cand_margin is None):
        detail = "no logprobs recorded" if ref_margin is None else f"candidate ranks {decode([ref_tok])!r} outside its top-k"
        return DivergenceDiagnosis(**base, verdict="mismatch", reason=detail)
    within_ref = 0.0 <= ref_margin <= limit
    within_cand = cand_margin is None or 0.0 <= cand_margin <= limit
    if within_ref and within_cand:
        reason = (
            f"near tie: reference margin {ref_margin:.4g} and candidate margin "
            f"{cand_margin if cand_margin is not None else float('nan'):.4g} are within 2 × noise {floor:.3g} ({source})"
        )
        return DivergenceDiagnosis(**base, verdict="near_tie", reason=reason)
    which = "reference" if not within_ref else "candidate"
    value = ref_margin if not within_ref else cand_margin
    reason = f"{which} margin {value:.4g} is outside [0, 2 × noise {floor:.3g}] = [0, {limit:.3g}] ({source})"
    # Raw logprobs that rank another token above the one chosen mean something after the logits
    # (a penalty, a bias, sampling) picked the token, not the model's numbers.
    if cand_rank == 1:
        reason += "; the candidate's raw logprobs rank the reference token first, yet it chose another"
    elif ref_margin < 0:
        reason += "; the reference's raw logprobs rank another token above the one it chose"
    return DivergenceDiagnosis(**base, verdict="mismatch", reason=reason)


def _stopped_reason(
    position: int,
    reference_ids: Sequence[int],
    candidate_ids: Sequence[int],
    reference_stop_ids: Sequence[int],
    candidate_stop_ids: Sequence[int],
    decode: Decode,
) -> str:
    ref_stopped = position >= len(reference_ids)
    stopped, went_on = ("reference", "candidate") if ref_stopped else ("candidate", "reference")
    stopped_ids = reference_ids if ref_stopped else candidate_ids
    own_stops, other_stops = (
        (set(reference_stop_ids), set(candidate_stop_ids))
        if ref_stopped
        else (set(candidate_stop_ids), set(reference_stop_ids))
    )
    if position == 0:
        return f"the {stopped} produced no tokens; the {went_on} did"
    last = stopped_ids[position - 1]
    if last in own_stops and last not in other_stops:
        return (
            f"both produced {decode([last])!r} (id {last}) at position {position - 1}; the {stopped} stopped on it, "
            f"the {went_on} does not have it in its stop set and went on"
        )
    return f"the {stopped} ended after {position} tokens (length limit); the {went_on} went on"


# ----------------------------------------------------------------------------- teacher forcing
def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of non-empty ``values``.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
    2.0
    """
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def delta_stats(diffs: Sequence[float], agreements: Sequence[bool]) -> DeltaStats:
    if not diffs:
        return DeltaStats(tokens=0, max_abs_diff=0.0, mean_abs_diff=0.0, p99_abs_diff=0.0, argmax_agreement=1.0)
    absolute = [abs(d) for d in diffs]
    return DeltaStats(
        tokens=len(absolute),
        max_abs_diff=round(max(absolute), 6),
        mean_abs_diff=round(sum(absolute) / len(absolute), 6),
        p99_abs_diff=round(percentile(absolute, 99), 6),
        argmax_agreement=round(sum(agreements) / len(agreements), 4),
    )


def teacher_forcing(
    reference_generated: Sequence[StepLogprobs],
    candidate_scored_reference: Sequence[StepLogprobs],
    candidate_generated: Sequence[StepLogprobs],
    reference_scored_candidate: Sequence[StepLogprobs],
) -> tuple[TeacherForcing, list[bool]]:
    """Pair each side's generation logprobs with the other side's scores of the same tokens.

    Returns the per-request record and the per-position argmax agreements (for pooled statistics).
    """
    ref_diff, cand_diff, agree = [], [], []
    for gen, scored, out in (
        (reference_generated, candidate_scored_reference, ref_diff),
        (candidate_generated, reference_scored_candidate, cand_diff),
    ):
        for g, s in zip(gen, scored, strict=False):
            out.append(round(s.logprob - g.logprob, 6))
            agree.append(top1(g) == top1(s))
    stats = delta_stats(ref_diff + cand_diff, agree)
    return TeacherForcing(reference_output_diff=ref_diff, candidate_output_diff=cand_diff, stats=stats), agree


# ----------------------------------------------------------------------------- text similarity
def edit_similarity(a: str, b: str) -> float:
    """1 − Levenshtein(a, b) / max(len a, len b); 1.0 for two empty strings.

    >>> edit_similarity("kitten", "sitting")
    0.5714
    """
    if a == b:
        return 1.0
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return round(1.0 - previous[-1] / max(len(a), 1), 4)


# ----------------------------------------------------------------------------- cause checks
def classify_prompt_difference(
    reference: Sequence[int], candidate: Sequence[int], bos_id: int | None, special_ids: set[int], decode: Decode
) -> tuple[str, str] | None:
    """Name how two prompts' ids differ: ``(cause id, evidence)``, or None when they are equal."""
    reference, candidate = list(reference), list(candidate)
    if reference == candidate:
        return None
    if bos_id is not None:
        for doubled, other, side in ((candidate, reference, "candidate"), (reference, candidate, "reference")):
            if doubled[:2] == [bos_id, bos_id] and other[:2] != [bos_id, bos_id] and doubled[1:] == other:
                return "bos_doubled", (
                    f"the {side} prompt starts with BOS twice ({decode([bos_id])!r} id {bos_id}); "
                    "the template already adds it and the tokenizer added another"
                )
    ref_special = [t for t in reference if t in special_ids]
    cand_special = [t for t in candidate if t in special_ids]
    ref_plain = [t for t in reference if t not in special_ids]
    cand_plain = [t for t in candidate if t not in special_ids]
    pos = next((i for i, (a, b) in enumerate(zip(reference, candidate, strict=False)) if a != b),
               min(len(reference), len(candidate)))
    where = (
        f"first difference at prompt token {pos}: reference {decode(reference[pos : pos + 4])!r} vs "
        f"candidate {decode(candidate[pos : pos + 4])!r} ({len(reference)} vs {len(candidate)} tokens)"
    )
    if bool(ref_special) != bool(cand_special) or (len(ref_special) > 1) != (len(cand_special) > 1):
        templated = "reference" if len(ref_special) > len(cand_special) else "candidate"
        plain = "candidate" if templated == "reference" else "reference"
        return "chat_template_differs", (
            f"the {templated} prompt has {max(len(ref_special), len(cand_special))} chat-template special tokens, "
            f"the {plain} prompt {min(len(ref_special), len(cand_special))}: one side did not apply the chat "
            f"template; {where}"
        )
    if ref_plain == cand_plain:
        return "special_tokens_differ", f"the same text tokens, different special tokens; {where}"
    return "prompt_ids_differ", where


def check_prompts(
    pairs: dict[str, tuple[Sequence[int], Sequence[int]]], bos_id: int | None, special_ids: set[int], decode: Decode
) -> list[Cause]:
    """One cause per kind of prompt difference, listing the affected requests (first evidence each)."""
    found: dict[str, Cause] = {}
    titles = {
        "bos_doubled": "BOS token doubled",
        "chat_template_differs": "chat template applied on one side only",
        "special_tokens_differ": "special tokens differ",
        "prompt_ids_differ": "prompt token ids differ",
    }
    for request_id, (ref, cand) in pairs.items():
        kind = classify_prompt_difference(ref, cand, bos_id, special_ids, decode)
        if kind is None:
            continue
        cause_id, evidence = kind
        cause = found.setdefault(cause_id, Cause(id=cause_id, title=titles[cause_id]))  # type: ignore[arg-type]
        cause.requests.append(request_id)
        if len(cause.evidence) < 3:
            cause.evidence.append(f"{request_id}: {evidence}")
    return list(found.values())


_NOT_SETTINGS = {"stop_token_ids", "logprobs"}


def check_generation_settings(reference: SideSetup, candidate: SideSetup) -> Cause | None:
    """Effective (canonical) generation settings that differ, stop ids and logprobs aside."""
    from hf2vllm.spec import GenerationSpec

    ref = GenerationSpec(**reference.generation).canonical().model_dump()
    cand = GenerationSpec(**candidate.generation).canonical().model_dump()
    diffs = [f"{k}: reference {ref[k]!r}, candidate {cand[k]!r}" for k in ref if k not in _NOT_SETTINGS and ref[k] != cand[k]]
    if not diffs:
        return None
    return Cause(id="generation_settings_differ", title="effective generation settings differ", evidence=diffs)


def check_stop_sets(reference: SideSetup, candidate: SideSetup, decode: Decode) -> Cause | None:
    ref = set(reference.generation.get("stop_token_ids") or [])
    cand = set(candidate.generation.get("stop_token_ids") or [])
    if ref == cand:
        return None
    evidence = []
    for tok in sorted(ref - cand):
        evidence.append(f"{decode([tok])!r} (id {tok}) stops the reference but not the candidate")
    for tok in sorted(cand - ref):
        evidence.append(f"{decode([tok])!r} (id {tok}) stops the candidate but not the reference")
    return Cause(id="stop_sets_differ", title="stop / end-of-turn token sets differ", evidence=evidence)


def check_dtype(reference: SideSetup, candidate: SideSetup) -> Cause | None:
    if reference.dtype == candidate.dtype and reference.dot_precision == candidate.dot_precision:
        return None
    if reference.dtype == candidate.dtype:
        side = candidate if candidate.dot_precision else reference
        return Cause(
            id="dtype_differs", title="one side multiplies in less precision than its dtype",
            evidence=[f"{side.role} {side.backend} runs {side.dtype} weights but multiplies in {side.dot_precision} "
                      f"(vLLM's float32 attention on CUDA uses Triton's default TF32 dots; TRITON_F32_DEFAULT=ieee "
                      f"in the environment gives IEEE {side.dtype}): near ties within {side.dot_precision} steps "
                      "are counted as noise"],
        )
    return Cause(
        id="dtype_differs", title="weights/activations run in different dtypes",
        evidence=[f"reference {reference.backend} runs {reference.dtype}, candidate {candidate.backend} runs "
                  f"{candidate.dtype}: logprobs differ by the lower precision's rounding and near ties flip"],
    )


def check_context(
    sides: Sequence[SideSetup], prompt_lengths: dict[str, tuple[int, int]], max_new_tokens: int
) -> Cause | None:
    """Requests whose prompt plus ``max_new_tokens`` exceed a side's ``max_model_len``."""
    evidence, affected = [], []
    for index, side in enumerate(sides):
        if side.max_model_len is None:
            continue
        for request_id, lengths in prompt_lengths.items():
            prompt = lengths[index]
            if prompt + max_new_tokens <= side.max_model_len:
                continue
            effect = (
                "the prompt does not fit: the request is rejected"
                if prompt >= side.max_model_len
                else f"the output is cut at {side.max_model_len - prompt} tokens"
            )
            evidence.append(
                f"{request_id}: {prompt} prompt + {max_new_tokens} new tokens > {side.role} {side.backend} "
                f"max_model_len {side.max_model_len}; {effect}"
            )
            if request_id not in affected:
                affected.append(request_id)
    if not affected:
        return None
    return Cause(id="context_too_short", title="max_model_len below the request", evidence=evidence, requests=affected)


def check_rope_scaling(reference: SideSetup, candidate: SideSetup) -> Cause | None:
    if reference.rope_scaling == candidate.rope_scaling:
        return None
    return Cause(
        id="rope_scaling_differs", title="RoPE scaling configuration differs",
        evidence=[f"reference {reference.rope_scaling!r}, candidate {candidate.rope_scaling!r}"],
    )


def same_text(reference: str, candidate: str) -> bool:
    """Texts equal up to a trailing incomplete character.

    Output cut at ``max_new_tokens`` can end inside a multi-byte UTF-8 character: Transformers'
    ``decode`` renders the partial bytes as U+FFFD, vLLM's incremental detokeniser withholds them.
    Same token ids, so that is not a detokenisation difference worth a cause.

    >>> same_text("abc\ufffd", "abc"), same_text("abc", "abd")
    (True, False)
    """
    return reference.rstrip("\ufffd") == candidate.rstrip("\ufffd")


def check_decoding(
    reference: SideSetup, candidate: SideSetup, same_ids_different_text: Sequence[str]
) -> Cause | None:
    """Detokenisation settings that differ, or equal token ids that decoded to different text."""
    evidence = []
    for field in ("skip_special_tokens", "spaces_between_special_tokens"):
        a, b = getattr(reference, field), getattr(candidate, field)
        if a != b:
            evidence.append(f"{field}: reference {a}, candidate {b}")
    if same_ids_different_text:
        evidence.append(
            f"{len(same_ids_different_text)} request(s) with identical token ids decode to different text: "
            + ", ".join(same_ids_different_text[:5])
        )
    if not evidence:
        return None
    return Cause(id="decoding_differs", title="detokenisation differs", evidence=evidence,
                 requests=list(same_ids_different_text))


def causes_for_request(request_id: str, verdict: str, causes: Sequence[Cause]) -> list[str]:
    """Which of the run's causes explain this request: request-scoped causes that list it, and
    run-wide ones (empty ``requests``) for any request that differs."""
    applied = []
    for cause in causes:
        if cause.requests:
            if request_id in cause.requests:
                applied.append(cause.id)
        elif verdict != "match":
            applied.append(cause.id)
    return applied
