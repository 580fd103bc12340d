"""Acceptance: faults planted through the user-facing per-side options are detected and named in
report.json, on the bundled model with the real HF model and the real vLLM engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from planted_faults import cause, run_faulted, saved

pytestmark = pytest.mark.engine


def test_chat_template_off_on_vllm_is_named_chat_template_differs(template_fault_report, tmp_path: Path) -> None:
    report = saved(template_fault_report, tmp_path)
    found = cause(report, "chat_template_differs")
    assert sorted(found.requests) == sorted(r.id for r in report.requests)
    for row in report.requests:
        assert row.verdict == "mismatch"
        assert "chat_template_differs" in row.causes
        assert row.candidate_prompt_tokens is not None and row.candidate_prompt_tokens < row.prompt_tokens


def test_doubled_bos_is_named_bos_doubled(hf_backend, vllm_backend, tmp_path: Path) -> None:
    # The classic bug: vLLM is handed the templated text (which starts with BOS) and its tokenizer
    # adds BOS again (a Llama-style tokenizer; here requested with add_bos_token=true).
    report = saved(
        run_faulted(hf_backend, vllm_backend, vllm_tokenize=True, vllm_option=["add_bos_token=true"]), tmp_path
    )
    found = cause(report, "bos_doubled")
    assert sorted(found.requests) == sorted(r.id for r in report.requests)
    assert "BOS twice" in found.evidence[0]
    assert all(r.candidate_prompt_tokens == r.prompt_tokens + 1 for r in report.requests)
    assert all(r.verdict == "mismatch" and "bos_doubled" in r.causes for r in report.requests)


def test_vllm_tokenizing_the_templated_text_itself_matches_on_a_model_without_auto_bos(
    hf_backend, vllm_backend
) -> None:
    # SmolLM2's tokenizer adds no BOS, so vLLM's own tokenisation of the text equals ours: no cause.
    report = run_faulted(hf_backend, vllm_backend, vllm_tokenize=True)
    assert [c.id for c in report.causes if "prompt" in c.id or c.id in ("bos_doubled", "chat_template_differs")] == []
    assert report.sides[1].prompt.backend_tokenizes is True


def test_end_of_turn_token_missing_from_vllm_stop_set_is_named(hf_backend, vllm_backend, tmp_path: Path) -> None:
    report = saved(run_faulted(hf_backend, vllm_backend, vllm_option=["stop_token_ids=[0]"]), tmp_path)
    found = cause(report, "stop_sets_differ")
    assert "'<|im_end|>' (id 2) stops the reference but not the candidate" in found.evidence
    stopped = [r for r in report.requests if r.reference_finish_reason == "stop"]
    assert stopped, "the fault prompts are chosen to end within max_new_tokens"
    for row in stopped:
        assert row.verdict == "mismatch"
        assert row.reference_token_ids[-1] == 2 and len(row.candidate_token_ids) > len(row.reference_token_ids)
        assert "stop set" in row.diagnosis.reason
        assert "stop_sets_differ" in row.causes


def test_different_repetition_penalty_on_vllm_is_named(hf_backend, vllm_backend, tmp_path: Path) -> None:
    report = saved(run_faulted(hf_backend, vllm_backend, vllm_option=["repetition_penalty=1.5"]), tmp_path)
    found = cause(report, "generation_settings_differ")
    assert any(e.startswith("repetition_penalty: reference 1.0, candidate 1.5") for e in found.evidence)
    differing = [r for r in report.requests if r.verdict != "match"]
    assert differing, "a 1.5 penalty changes '2 + 2 = 4' within 16 tokens"
    assert all(r.verdict == "mismatch" and "generation_settings_differ" in r.causes for r in differing)


def test_clean_run_has_no_mismatch_that_is_not_a_near_tie(bundled_report) -> None:
    summary = bundled_report.summary
    assert summary.verdicts["mismatch"] == 0, [
        (r.id, r.diagnosis.reason) for r in bundled_report.requests if r.verdict == "mismatch"
    ]
    assert summary.verdicts["match"] + summary.verdicts["near_tie"] == summary.requests
    assert bundled_report.causes == []
    assert bundled_report.logprobs_mode == "raw_logprobs"  # read back from the engine
    tf = summary.teacher_forcing
    assert tf is not None and tf.tokens > 0 and tf.max_abs_diff < 0.1
    for row in bundled_report.requests:
        assert row.reference_logprobs is not None and len(row.reference_logprobs) == len(row.reference_token_ids)
        assert all(len(s.top) == bundled_report.logprobs_top_k for s in row.candidate_logprobs or [])


def test_looping_candidate_is_flagged_by_the_free_running_check(hf_backend, vllm_backend, tmp_path: Path) -> None:
    # repetition_penalty < 1 rewards repeats: vLLM's own greedy answers loop ("wonderful, wonderful, ...") while
    # HF's do not. Teacher-forced numbers still agree (raw logprobs are untouched by the penalty).
    from hf2vllm.options import per_side_choices
    from hf2vllm.parity.run import BackendChoice, CompareOptions, run_compare

    reference, candidate = per_side_choices(
        [BackendChoice(kind="hf"), BackendChoice(kind="vllm")], [], ["repetition_penalty=0.6"], None, False
    )
    report = saved(run_compare(
        CompareOptions(limit=12, max_new_tokens=32, reference=reference, candidate=candidate, batch_probe_limit=0),
        backends={"reference": hf_backend, "candidate": vllm_backend},
    ), tmp_path)
    collapse = report.run_verdict.collapse
    assert collapse.flagged and collapse.candidate_only >= 5 and collapse.p_value < 0.05
    found = cause(report, "candidate_collapses")
    assert sorted(found.requests) == sorted(collapse.candidate_degenerate)
    assert all(report.requests[i].candidate_degenerate for i, r in enumerate(report.requests) if r.id in found.requests)
    assert not report.run_verdict.within_reference_noise and "collapse" in report.run_verdict.statement
    assert report.summary.teacher_forcing.max_abs_diff < 1e-3  # the numbers agree; the decoding loop does not


def test_clean_run_is_not_flagged_by_the_free_running_check(bundled_report) -> None:
    collapse = bundled_report.run_verdict.collapse
    assert not collapse.flagged and collapse.candidate_only == collapse.reference_only == 0
    assert "candidate_collapses" not in [c.id for c in bundled_report.causes]
