"""The greedy verdict by teacher forcing: does the reference reproduce the candidate's answer?

Why this is sound: greedy decoding is a function of the prefix. If at every position of the candidate's
answer the reference's pick (argmax after the logits processors ``generate()`` applies) is the candidate's
token, and the reference stops exactly where the candidate stopped, then the reference's own greedy
decode, step by step, sees the same prefixes and produces the same answer. One batched forward pass
over prompt + answer decides it, instead of one ``generate()`` step per token.

Where it can differ: the reference's full-sequence pass (prefill kernels over all positions at once) and
its cached decode (one position at a time) are different computations; in low precision they can round a
near tie differently. Such a difference is within the reference's own noise by construction, and the
verdict counts it as noise (``parity.noise``); docs/parity.md shows the two paths' verdicts side by side.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from hf2vllm.backends.base import GenerationResult, ScoredContinuation


def find_fork(
    candidate_ids: Sequence[int],
    greedy_ids: Sequence[int],
    *,
    stop_ids: Collection[int],
    min_new_tokens: int,
    max_new_tokens: int,
) -> int | None:
    """First position where the reference's greedy decode would leave the candidate's answer; None when
    it reproduces the answer exactly, its end included.

    >>> find_fork([5, 6, 2], [5, 6, 2], stop_ids={2}, min_new_tokens=0, max_new_tokens=8) is None
    True
    >>> find_fork([5, 7, 2], [5, 6, 2], stop_ids={2}, min_new_tokens=0, max_new_tokens=8)
    1
    >>> find_fork([5, 2, 9], [5, 2, 9], stop_ids={2}, min_new_tokens=0, max_new_tokens=8)  # reference stops at 2
    2
    >>> find_fork([5, 6], [5, 6], stop_ids={2}, min_new_tokens=0, max_new_tokens=8)  # reference would go on
    2
    >>> find_fork([5, 6], [5, 6], stop_ids={2}, min_new_tokens=0, max_new_tokens=2) is None  # both at the limit
    True
    """
    stops = set(stop_ids)
    for pos, (cand, pick) in enumerate(zip(candidate_ids, greedy_ids, strict=False)):
        if cand != pick:
            return pos
        if cand in stops and pos + 1 >= min_new_tokens:
            return None if pos == len(candidate_ids) - 1 else pos + 1
    if len(greedy_ids) < len(candidate_ids):
        return len(greedy_ids)
    return None if len(candidate_ids) >= max_new_tokens else len(candidate_ids)


def reproduced_result(
    candidate: GenerationResult, scored: ScoredContinuation, *, stop_ids: Collection[int], text: str
) -> GenerationResult:
    """The reference's answer when it reproduces the candidate's: the same tokens, with the reference's own
    teacher-forced logprobs (raw, top-k and top logits) at every position."""
    tokens = list(candidate.output_token_ids)
    finish = "stop" if tokens and tokens[-1] in set(stop_ids) else "length"
    return GenerationResult(
        request_id=candidate.request_id, output_token_ids=tokens, text=text, finish_reason=finish,
        logprobs=list(scored.steps),
    )
