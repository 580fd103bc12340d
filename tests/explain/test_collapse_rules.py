"""The free-running collapse check on hand-made token ids: loop detection, the exact McNemar p, the verdict."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hf2vllm.parity.collapse import collapse_cause, collapse_check, degenerate_loop, mcnemar_one_sided

STOP = 2
VARIED = random.Random(0).choices(range(100, 400), k=200)
"""Ordinary text stand-in: 200 tokens drawn from a 300-token vocabulary (fixed seed)."""


def block(size: int, start: int = 500) -> list[int]:
    return list(range(start, start + size))


# -- degenerate_loop ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        ([1] * 20, (1, 20)),
        (VARIED[:30] + [7] * 15, (1, 15)),
        (VARIED[:30] + [5, 6] * 10, (2, 20)),
        (VARIED[:30] + block(7) * 4, (7, 28)),
        (VARIED[:30] + block(7) * 4 + block(7)[:3], (7, 31)),  # cut off mid-period
        (VARIED[:30] + block(16) * 3, (16, 48)),
    ],
    ids=["period1-only", "period1", "period2", "period7", "period7-partial", "period16"],
)
def test_loops_at_the_end_are_found_with_their_own_period(ids: list[int], expected: tuple[int, int]) -> None:
    assert degenerate_loop(ids) == expected


def test_a_final_stop_token_does_not_hide_the_loop() -> None:
    ids = VARIED[:30] + [5, 6] * 10 + [STOP]
    assert degenerate_loop(ids) is None
    assert degenerate_loop(ids, ignore_trailing={STOP}) == (2, 20)
    assert degenerate_loop(ids, ignore_trailing=[STOP, 3]) == (2, 20)


def test_only_one_stop_token_is_dropped_so_a_run_of_stops_is_itself_a_loop() -> None:
    assert degenerate_loop(VARIED[:30] + [STOP] * 15, ignore_trailing={STOP}) == (1, 14)


@pytest.mark.parametrize("ids", [VARIED, VARIED[:50], VARIED[:11] + [VARIED[11]], list(range(40))])
def test_ordinary_varied_text_is_not_a_loop(ids: list[int]) -> None:
    assert degenerate_loop(ids) is None


@pytest.mark.parametrize("ids", [[], [1], [1] * 11, [1, 2] * 5 + [1], VARIED[:11]])
def test_outputs_shorter_than_min_span_are_never_loops(ids: list[int]) -> None:
    assert degenerate_loop(ids) is None


def test_thresholds_are_min_span_and_min_repeats() -> None:
    assert degenerate_loop(VARIED[:5] + [1] * 12) == (1, 12)
    assert degenerate_loop(VARIED[:5] + [1] * 11) is None  # 11 < min_span
    assert degenerate_loop(VARIED[:5] + block(5) * 3) == (5, 15)
    assert degenerate_loop(VARIED[:5] + block(5) * 3 + block(5)[:3]) == (5, 18)
    assert degenerate_loop(VARIED[:5] + block(7) * 2) is None  # 14 tokens >= min_span but only 2 periods
    assert degenerate_loop(VARIED[:5] + block(17) * 3) is None  # period beyond max_period
    assert degenerate_loop(VARIED[:5] + block(17) * 3, max_period=17) == (17, 51)
    assert degenerate_loop([1] * 8, min_span=8) == (1, 8)


def test_a_loop_the_model_recovered_from_is_not_degenerate() -> None:
    assert degenerate_loop(VARIED[:20] + [5, 6] * 10 + VARIED[20:40]) is None
    assert degenerate_loop(VARIED[:20] + [9] * 30 + [11]) is None


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="max_period"):
        degenerate_loop([1] * 20, max_period=0)
    with pytest.raises(ValueError, match="min_repeats"):
        degenerate_loop([1] * 20, min_repeats=1)


def _periodic_suffix(ids: list[int], period: int) -> int:
    """Brute force: the longest suffix whose every token equals the one ``period`` before it."""
    n = len(ids)
    return next(
        length for length in range(n, period - 1, -1)
        if all(ids[i] == ids[i - period] for i in range(n - length + period, n))
    )


def _brute_force(ids: list[int]) -> tuple[int, int] | None:
    """The rule as stated (defaults 16 / 3 / 12), without the single backward scan."""
    best = None
    for period in range(1, min(16, len(ids) - 1) + 1):
        span = _periodic_suffix(ids, period)
        if span >= max(3 * period, 12) and (best is None or span > best[1]):
            best = (period, span)
    return best


token_lists = st.one_of(
    st.lists(st.integers(0, 3), max_size=80),
    st.builds(
        lambda prefix, unit, repeats, cut: prefix + (unit * repeats)[: len(unit) * repeats - cut],
        st.lists(st.integers(0, 9), max_size=20),
        st.lists(st.integers(0, 9), min_size=1, max_size=18),
        st.integers(1, 8),
        st.integers(0, 3),
    ),
)


@settings(max_examples=400, deadline=None)
@given(token_lists)
def test_a_reported_loop_really_is_periodic_and_maximal(ids: list[int]) -> None:
    found = degenerate_loop(ids)
    assert found == _brute_force(ids)
    if found is not None:
        period, span = found
        assert 1 <= period <= 16 and span >= max(3 * period, 12) and span <= len(ids)
        tail = ids[len(ids) - span:]
        assert all(tail[i] == tail[i - period] for i in range(period, span))


# -- mcnemar_one_sided -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidate_only", "reference_only", "expected"),
    [
        (5, 0, Fraction(1, 32)),
        (7, 1, Fraction(9, 256)),  # (C(8,7) + C(8,8)) / 2^8
        (0, 0, Fraction(1)),
        (3, 3, Fraction(42, 64)),  # (C(6,3) + C(6,4) + C(6,5) + C(6,6)) / 2^6 = 0.65625
        (2, 0, Fraction(1, 4)),
        (0, 6, Fraction(1)),
        (1, 0, Fraction(1, 2)),
        (6, 0, Fraction(1, 64)),
        (8, 1, Fraction(10, 512)),
    ],
)
def test_exact_one_sided_p_values(candidate_only: int, reference_only: int, expected: Fraction) -> None:
    assert mcnemar_one_sided(candidate_only, reference_only) == pytest.approx(float(expected), rel=1e-12)


def test_p_value_refuses_negative_counts() -> None:
    with pytest.raises(ValueError):
        mcnemar_one_sided(-1, 2)


# -- collapse_check / collapse_cause -----------------------------------------------------------------------


def text(i: int) -> list[int]:
    """A distinct ordinary answer per request, ending with the stop token."""
    return [*random.Random(i).choices(range(100, 400), k=40), STOP]


def looping(i: int) -> list[int]:
    """The same request's answer when it collapses: a phrase repeated until the token budget runs out."""
    return text(i)[:10] + block(4, 600 + i) * 8


def test_six_candidate_only_loops_in_twenty_requests_flag_the_candidate() -> None:
    pairs = {f"r{i:02d}": (text(i), looping(i) if i < 6 else text(i)) for i in range(20)}
    check = collapse_check(pairs, stop_ids={STOP})
    assert check.reference_degenerate == []
    assert check.candidate_degenerate == [f"r{i:02d}" for i in range(6)]
    assert (check.candidate_only, check.reference_only) == (6, 0)
    assert check.p_value == pytest.approx(1 / 64)
    assert check.flagged and check.alpha == 0.05
    assert "16" in check.rule and "3 periods" in check.rule and "12 tokens" in check.rule

    cause = collapse_cause(check)
    assert cause is not None and cause.id == "candidate_collapses"
    assert "repetition" in cause.title
    assert cause.requests == [f"r{i:02d}" for i in range(6)]
    evidence = " ".join(cause.evidence)
    assert "6 request(s)" in evidence and "0 on the reference" in evidence and "p=0.0156" in evidence
    assert all(f"r{i:02d}" in evidence for i in range(5)) and "r05" not in evidence and "1 more" in evidence


def test_identical_looping_outputs_are_concordant_and_never_flag() -> None:
    pairs = {f"r{i:02d}": (looping(i), looping(i)) for i in range(20)}
    check = collapse_check(pairs, stop_ids={STOP})
    assert len(check.reference_degenerate) == len(check.candidate_degenerate) == 20
    assert (check.candidate_only, check.reference_only, check.p_value, check.flagged) == (0, 0, 1.0, False)
    assert collapse_cause(check) is None


def test_two_candidate_only_loops_are_within_chance() -> None:
    pairs = {f"r{i:02d}": (text(i), looping(i) if i < 2 else text(i)) for i in range(20)}
    check = collapse_check(pairs, stop_ids={STOP})
    assert (check.candidate_only, check.reference_only) == (2, 0)
    assert check.p_value == pytest.approx(0.25)
    assert not check.flagged and collapse_cause(check) is None


def test_a_reference_that_loops_more_does_not_flag_the_candidate() -> None:
    pairs = {f"r{i:02d}": (looping(i) if i < 6 else text(i), text(i)) for i in range(20)}
    check = collapse_check(pairs, stop_ids={STOP})
    assert (check.candidate_only, check.reference_only) == (0, 6)
    assert check.p_value == 1.0 and not check.flagged and collapse_cause(check) is None


def test_concordant_loops_do_not_count_and_stop_ids_are_honoured() -> None:
    # 8 candidate-only (their loops end with a stop token), 1 reference-only, 3 where both loop.
    pairs = {f"c{i}": (text(i), [*looping(i), STOP]) for i in range(8)}
    pairs |= {"ref": (looping(50), text(50))}
    pairs |= {f"both{i}": (looping(60 + i), looping(60 + i)) for i in range(3)}
    check = collapse_check(pairs, stop_ids={STOP})
    assert (check.candidate_only, check.reference_only) == (8, 1)
    assert check.p_value == pytest.approx(10 / 512)
    assert check.flagged
    cause = collapse_cause(check)
    assert cause is not None and cause.requests == [f"c{i}" for i in range(8)]
    assert not set(cause.requests) & {"ref", "both0", "both1", "both2"}
    # Without the stop ids the stop token ends every candidate loop: nothing left to flag.
    assert not collapse_check(pairs).flagged


def test_alpha_is_the_threshold() -> None:
    pairs = {f"r{i}": (text(i), looping(i)) for i in range(5)}  # p = 1/32
    assert collapse_check(pairs, stop_ids={STOP}).flagged
    strict = collapse_check(pairs, stop_ids={STOP}, alpha=0.01)
    assert not strict.flagged and strict.alpha == 0.01 and collapse_cause(strict) is None
