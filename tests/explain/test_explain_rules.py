"""The pure explanation rules on hand-written inputs: near ties, margins, ranks, statistics, causes."""

from __future__ import annotations

import pytest

from hf2vllm.backends.base import StepLogprobs
from hf2vllm.parity import explain
from hf2vllm.parity.noise import NoiseModel
from hf2vllm.report.schema import SideSetup
from hf2vllm.requests import PromptOptions
from hf2vllm.spec import GenerationSpec


def step(token: int, top: dict[int, float]) -> StepLogprobs:
    return StepLogprobs(token_id=token, logprob=top[token], top=top)


def decode(ids):  # type: ignore[no-untyped-def]
    return "".join(f"<{i}>" for i in ids)


PREFIX_REF = [step(5, {5: -0.10, 6: -2.50}), step(7, {7: -0.30, 8: -1.40})]
PREFIX_CAND = [step(5, {5: -0.101, 6: -2.52}), step(7, {7: -0.31, 8: -1.39})]


NOISE = NoiseModel(measured=0.02, dtype="float32")
"""The reference moved its own logprobs by up to 0.02 (as measured by ``parity.noise``)."""


def test_swap_of_two_tokens_within_twice_the_noise_is_a_near_tie() -> None:
    ref = [*PREFIX_REF, step(11, {11: -0.70, 12: -0.72, 13: -3.0})]
    cand = [*PREFIX_CAND, step(12, {12: -0.70, 11: -0.71, 13: -3.0})]
    d = explain.diagnose_divergence(2, [5, 7, 11], [5, 7, 12], ref, cand, same_prompt=True, noise=NOISE)
    assert d.verdict == "near_tie"
    assert d.reference_margin == pytest.approx(0.02)
    assert d.candidate_rank_of_reference_token == 2


def test_swap_with_a_margin_beyond_twice_the_noise_floor_is_a_mismatch() -> None:
    ref = [*PREFIX_REF, step(11, {11: -0.50, 12: -0.60})]
    cand = [*PREFIX_CAND, step(12, {12: -0.50, 11: -0.60})]
    d = explain.diagnose_divergence(2, [5, 7, 11], [5, 7, 12], ref, cand, same_prompt=True, noise=NOISE)
    assert d.verdict == "mismatch"
    assert "outside" in d.reason


def test_reference_token_outside_candidate_top_k_is_a_mismatch_with_no_rank() -> None:
    ref = [*PREFIX_REF, step(11, {11: -0.70, 12: -0.71})]
    cand = [*PREFIX_CAND, step(12, {12: -0.10, 14: -3.0})]
    d = explain.diagnose_divergence(2, [5, 7, 11], [5, 7, 12], ref, cand, same_prompt=True, noise=NOISE)
    assert d.verdict == "mismatch" and d.candidate_rank_of_reference_token is None


def test_different_prompts_are_never_a_near_tie() -> None:
    ref = [step(11, {11: -0.70, 12: -0.7001})]
    cand = [step(12, {12: -0.70, 11: -0.7001})]
    assert explain.diagnose_divergence(0, [11], [12], ref, cand, same_prompt=False, noise=NOISE).verdict == "mismatch"


def test_side_that_stopped_on_a_token_missing_from_the_other_stop_set_is_named() -> None:
    d = explain.diagnose_divergence(
        2, [5, 2], [5, 2, 9], None, None, same_prompt=True, reference_stop_ids=[2], candidate_stop_ids=[0],
        decode=decode, noise=NOISE,
    )
    assert d.verdict == "mismatch" and "stop set" in d.reason and "<2>" in d.reason


def test_teacher_forcing_statistics_pool_both_directions() -> None:
    gen_ref = [step(1, {1: -0.1, 2: -2.0}), step(3, {3: -0.2, 4: -1.0})]
    cand_on_ref = [step(1, {1: -0.15, 2: -2.0}), step(3, {4: -0.5, 3: -0.9})]
    record, agree = explain.teacher_forcing(gen_ref, cand_on_ref, [], [])
    assert record.reference_output_diff == pytest.approx([-0.05, -0.7])
    assert record.stats.max_abs_diff == pytest.approx(0.7)
    assert record.stats.argmax_agreement == 0.5
    assert agree == [True, False]


def test_percentile_uses_nearest_rank() -> None:
    values = [float(i) for i in range(1, 101)]
    assert explain.percentile(values, 99) == 99.0
    assert explain.percentile([0.5], 99) == 0.5


def test_edit_similarity_is_normalised_levenshtein() -> None:
    assert explain.edit_similarity("", "") == 1.0
    assert explain.edit_similarity("abc", "abc") == 1.0
    assert explain.edit_similarity("abcd", "abxd") == 0.75
    assert explain.edit_similarity("abc", "") == 0.0


@pytest.mark.parametrize(
    ("reference", "candidate", "expected"),
    [
        ([1, 50, 51, 2], [1, 1, 50, 51, 2], "bos_doubled"),
        ([1, 50, 51, 2, 1, 60], [50, 51, 60], "chat_template_differs"),
        ([1, 50, 51, 2], [1, 50, 51, 3], "special_tokens_differ"),
        ([1, 50, 51], [1, 50, 52], "prompt_ids_differ"),
    ],
)
def test_prompt_differences_are_classified(reference, candidate, expected) -> None:  # type: ignore[no-untyped-def]
    kind = explain.classify_prompt_difference(reference, candidate, 1, {1, 2, 3}, decode)
    assert kind is not None and kind[0] == expected


def side(role: str, **changes) -> SideSetup:  # type: ignore[no-untyped-def]
    spec = GenerationSpec.greedy(16, [2])
    values = {"role": role, "backend": "x", "dtype": "float32", "max_model_len": 100,
              "generation": spec.model_dump(), "prompt": PromptOptions()}
    values.update(changes)
    return SideSetup(**values)


def test_identical_sides_have_no_cause() -> None:
    ref, cand = side("reference"), side("candidate")
    assert explain.check_generation_settings(ref, cand) is None
    assert explain.check_stop_sets(ref, cand, decode) is None
    assert explain.check_dtype(ref, cand) is None
    assert explain.check_rope_scaling(ref, cand) is None
    assert explain.check_decoding(ref, cand, []) is None
    assert explain.check_context([ref, cand], {"a": (40, 40)}, 16) is None


def test_greedy_ignores_sampling_knobs_when_comparing_settings() -> None:
    sampled_knob = {**GenerationSpec.greedy(16, [2]).model_dump(), "top_k": 50}
    assert explain.check_generation_settings(side("reference"), side("candidate", generation=sampled_knob)) is None
    penalised = {**GenerationSpec.greedy(16, [2]).model_dump(), "repetition_penalty": 1.3}
    cause = explain.check_generation_settings(side("reference"), side("candidate", generation=penalised))
    assert cause is not None and "repetition_penalty" in cause.evidence[0]


def test_context_check_names_rejected_and_cut_requests() -> None:
    cause = explain.check_context([side("reference"), side("candidate", max_model_len=50)],
                                  {"fits": (20, 20), "cut": (40, 40), "rejected": (60, 60)}, 16)
    assert cause is not None and cause.requests == ["cut", "rejected"]
    assert "rejected" in cause.evidence[1] and "cut at 10 tokens" in cause.evidence[0]


def test_rope_scaling_and_decoding_differences_are_named() -> None:
    rope = explain.check_rope_scaling(side("reference"), side("candidate", rope_scaling={"rope_type": "linear"}))
    assert rope is not None and rope.id == "rope_scaling_differs"
    dec = explain.check_decoding(side("reference"), side("candidate", skip_special_tokens=False), ["r1"])
    assert dec is not None and dec.requests == ["r1"] and "skip_special_tokens" in dec.evidence[0]


def test_a_partial_utf8_character_at_the_cut_is_not_a_decoding_difference() -> None:
    # Real case from the bundled run (multi-ar, cut at 64 tokens): HF decodes the dangling bytes to
    # U+FFFD, vLLM's incremental detokeniser withholds them; the token ids are identical.
    from hf2vllm.parity.explain import same_text

    assert same_text("الأخصرية\ufffd", "الأخصرية")
    assert not same_text("الأخصرية", "الأخصري")


def test_a_divergence_without_a_diagnosis_never_reads_as_match() -> None:
    from hf2vllm.report.schema import RequestComparison

    common = dict(id="r", prompt_tokens=3, reference_text="a", candidate_text="b", reference_finish_reason="length",
                  candidate_finish_reason="length")
    differing = RequestComparison(**common, reference_token_ids=[1, 2], candidate_token_ids=[1, 3], exact_match=False,
                                  first_divergence=1)
    assert differing.verdict == "mismatch"  # e.g. --no-explain: unclassified, not hidden
    equal = RequestComparison(**common, reference_token_ids=[1, 2], candidate_token_ids=[1, 2], exact_match=True,
                              first_divergence=None)
    assert equal.verdict == "match"
    differing.verdict = "near_tie"  # a diagnosis may still classify it afterwards
    assert differing.verdict == "near_tie"
