"""Free-running check: does the candidate's own greedy output collapse into repetition more often?

Teacher forcing scores one side's tokens under the other and cannot see damage that lives in the
feedback loop of free-running decoding: once a candidate repeats itself, every later step sees the
repetition and reinforces it (public reports on fp8 KV caches show exactly this while every
teacher-forced check passes). Each side's own output is classified as degenerate or not, and the pairs
are judged with an exact one-sided McNemar test: only requests where exactly one side loops count, and a
handful of benign forks cannot reach significance. Identical outputs are concordant by construction.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

from hf2vllm.report.schema import Cause, CollapseCheck

MAX_PERIOD = 16
MIN_REPEATS = 3
MIN_SPAN = 12


def degenerate_loop(
    token_ids: Sequence[int],
    *,
    max_period: int = MAX_PERIOD,
    min_repeats: int = MIN_REPEATS,
    min_span: int = MIN_SPAN,
    ignore_trailing: Collection[int] = (),
) -> tuple[int, int] | None:
    """``(period, span)`` when the output ENDS in a loop: its last ``span`` tokens repeat with ``period``
    and cover at least ``max(min_repeats * period, min_span)`` tokens; None otherwise.

    >>> degenerate_loop([9, 8] + [1, 2, 3] * 5)
    (3, 15)
    >>> degenerate_loop([4] * 20 + [2], ignore_trailing={2})
    (1, 20)
    >>> degenerate_loop(list(range(30))) is None
    True
    """
    ids = list(token_ids)
    stops = set(ignore_trailing)
    while ids and ids[-1] in stops:
        ids.pop()
    best: tuple[int, int] | None = None
    for period in range(1, max_period + 1):
        if len(ids) <= period:
            break
        # the longest suffix with ids[i] == ids[i - period]
        span = period
        i = len(ids) - 1
        while i - period >= 0 and ids[i] == ids[i - period]:
            span += 1
            i -= 1
        if span >= max(min_repeats * period, min_span) and (best is None or span > best[1]):
            best = (period, span)
    return best


def mcnemar_one_sided(candidate_only: int, reference_only: int) -> float:
    """Exact one-sided McNemar p: P(X >= candidate_only), X ~ Binomial(candidate_only + reference_only, 1/2).

    >>> mcnemar_one_sided(5, 0), mcnemar_one_sided(0, 0), mcnemar_one_sided(3, 3)
    (0.03125, 1.0, 0.65625)
    """
    n = candidate_only + reference_only
    if n == 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(candidate_only, n + 1)) / 2**n


def rule_text() -> str:
    return (
        f"an output is degenerate when it ends in a loop: its last tokens repeat with a period of 1-{MAX_PERIOD} "
        f"tokens over at least {MIN_REPEATS} periods and {MIN_SPAN} tokens (stop tokens at the end ignored)"
    )


def collapse_check(
    pairs: Mapping[str, tuple[Sequence[int], Sequence[int]]],
    *,
    stop_ids: Collection[int] = (),
    alpha: float = 0.05,
) -> CollapseCheck:
    """``pairs``: request id -> (reference output ids, candidate output ids), each side's own greedy output."""
    reference, candidate = [], []
    for request_id, (ref, cand) in pairs.items():
        if degenerate_loop(ref, ignore_trailing=stop_ids):
            reference.append(request_id)
        if degenerate_loop(cand, ignore_trailing=stop_ids):
            candidate.append(request_id)
    cand_only = len(set(candidate) - set(reference))
    ref_only = len(set(reference) - set(candidate))
    p = mcnemar_one_sided(cand_only, ref_only)
    return CollapseCheck(
        rule=rule_text(), reference_degenerate=reference, candidate_degenerate=candidate,
        candidate_only=cand_only, reference_only=ref_only, p_value=round(p, 6),
        flagged=cand_only > ref_only and p < alpha, alpha=alpha,
    )


def collapse_cause(check: CollapseCheck) -> Cause | None:
    """The cause a flagged check adds to the report (None when the check stays quiet)."""
    if not check.flagged:
        return None
    only = [r for r in check.candidate_degenerate if r not in set(check.reference_degenerate)]
    return Cause(
        id="candidate_collapses",
        title="candidate output collapses into repetition",
        evidence=[
            f"{check.candidate_only} request(s) loop on the candidate only, {check.reference_only} on the reference "
            f"only (exact McNemar p={check.p_value:.2g} < {check.alpha}): the candidate's own decoding degenerates",
            "looping on the candidate: " + ", ".join(only[:5]) + (" …" if len(only) > 5 else ""),
        ],
        requests=only,
    )
