"""Free-running check: does the candidate's own greedy output collapse into repetition more often?

Teacher forcing scores one side's tokens under the other and cannot see damage that lives in the
feedback loop of free-running decoding: once a candidate repeats itself, every later step sees the
repetition and reinforces it (public reports on fp8 KV caches show exactly this while every
teacher-forced check passes). Each side's own output is classified as degenerate or not, and the pairs
are judged with an exact one-sided McNemar test: only requests where exactly one side loops count, and a
handful of benign forks cannot reach significance. Identical outputs are concordant by construction.

Everything here is pure: token ids in, schema models out (no tokenizer, no model).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

from hf2vllm.report.schema import Cause, CollapseCheck

MAX_PERIOD = 16
"""Longest loop period looked for (tokens): covers repeated words, short phrases and list items."""
MIN_REPEATS = 3
"""A loop must cover this many periods: a phrase said twice is ordinary text, three times in a row at the
very end of an answer is not."""
MIN_SPAN = 12
"""...and at least this many tokens, so a short run ("!!!", "...", a few spaces) is not a loop."""
EVIDENCE_IDS = 5
"""Request ids named in a cause's evidence (the cause's ``requests`` lists them all)."""


def degenerate_loop(
    token_ids: Sequence[int],
    *,
    max_period: int = MAX_PERIOD,
    min_repeats: int = MIN_REPEATS,
    min_span: int = MIN_SPAN,
    ignore_trailing: Collection[int] = (),
) -> tuple[int, int] | None:
    """``(period, span)`` when the output ENDS in a loop, else None.

    A loop of period ``p`` (1..``max_period``) is a suffix whose every token equals the token ``p`` before it
    (``ids[i] == ids[i - p]``; a partial last period counts, as decoding may be cut off mid-phrase). It must
    cover at least ``max(min_repeats * p, min_span)`` tokens. Only the end matters: a model that repeats
    itself and then moves on has recovered; one whose answer ends inside the loop has not. Of several
    periods the longest span wins (ties: the shortest period, the loop's own unit rather than a multiple).

    ``ignore_trailing`` (the stop ids) drops ONE final stop token first, so a loop that the stop token
    happened to end still counts; a run of stop tokens that did not end decoding is itself a loop.

    Cost: O(len(token_ids) * max_period), one backward scan per period.

    >>> degenerate_loop([9, 8] + [1, 2, 3] * 5)
    (3, 15)
    >>> degenerate_loop([4] * 20 + [2], ignore_trailing={2})
    (1, 20)
    >>> degenerate_loop([5, 6] * 7 + [5])  # cut off mid-period: still a loop
    (2, 15)
    >>> degenerate_loop(list(range(30))) is None
    True
    >>> degenerate_loop([1, 2, 3, 4, 5, 6, 7] * 2) is None  # said twice: below min_repeats
    True
    """
    if max_period < 1 or min_repeats < 2 or min_span < 1:
        raise ValueError("need max_period >= 1, min_repeats >= 2 and min_span >= 1")
    ids = list(token_ids)
    if ids and ids[-1] in ignore_trailing:
        ids.pop()
    n = len(ids)
    best: tuple[int, int] | None = None
    for period in range(1, min(max_period, n - 1) + 1):
        # The longest periodic suffix: walk back while each token equals the one a period earlier.
        i = n - 1
        while i >= period and ids[i] == ids[i - period]:
            i -= 1
        span = n - 1 - i + period
        if span >= max(min_repeats * period, min_span) and (best is None or span > best[1]):
            best = (period, span)
    return best


def mcnemar_one_sided(candidate_only: int, reference_only: int) -> float:
    """Exact one-sided McNemar p: P(X >= candidate_only), X ~ Binomial(candidate_only + reference_only, 1/2).

    Under "the candidate loops no more often than the reference" each discordant pair is a fair coin, so
    the chance of at least ``candidate_only`` of them going the candidate's way is a binomial tail. Exact
    (integer arithmetic) because the counts are small, where the chi-square approximation is poor.

    >>> mcnemar_one_sided(5, 0), mcnemar_one_sided(7, 1), mcnemar_one_sided(0, 0), mcnemar_one_sided(3, 3)
    (0.03125, 0.03515625, 1.0, 0.65625)
    """
    if candidate_only < 0 or reference_only < 0:
        raise ValueError("counts must be >= 0")
    n = candidate_only + reference_only
    if n == 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(candidate_only, n + 1)) / 2**n


def rule_text(*, max_period: int = MAX_PERIOD, min_repeats: int = MIN_REPEATS, min_span: int = MIN_SPAN) -> str:
    """The loop rule in one sentence, with its numbers (``CollapseCheck.rule``).

    >>> rule_text(max_period=4, min_repeats=3, min_span=10)  # doctest: +ELLIPSIS
    'an output is degenerate when it ends in a loop: ... period of 1-4 tokens ... 3 periods and 10 tokens ...'
    """
    return (
        f"an output is degenerate when it ends in a loop: its last tokens repeat with a period of 1-{max_period} "
        f"tokens over at least {min_repeats} periods and {min_span} tokens (a final stop token ignored)"
    )


def collapse_check(
    pairs: Mapping[str, tuple[Sequence[int], Sequence[int]]],
    *,
    stop_ids: Collection[int] = (),
    alpha: float = 0.05,
) -> CollapseCheck:
    """Classify each side's own greedy output and test the discordant pairs.

    ``pairs``: request id -> (reference output ids, candidate output ids). Flagged only when the candidate
    loops on more requests than the reference AND the one-sided exact McNemar p is below ``alpha``.

    >>> loop, text = [7] * 20, list(range(20))
    >>> check = collapse_check({f"r{i}": (text, loop) for i in range(5)} | {"same": (loop, loop)})
    >>> check.candidate_only, check.reference_only, check.p_value, check.flagged
    (5, 0, 0.03125, True)
    """
    stops = frozenset(stop_ids)
    reference = [rid for rid, (ref, _) in pairs.items() if degenerate_loop(ref, ignore_trailing=stops)]
    candidate = [rid for rid, (_, cand) in pairs.items() if degenerate_loop(cand, ignore_trailing=stops)]
    cand_only = len(set(candidate) - set(reference))
    ref_only = len(set(reference) - set(candidate))
    p = mcnemar_one_sided(cand_only, ref_only)
    return CollapseCheck(
        rule=rule_text(), reference_degenerate=reference, candidate_degenerate=candidate,
        candidate_only=cand_only, reference_only=ref_only, p_value=p,
        flagged=cand_only > ref_only and p < alpha, alpha=alpha,
    )


def candidate_only_requests(check: CollapseCheck) -> list[str]:
    """Requests degenerate on the candidate but not on the reference (in the check's order)."""
    reference = set(check.reference_degenerate)
    return [rid for rid in check.candidate_degenerate if rid not in reference]


def collapse_cause(check: CollapseCheck) -> Cause | None:
    """The ``candidate_collapses`` cause a flagged check adds to the report; None when the check is quiet.

    Its requests are the candidate-only loops: where both sides loop the model itself does, not the engine.
    """
    if not check.flagged:
        return None
    only = candidate_only_requests(check)
    more = len(only) - EVIDENCE_IDS
    shown = ", ".join(only[:EVIDENCE_IDS]) + (f" and {more} more" if more > 0 else "")
    return Cause(
        id="candidate_collapses",
        title="candidate output collapses into repetition",
        evidence=[
            f"{check.candidate_only} request(s) end in a repetition loop on the candidate only, "
            f"{check.reference_only} on the reference only (exact one-sided McNemar p={check.p_value:.3g} "
            f"< alpha {check.alpha:g}): the candidate's own greedy decoding degenerates where the reference's does not",
            f"looping on the candidate only: {shown}",
            f"rule: {check.rule}",
        ],
        requests=only,
    )
