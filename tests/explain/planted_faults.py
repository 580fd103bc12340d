"""Planted-fault comparisons with per-side options given exactly as on the command line."""

from __future__ import annotations

from pathlib import Path

from hf2vllm.report.json_file import read_report, write_report

DATA = Path(__file__).parent / "data"
FAULT_PROMPTS = DATA / "fault_prompts.jsonl"
LONG_PROMPTS = DATA / "long_prompts.jsonl"
FAULT_MAX_NEW_TOKENS = 16
SHORT_MAX_MODEL_LEN = 96
"""Fits the short prompt (~40 tokens + 16 new) but not the long one (~190 tokens)."""


def run_faulted(hf_backend, vllm_backend, *, hf_option=(), vllm_option=(), no_chat_template=None,  # type: ignore[no-untyped-def]
                vllm_tokenize=False, prompts: Path = FAULT_PROMPTS):
    """One comparison with per-side options given exactly as on the command line."""
    from hf2vllm.options import per_side_choices
    from hf2vllm.parity.run import BackendChoice, CompareOptions, run_compare

    reference, candidate = per_side_choices(
        [BackendChoice(kind="hf"), BackendChoice(kind="vllm")],
        list(hf_option), list(vllm_option), no_chat_template, vllm_tokenize,
    )
    options = CompareOptions(
        prompts=prompts, max_new_tokens=FAULT_MAX_NEW_TOKENS, reference=reference, candidate=candidate,
        batch_probe_limit=2,
    )
    return run_compare(options, backends={"reference": hf_backend, "candidate": vllm_backend})


def saved(report, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Round-trip through report.json: the causes must be in the file, not only in memory."""
    return read_report(write_report(report, tmp_path))


def cause(report, cause_id: str):  # type: ignore[no-untyped-def]
    found = [c for c in report.causes if c.id == cause_id]
    assert found, f"{cause_id} not among {[c.id for c in report.causes]}"
    return found[0]
