"""Noise calibration, the teacher-forced fork and the run-level verdict on hand-made distributions."""

from __future__ import annotations

import pytest

from hf2vllm.backends.base import StepLogprobs
from hf2vllm.parity import explain
from hf2vllm.parity.noise import NoiseModel, calibration, compare_steps, dtype_step
from hf2vllm.parity.run_verdict import run_verdict, survival_curve
from hf2vllm.parity.teacher_forced import find_fork
from hf2vllm.report.schema import DeltaStats


def step(token: int, top: dict[int, float], logits: dict[int, float] | None = None) -> StepLogprobs:
    return StepLogprobs(token_id=token, logprob=top[token], top=top, top_logits=logits)


def test_dtype_step_is_one_unit_in_the_last_place_at_the_logit_size() -> None:
    assert dtype_step("bfloat16", 16.0) == 0.125 and dtype_step("bfloat16", 31.9) == 0.125
    assert dtype_step("bfloat16", 32.0) == 0.25
    assert dtype_step("float16", 16.0) == 2.0**-6
    assert dtype_step("float32", 16.0) == 2.0**-19
    assert dtype_step("bfloat16", 0.0) == 0.0


def test_calibration_takes_the_largest_move_of_the_reference_against_itself() -> None:
    main = [[step(1, {1: -0.10, 2: -2.0}), step(3, {3: -0.5, 4: -0.9})]]
    again = [[step(1, {1: -0.11, 2: -2.0}), step(3, {3: -0.53, 4: -0.9})]]
    decode = [([step(1, {1: -0.10, 2: -2.2})], [step(1, {1: -0.10, 2: -2.0})])]
    cal = calibration(main, again, decode, dtype="bfloat16", device="cpu")
    assert cal.reference_vs_reference.max_abs_diff == pytest.approx(0.03)
    assert cal.prefill_vs_decode is not None and cal.prefill_vs_decode.max_abs_diff == pytest.approx(0.2)
    assert cal.noise == pytest.approx(0.2)  # the larger of the two
    assert cal.requests == 1 and "bfloat16" in cal.resolution_rule


def test_calibration_counts_top1_flips_of_the_reference() -> None:
    stats = compare_steps([([step(1, {1: -0.69, 2: -0.70})], [step(1, {1: -0.70, 2: -0.69})])])
    assert stats.argmax_agreement == 0.0 and stats.max_abs_diff == pytest.approx(0.01)


def test_bf16_tie_at_position_zero_is_a_near_tie_by_the_dtype_resolution() -> None:
    # docs/gpu-validation.md's fact-capital: HF's two top tokens tie exactly, vLLM has them one bf16 step
    # (0.125 at logits ~20) apart. No prefix exists at position 0; the dtype's resolution decides.
    ref = [step(10, {10: -1.94896, 11: -1.94896}, logits={10: 20.1, 11: 20.1})]
    cand = [step(11, {11: -1.80373, 10: -1.92873})]
    noise = NoiseModel(measured=1e-4, dtype="bfloat16")
    d = explain.diagnose_divergence(0, [10], [11], ref, cand, same_prompt=True, noise=noise)
    assert d.verdict == "near_tie" and d.noise_floor == 0.125 and "bfloat16 step" in (d.noise_source or "")
    # the same swap in float32 (steps of ~2e-6) is far outside the noise
    d32 = explain.diagnose_divergence(0, [10], [11], ref, cand, same_prompt=True,
                                      noise=NoiseModel(measured=1e-4, dtype="float32"))
    assert d32.verdict == "mismatch"


def test_measured_noise_decides_where_it_exceeds_the_resolution() -> None:
    ref = [step(10, {10: -0.5, 11: -0.9}, logits={10: 3.0, 11: 2.6})]
    cand = [step(11, {11: -0.5, 10: -0.8})]
    assert explain.diagnose_divergence(0, [10], [11], ref, cand, same_prompt=True,
                                       noise=NoiseModel(measured=0.25, dtype="float32")).verdict == "near_tie"
    assert explain.diagnose_divergence(0, [10], [11], ref, cand, same_prompt=True,
                                       noise=NoiseModel(measured=0.1, dtype="float32")).verdict == "mismatch"


@pytest.mark.parametrize(
    ("candidate", "greedy", "fork"),
    [
        ([5, 6, 2], [5, 6, 2], None),  # reproduced, stop included
        ([5, 7, 2], [5, 6, 2], 1),  # another pick at 1
        ([9], [5], 0),  # fork at the first token
        ([5, 2, 9, 2], [5, 2, 9, 2], 2),  # the reference stops at the first 2, the candidate went on
        ([5, 6], [5, 6], 2),  # the candidate ended early (not a stop of the reference): it would go on
        ([], [], 0),  # no answer at all (the prompt did not fit the candidate)
    ],
)
def test_fork_is_where_the_reference_greedy_decode_leaves_the_answer(candidate, greedy, fork) -> None:  # type: ignore[no-untyped-def]
    assert find_fork(candidate, greedy, stop_ids={2}, min_new_tokens=0, max_new_tokens=8) == fork


def test_fork_respects_min_new_tokens_and_the_length_limit() -> None:
    # with min_new_tokens=3 the reference cannot stop at position 1, so a 2 there is just a token
    assert find_fork([5, 2, 9, 2], [5, 2, 9, 2], stop_ids={2}, min_new_tokens=3, max_new_tokens=8) is None
    assert find_fork([5, 6, 7], [5, 6, 7], stop_ids={2}, min_new_tokens=0, max_new_tokens=3) is None


def test_survival_curve_censors_answers_that_end_without_forking() -> None:
    points = survival_curve([(None, 10), (None, 2), (3, 8), (3, 6), (5, 9)])
    assert [(p.position, p.at_risk) for p in points] == [(0, 5), (3, 4), (5, 2)]
    assert points[1].identical == pytest.approx(0.5)  # 2 of the 4 at risk fork at 3
    assert points[2].identical == pytest.approx(0.25)  # then 1 of 2


def stats(p99: float, agreement: float = 1.0) -> DeltaStats:
    return DeltaStats(tokens=100, max_abs_diff=p99 * 2, mean_abs_diff=p99 / 4, p99_abs_diff=p99,
                      argmax_agreement=agreement)


def test_run_verdict_compares_the_candidate_with_the_reference_against_itself() -> None:
    close = run_verdict(stats(1.8e-5), stats(1.7e-5), resolution_p99=2e-6, survival=[], collapse=None)
    assert close.within_reference_noise and close.statement.startswith("vllm is as close to hf as hf is to itself")
    assert close.p99_ratio == pytest.approx(1.059, abs=1e-3)
    far = run_verdict(stats(0.135, 0.983), stats(0.03, 0.996), resolution_p99=0.0, survival=[], collapse=None)
    assert not far.within_reference_noise and "further" in far.statement and "4.5×" in far.statement


def test_run_verdict_falls_back_to_the_resolution_when_the_reference_reproduces_itself_exactly() -> None:
    verdict = run_verdict(stats(3e-6), stats(0.0), resolution_p99=2e-6, survival=[], collapse=None)
    assert verdict.within_reference_noise and verdict.p99_ratio == pytest.approx(1.5)


def test_a_float32_fork_within_tf32_steps_is_a_near_tie_when_the_candidate_multiplies_in_tf32(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # docs/gpu-validation.md, H100 float32: `reason-compare` forks at position 8 with HF's margin 0.0024
    # (logits ~20), while HF agrees with itself to 7.9e-05: a mismatch for IEEE float32, but one TF32 step
    # at logit 20 is 2^-6, and vLLM's float32 attention on CUDA multiplies in TF32.
    from hf2vllm.backends.vllm_offline import float32_dot_precision
    from hf2vllm.parity.run import verdict_precision
    from hf2vllm.report.schema import SideSetup
    from hf2vllm.requests import PromptOptions

    ref = [step(10, {10: -1.2024, 11: -1.2048}, logits={10: 20.31, 11: 20.30})]
    cand = [step(11, {11: -1.1990, 10: -1.2010})]
    monkeypatch.delenv("TRITON_F32_DEFAULT", raising=False)
    assert float32_dot_precision(on_cpu=False, dtype="float32") == "tf32"
    assert float32_dot_precision(on_cpu=True, dtype="float32") is None  # vLLM's CPU attention: IEEE float32
    assert float32_dot_precision(on_cpu=False, dtype="bfloat16") is None
    monkeypatch.setenv("TRITON_F32_DEFAULT", "ieee")
    assert float32_dot_precision(on_cpu=False, dtype="float32") is None

    def side(role: str, backend: str, dot: str | None) -> SideSetup:
        return SideSetup(role=role, backend=backend, dtype="float32", max_model_len=None, generation={},  # type: ignore[arg-type]
                         prompt=PromptOptions(), dot_precision=dot)

    hf, vllm_cuda, vllm_ieee = side("reference", "hf", None), side("candidate", "vllm", "tf32"), side("candidate", "vllm", None)
    assert verdict_precision(hf, vllm_cuda) == "tf32" and verdict_precision(hf, vllm_ieee) == "float32"
    tf32 = explain.diagnose_divergence(0, [10], [11], ref, cand, same_prompt=True,
                                       noise=NoiseModel(measured=7.9e-5, dtype=verdict_precision(hf, vllm_cuda)))
    assert tf32.verdict == "near_tie" and tf32.noise_floor == 2.0**-6 and "tf32 step" in (tf32.noise_source or "")
    ieee = explain.diagnose_divergence(0, [10], [11], ref, cand, same_prompt=True,
                                       noise=NoiseModel(measured=7.9e-5, dtype=verdict_precision(hf, vllm_ieee)))
    assert ieee.verdict == "mismatch"
    cause = explain.check_dtype(hf, vllm_cuda)
    assert cause is not None and cause.id == "dtype_differs" and "TRITON_F32_DEFAULT=ieee" in cause.evidence[0]
    assert explain.check_dtype(hf, vllm_ieee) is None
