"""The run-level verdict: is the candidate as close to the reference as the reference is to itself?

Per-request verdicts say whether each fork is explained by noise; this says whether the noise level
itself is acceptable. It sets the teacher-forced |Δlogprob| between reference and candidate (same
tokens, same context) next to the reference against itself (``parity.noise``): the candidate passes when
its p99 is within ``NEAR_TIE_FACTOR`` times the reference's own p99 (or the dtype's resolution, where the
reference reproduces itself to the last bit). Fork positions are summarised as a survival curve: the
share of answers still identical through each output position.
"""

from __future__ import annotations

from collections.abc import Sequence

from hf2vllm.parity.noise import NEAR_TIE_FACTOR
from hf2vllm.report.schema import CollapseCheck, DeltaStats, RunVerdict, SurvivalPoint


def survival_curve(forks: Sequence[tuple[int | None, int]]) -> list[SurvivalPoint]:
    """Kaplan-Meier curve of identical answers. ``forks``: per request (fork position or None, length of
    the answer both sides share when they do not fork). An answer that ends without a fork leaves the
    risk set after its last position; one that forks at ``p`` is an event at ``p``.

    >>> [(p.position, p.identical, p.at_risk) for p in survival_curve([(None, 4), (2, 5), (0, 3), (None, 1)])]
    [(0, 1.0, 4), (0, 0.75, 4), (2, 0.375, 2)]
    """
    points = [SurvivalPoint(position=0, identical=1.0, at_risk=len(forks))]
    events = sorted({pos for pos, _ in forks if pos is not None})
    identical = 1.0
    for pos in events:
        at_risk = sum(1 for fork, length in forks if (fork is not None and fork >= pos) or (fork is None and length > pos))
        forked = sum(1 for fork, _ in forks if fork == pos)
        if at_risk:
            identical *= 1.0 - forked / at_risk
        points.append(SurvivalPoint(position=pos, identical=round(identical, 6), at_risk=at_risk))
    return points


def _pct(x: float) -> str:
    return f"{x:.1%}"


def run_verdict(
    reference_vs_candidate: DeltaStats,
    reference_vs_reference: DeltaStats,
    *,
    resolution_p99: float,
    survival: list[SurvivalPoint],
    collapse: CollapseCheck | None,
    names: tuple[str, str] = ("hf", "vllm"),
) -> RunVerdict:
    """Compare the two noise levels; ``resolution_p99`` is the p99 over positions of the dtype's step at
    the largest logit (the floor where the reference reproduces itself exactly)."""
    ref, cand = names
    own = max(reference_vs_reference.p99_abs_diff, resolution_p99)
    ratio = None if own == 0 else round(reference_vs_candidate.p99_abs_diff / own, 3)
    within = reference_vs_candidate.p99_abs_diff <= NEAR_TIE_FACTOR * own if own > 0 else (
        reference_vs_candidate.p99_abs_diff == 0
    )
    evidence = (
        f"p99 |Δlogprob| {reference_vs_candidate.p99_abs_diff:.3g} vs {ref}'s own {own:.3g}"
        + (f" ({ratio:g}×, limit {NEAR_TIE_FACTOR:g}×)" if ratio is not None else "")
        + f"; top-1 agreement {_pct(reference_vs_candidate.argmax_agreement)} vs "
        f"{_pct(reference_vs_reference.argmax_agreement)}"
    )
    if within:
        statement = f"{cand} is as close to {ref} as {ref} is to itself: {evidence}"
    else:
        statement = f"{cand} is further from {ref} than {ref} is from itself: {evidence}"
    if collapse is not None and collapse.flagged:
        # Teacher-forced numbers can agree while free-running decoding degenerates: say which failed.
        statement = (
            f"{cand}'s free-running outputs collapse into repetition more often than {ref}'s "
            f"({collapse.candidate_only} vs {collapse.reference_only} requests, McNemar p={collapse.p_value:.2g}), "
            f"although teacher-forced " + statement.split(": ", 1)[0].replace(f"{cand} is", "it is", 1)
            + ": " + evidence
        )
    return RunVerdict(
        within_reference_noise=within and not (collapse is not None and collapse.flagged),
        statement=statement,
        reference_vs_candidate=reference_vs_candidate,
        reference_vs_reference=reference_vs_reference,
        p99_ratio=ratio,
        survival=survival,
        collapse=collapse,
    )
