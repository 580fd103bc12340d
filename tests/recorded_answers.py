"""Comparing two reference records request by request (a scaled-out record against a one-process one)."""

from __future__ import annotations

import json
from pathlib import Path

from hf2vllm.reference.schema import REQUESTS
from hf2vllm.reference.store import read_manifest, read_requests


def journal_ids(folder: Path) -> list[str]:
    lines = (folder / REQUESTS).read_text().splitlines()
    return [json.loads(line)["id"] for line in lines[1:] if line.strip()]


LOGPROB_ROUNDING = 1e-4
"""How far a logprob may move between two processes that run the same batches: float32 rounding (CPU kernels
split their sums by thread count and by what else runs; measured up to 4.8e-6 under `make test`, bit-equal in
one quiet process), well under HF's own noise (~3e-5 to 4e-5 on this set)."""


def same_answers(folder: Path, expected: Path) -> list[str]:
    """Ids whose recorded answer differs from ``expected``'s: prompt ids, tokens, text or finish reason at
    all, or any logprob by more than float32 rounding (``LOGPROB_ROUNDING``)."""
    got = read_requests(folder, read_manifest(folder).run_key)
    want = read_requests(expected, read_manifest(expected).run_key)
    assert got.keys() == want.keys()

    def differs(a, b) -> bool:  # type: ignore[no-untyped-def]
        exact = ("prompt_token_ids",)
        if any(getattr(a, k) != getattr(b, k) for k in exact):
            return True
        ra, rb = a.result, b.result
        if (ra.output_token_ids, ra.text, ra.finish_reason) != (rb.output_token_ids, rb.text, rb.finish_reason):
            return True
        steps = list(zip(ra.logprobs or [], rb.logprobs or [], strict=True))
        return any(abs(x.logprob - y.logprob) > LOGPROB_ROUNDING for x, y in steps)

    return [rid for rid in want if differs(got[rid], want[rid])]
