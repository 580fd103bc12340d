"""How much numerical noise a verdict must forgive, measured from the reference itself.

Two tokens whose logprobs are closer than the noise of the computation can swap places between two
correct implementations. The noise is never a fixed constant: it is the larger of

- **the reference against itself**: the same token sequences scored by the reference twice, under a
  change that must not matter (each sequence alone instead of in a length-sorted, padded batch), and,
  where the reference generated answers, its cached decode (``generate()``) against its own
  full-sequence pass over the same tokens. The largest |Δlogprob| seen is the noise; and
- **the dtype's resolution** at the size of the logits: one step (unit in the last place) of the dtype
  at the position's largest raw logit. In bf16 a logit near 20 moves in steps of 0.125, so two tokens
  whose logits are one step apart are a tie, whatever the rest of the run shows.

A divergence is a near tie when both margins lie within ``NEAR_TIE_FACTOR`` times that noise (two tokens
that can each move by the noise can swap when they are within twice of it). Position 0 is judged the
same way as every other position: nothing here depends on a matching prefix.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hf2vllm.backends.base import StepLogprobs
from hf2vllm.report.schema import DeltaStats, NoiseCalibration

NEAR_TIE_FACTOR = 2.0

MANTISSA_BITS = {"float32": 23, "tf32": 10, "bfloat16": 7, "float16": 10}
"""Explicit mantissa bits per dtype: one step at magnitude x is 2^(floor(log2 |x|) - bits)."""

CALIBRATION_CHANGE = "each sequence scored alone vs in length-sorted, padded batches"


def dtype_step(dtype: str, magnitude: float) -> float:
    """One step of ``dtype`` at ``magnitude``: the smallest difference it can represent there.

    >>> dtype_step("bfloat16", 20.0), dtype_step("bfloat16", 40.0), dtype_step("float16", 20.0)
    (0.125, 0.25, 0.015625)
    >>> dtype_step("float32", 20.0) == 2.0 ** -19
    True
    """
    bits = MANTISSA_BITS.get(dtype, MANTISSA_BITS["float32"])
    magnitude = abs(magnitude)
    if magnitude == 0.0 or not math.isfinite(magnitude):
        return 0.0
    return 2.0 ** (math.floor(math.log2(magnitude)) - bits)


def coarsest(*precisions: str | None) -> str:
    """The precision with the fewest mantissa bits: the resolution a verdict between two sides must allow.

    >>> coarsest("float32", "tf32"), coarsest("float32", None), coarsest("bfloat16", "tf32")
    ('tf32', 'float32', 'bfloat16')
    """
    known = [p for p in precisions if p]
    return min(known, key=lambda p: MANTISSA_BITS.get(p, MANTISSA_BITS["float32"])) if known else "float32"


def resolution_rule(dtype: str) -> str:
    bits = MANTISSA_BITS.get(dtype, MANTISSA_BITS["float32"])
    return f"one {dtype} step at the position's largest logit x: 2^(floor(log2|x|) - {bits})"


def step_resolution(dtype: str, step: StepLogprobs | None) -> float:
    """The dtype's resolution at this step's largest raw logit (0 when no logits were recorded)."""
    if step is None or not step.top_logits:
        return 0.0
    return dtype_step(dtype, max(abs(v) for v in step.top_logits.values()))


def shared_diffs(a: StepLogprobs, b: StepLogprobs) -> list[float]:
    """|Δlogprob| of every token both steps list (chosen token and top-k)."""
    first = {a.token_id: a.logprob, **a.top}
    second = {b.token_id: b.logprob, **b.top}
    return [abs(lp - second[tok]) for tok, lp in first.items() if tok in second]


def top1(step: StepLogprobs) -> int:
    if step.top:
        return max(step.top.items(), key=lambda kv: kv[1])[0]
    return step.token_id


def compare_steps(pairs: Iterable[tuple[Sequence[StepLogprobs], Sequence[StepLogprobs]]]) -> DeltaStats:
    """|Δlogprob| statistics and top-1 agreement between two scorings of the same positions.

    >>> s = lambda lp: StepLogprobs(token_id=1, logprob=lp, top={1: lp, 2: lp - 1})
    >>> compare_steps([([s(-0.1), s(-0.2)], [s(-0.1), s(-0.25)])]).max_abs_diff
    0.05
    """
    from hf2vllm.parity.explain import delta_stats

    diffs: list[float] = []
    agree: list[bool] = []
    for first, second in pairs:
        for a, b in zip(first, second, strict=False):
            diffs.extend(shared_diffs(a, b))
            agree.append(top1(a) == top1(b))
    return delta_stats(diffs, agree)


@dataclass(frozen=True)
class NoiseModel:
    """The noise verdicts are judged against: the reference's own (``measured``) and the dtype's steps."""

    measured: float
    dtype: str

    def at(self, step: StepLogprobs | None) -> tuple[float, str]:
        """The noise at one position and which term set it."""
        resolution = step_resolution(self.dtype, step)
        if resolution > self.measured:
            logit = max(abs(v) for v in step.top_logits.values()) if step and step.top_logits else 0.0
            return resolution, f"{self.dtype} step {resolution:.3g} at logit {logit:.3g}"
        return self.measured, f"reference vs itself {self.measured:.3g}"


def calibration(
    main: Sequence[Sequence[StepLogprobs]],
    again: Sequence[Sequence[StepLogprobs]],
    prefill_decode: Sequence[tuple[Sequence[StepLogprobs], Sequence[StepLogprobs]]],
    *,
    dtype: str,
    device: str,
) -> NoiseCalibration:
    """Summarise the reference's two scorings (``main`` vs ``again``, same requests in the same order) and
    its generate-vs-full-pass pairs into the run's ``NoiseCalibration``."""
    layout = compare_steps(zip(main, again, strict=True))
    decode = compare_steps(prefill_decode) if prefill_decode else None
    measured = max(layout.max_abs_diff, decode.max_abs_diff if decode and decode.tokens else 0.0)
    return NoiseCalibration(
        change=CALIBRATION_CHANGE,
        dtype=dtype,
        device=device,
        requests=len(main),
        reference_vs_reference=layout,
        prefill_vs_decode=decode if decode and decode.tokens else None,
        noise=round(measured, 6),
        resolution_rule=resolution_rule(dtype),
    )


def calibration_subset(lengths: Sequence[int], count: int, budget: int | None = None) -> list[int]:
    """Indices of ``count`` requests spread evenly over the length order (short and long contexts both),
    the longest dropped while their lengths add up to more than ``budget``.

    >>> calibration_subset([5, 1, 9, 3], 2)
    [1, 2]
    >>> calibration_subset([5, 1], 8)
    [1, 0]
    >>> calibration_subset([5, 1, 9, 3], 4, budget=10)
    [1, 3, 0]
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    if count >= len(order):
        chosen = order
    elif count <= 1:
        chosen = order[-1:] if count == 1 else []
    else:
        chosen = [order[round(k * (len(order) - 1) / (count - 1))] for k in range(count)]
    while budget is not None and len(chosen) > 1 and sum(lengths[i] for i in chosen) > budget:
        chosen = chosen[:-1]
    return chosen
