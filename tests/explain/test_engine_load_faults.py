"""Acceptance: the faults that need a differently loaded engine (bfloat16 weights, a short
max_model_len) are named in report.json. Their ONE extra engine (explain/conftest.py) and the HF
model are all they use, so under ``make test`` they run in the lane beside the shared engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from planted_faults import LONG_PROMPTS, SHORT_MAX_MODEL_LEN, cause, run_faulted, saved

pytestmark = pytest.mark.engine


def test_bf16_engine_with_short_max_model_len_names_dtype_and_context(
    hf_backend, bf16_short_context_vllm, tmp_path: Path
) -> None:
    report = saved(run_faulted(hf_backend, bf16_short_context_vllm, prompts=LONG_PROMPTS), tmp_path)
    dtype = cause(report, "dtype_differs")
    assert "float32" in dtype.evidence[0] and "bfloat16" in dtype.evidence[0]
    context = cause(report, "context_too_short")
    assert context.requests == ["long-essay"]
    assert f"max_model_len {SHORT_MAX_MODEL_LEN}" in context.evidence[0]
    long_row = next(r for r in report.requests if r.id == "long-essay")
    assert long_row.candidate_finish_reason == "context_length" and long_row.candidate_token_ids == []
    assert long_row.verdict == "mismatch" and "context_too_short" in long_row.causes
    assert report.sides[1].dtype == "bfloat16" and report.sides[1].max_model_len == SHORT_MAX_MODEL_LEN
    # bf16 rounding shows up as a larger teacher-forced logprob difference than float32 parity has.
    short_row = next(r for r in report.requests if r.id == "short")
    assert short_row.teacher_forcing is not None and short_row.teacher_forcing.stats.max_abs_diff > 1e-3
