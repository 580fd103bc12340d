"""Long-generation decay: decode throughput per output-position bucket, as a curve.

Attention cost grows with the sequence, so later tokens come slower; this shows by how much, per
bucket of ``bucket_size`` output positions. Position 0 (the first token) is prefill, not decode, and is
left out: bucket 0 covers positions 1..bucket_size-1.

``decay_curve`` is pure: it takes each sequence's token arrival times. Sources: ``hf_token_times``
(a Transformers streamer timestamps every decode step of a batch) and a served run's streamed chunk
times (``RequestTiming.token_times``; vLLM streams one token per chunk at this load).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

from hf2vllm.bench.schema import DecayBucket, DecayCurve


def decay_curve(token_times: Sequence[Sequence[float]], bucket_size: int, source: str) -> DecayCurve:
    """Per-bucket decode speed from per-sequence token arrival times (seconds, any common origin).

    ``tokens_per_second_per_sequence``: decode intervals in the bucket / their summed duration (one
    stream's speed). ``aggregate_tokens_per_second``: tokens of all sequences in the bucket / the wall
    time the bucket spans (meaningful for sequences running together).
    """
    if bucket_size < 1:
        raise ValueError("bucket_size must be >= 1")
    longest = max((len(t) for t in token_times), default=0)
    buckets: list[DecayBucket] = []
    for start in range(0, longest, bucket_size):
        end = start + bucket_size
        count = 0
        busy = 0.0
        gaps: list[float] = []
        first_edge: float | None = None
        last_edge: float | None = None
        for times in token_times:
            positions = range(max(start, 1), min(end, len(times)))
            if not positions:
                continue
            for pos in positions:
                gap = times[pos] - times[pos - 1]
                gaps.append(gap)
                busy += gap
                count += 1
            lo, hi = times[positions[0] - 1], times[positions[-1]]
            first_edge = lo if first_edge is None else min(first_edge, lo)
            last_edge = hi if last_edge is None else max(last_edge, hi)
        if count == 0:
            continue
        wall = (last_edge or 0.0) - (first_edge or 0.0)
        buckets.append(
            DecayBucket(
                start=start,
                end=end,
                tokens=count,
                tokens_per_second_per_sequence=count / busy if busy > 0 else 0.0,
                aggregate_tokens_per_second=count / wall if wall > 0 else 0.0,
                mean_itl_ms=statistics.fmean(gaps) * 1000.0,
            )
        )
    ratio = None
    if len(buckets) >= 2 and buckets[0].tokens_per_second_per_sequence > 0:
        ratio = buckets[-1].tokens_per_second_per_sequence / buckets[0].tokens_per_second_per_sequence
    return DecayCurve(
        source=source,
        sequences=len(token_times),
        output_tokens_per_sequence=longest,
        bucket_size=bucket_size,
        buckets=buckets,
        last_to_first_ratio=ratio,
    )


class _StepClock:
    """A Transformers streamer that records when each decode step's tokens arrive.

    ``generate()`` first ``put``s the prompt, then one tensor of new tokens (one per row) per step.
    """

    def __init__(self) -> None:
        self.times: list[float] = []
        self._saw_prompt = False

    def put(self, value: Any) -> None:
        if not self._saw_prompt:
            self._saw_prompt = True
            return
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


def hf_token_times(model: Any, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, pad_token_id: int,
                   eos_token_ids: Sequence[int]) -> list[list[float]]:
    """Generate ``max_new_tokens`` for every prompt in one left-padded batch; each row's token times.

    The length is fixed (``min_new_tokens = max_new_tokens``) so every position exists in every row.
    Rows advance in lockstep, so all rows share the step times.
    """
    import torch

    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long)
    attention = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, ids in enumerate(prompts):
        input_ids[row, width - len(ids) :] = torch.tensor(list(ids), dtype=torch.long)
        attention[row, width - len(ids) :] = 1
    clock = _StepClock()
    with torch.no_grad():
        model.generate(
            input_ids=input_ids, attention_mask=attention, max_new_tokens=max_new_tokens,
            min_new_tokens=max_new_tokens, do_sample=False, temperature=None, top_p=None, top_k=None,
            pad_token_id=pad_token_id, eos_token_id=list(eos_token_ids) or None, streamer=clock,
        )
    return [list(clock.times) for _ in prompts]
