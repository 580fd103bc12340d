"""Pure benchmark statistics, checked against hand-computed values and numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hf2vllm.bench.metrics import (
    itls_ms,
    latency_stats,
    meets_slo,
    percentile,
    relative_difference,
    saturation_load,
    summarise_load_point,
    throughput_knee,
    tpot_ms,
    ttft_ms,
)
from hf2vllm.bench.schema import SLO, FairnessCheck, RequestTiming

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(finite, min_size=1, max_size=50), st.floats(min_value=0, max_value=100))
def test_percentile_matches_numpy_linear_interpolation(values: list[float], q: float) -> None:
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-9, abs=1e-6)


def test_percentile_of_hand_written_sample() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([10, 20, 30, 40, 50], 90) == 46.0
    assert percentile([7], 99) == 7


def test_percentile_rejects_empty_input_and_bad_q() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_latency_stats_summarise_mean_median_p90_p99() -> None:
    stats = latency_stats([100.0, 200.0, 300.0, 400.0])
    assert stats is not None
    assert (stats.mean, stats.median, stats.min, stats.max, stats.count) == (250.0, 250.0, 100.0, 400.0, 4)
    assert stats.p90 == pytest.approx(370.0)
    assert stats.p99 == pytest.approx(397.0)
    assert latency_stats([]) is None


def timing(start: float, first: float | None, end: float, tokens: int, times: list[float] | None = None,
           ok: bool = True) -> RequestTiming:
    return RequestTiming(start=start, first_token=first, end=end, output_tokens=tokens, token_times=times or [], ok=ok)


def test_ttft_tpot_itl_follow_vllm_definitions() -> None:
    t = timing(1.0, 1.2, 1.5, 4, [1.2, 1.3, 1.4, 1.5])
    assert ttft_ms(t) == pytest.approx(200.0)
    # TPOT excludes the first token: (E2E - TTFT) / (tokens - 1) = 300 ms / 3.
    assert tpot_ms(t) == pytest.approx(100.0)
    assert itls_ms(t) == pytest.approx([100.0, 100.0, 100.0])


def test_tpot_is_undefined_for_a_single_token_answer() -> None:
    assert tpot_ms(timing(0.0, 0.5, 0.5, 1, [0.5])) is None


def test_meets_slo_requires_every_given_bound_and_success() -> None:
    t = timing(0.0, 0.2, 1.0, 5)
    assert meets_slo(t, SLO(ttft_ms=200.0))  # bounds are inclusive
    assert not meets_slo(t, SLO(ttft_ms=199.0))
    assert meets_slo(t, SLO(ttft_ms=300.0, tpot_ms=200.0, e2e_ms=1000.0))
    assert not meets_slo(t, SLO(ttft_ms=300.0, tpot_ms=199.0))
    assert not meets_slo(timing(0.0, 0.1, 0.2, 2, ok=False), SLO(ttft_ms=1e9))
    assert meets_slo(timing(0.0, 0.1, 0.1, 1), SLO(tpot_ms=1.0))


def test_load_point_throughput_goodput_and_failures() -> None:
    timings = [
        timing(0.0, 0.1, 1.0, 10),
        timing(0.5, 0.9, 2.0, 10),  # TTFT 400 ms: misses a 300 ms SLO
        timing(1.0, 1.0, 1.5, 0, ok=False),
    ]
    point = summarise_load_point(timings, profile="concurrency", load=2, slo=SLO(ttft_ms=300.0))
    assert point.duration_s == pytest.approx(2.0)
    assert point.output_tokens == 20
    assert point.output_tokens_per_second == pytest.approx(10.0)
    assert point.requests_per_second == pytest.approx(1.0)
    assert (point.completed, point.failed) == (2, 1)
    assert point.goodput_requests_per_second == pytest.approx(0.5)
    assert point.slo_attainment == pytest.approx(1 / 3)
    assert point.ttft_ms is not None and point.ttft_ms.median == pytest.approx(250.0)


def test_goodput_is_absent_without_slo() -> None:
    point = summarise_load_point([timing(0.0, 0.1, 1.0, 3)], profile="rate", load=1.0, slo=SLO())
    assert point.goodput_requests_per_second is None and point.slo_attainment is None


def _point(load: float, attainment: float | None, tps: float):  # type: ignore[no-untyped-def]
    point = summarise_load_point([timing(0.0, 0.1, 1.0, int(tps))], profile="concurrency", load=load, slo=SLO())
    return point.model_copy(update={"slo_attainment": attainment})


def test_saturation_point_is_the_last_load_before_the_first_slo_miss() -> None:
    points = [_point(1, 1.0, 10), _point(2, 0.95, 18), _point(4, 0.5, 25), _point(8, 0.95, 26)]
    # Load 8 meeting the SLO after load 4 missed it is noise, not capacity.
    assert saturation_load(points, 0.9) == 2
    assert saturation_load([_point(1, 0.2, 10)], 0.9) is None
    assert saturation_load([_point(1, None, 10)], 0.9) is None


def test_throughput_knee_is_where_more_load_stops_paying() -> None:
    points = [_point(1, None, 10), _point(2, None, 19), _point(4, None, 20), _point(8, None, 21)]
    assert throughput_knee(points) == 2
    assert throughput_knee([_point(1, None, 10), _point(2, None, 30)]) == 2
    assert throughput_knee([]) is None


@given(st.floats(min_value=0.001, max_value=1e6), st.floats(min_value=0.001, max_value=1e6))
def test_relative_difference_is_symmetric_and_bounded(a: float, b: float) -> None:
    assert relative_difference(a, b) == pytest.approx(relative_difference(b, a))
    assert 0.0 <= relative_difference(a, b) < 2.0
    assert relative_difference(a, a) == 0.0
    assert not math.isnan(relative_difference(a, b))


def _fairness_of(batched: list[float], plain: list[float]) -> FairnessCheck | None:
    """A best HF batch row (sweep timing first, then one per pair) and the plain loop's row."""
    from bench_samples import mode

    from hf2vllm.bench.offline import fairness

    rows = [mode("hf_batched", "HF batched (bs=16)", "hf", 16, batched),
            mode("hf_plain_loop", "plain HF loop (bs=16)", "hf", 16, plain)]
    return fairness(rows, tolerance=0.05)


def test_sign_test_p_is_the_binomial_tail() -> None:
    from hf2vllm.bench.offline import sign_test_p

    assert sign_test_p(8, 8) == 1 / 256
    assert sign_test_p(7, 8) == 9 / 256
    assert sign_test_p(0, 8) == 1.0


def test_fairness_fails_a_loop_that_wins_nearly_every_pair_by_more_than_the_tolerance() -> None:
    # A handicapped HF path: 10-15% slower than the loop in 7 of 8 pairs.
    plain = [60.0] * 8
    check = _fairness_of([55.0, 52, 53, 51, 54, 52, 61, 53, 51], plain)
    assert check is not None and check.loop_faster_pairs == 7 and check.sign_test_p == round(9 / 256, 4)
    assert check.ratio < 0.95 and not check.within_noise and not check.holds


def test_fairness_counts_a_median_below_the_tolerance_as_noise_when_the_loop_won_no_more_than_chance() -> None:
    # Same work on both sides, a noisy machine: the loop wins 5 of 8 pairs, the median dips below 0.95.
    ratios = [1.09, 0.93, 0.87, 0.94, 0.94, 1.04, 1.02, 0.90]
    check = _fairness_of([60.0] + [60.0 * r for r in ratios], [60.0] * 8)
    assert check is not None and check.loop_faster_pairs == 5 and check.ratio < 0.95
    assert check.sign_test_p is not None and check.sign_test_p >= 0.05
    assert check.within_noise and check.holds
    assert "faster in 5 of 8 pairs" in check.explain()


def test_fairness_with_too_few_pairs_for_the_sign_test_uses_the_tolerance_alone() -> None:
    # Four pairs: even a clean sweep by the loop has p = 1/16, so the test cannot judge them.
    ratios = [1.086, 0.928, 0.873, 0.971]
    check = _fairness_of([60.0] + [60.0 * r for r in ratios], [60.0] * 4)
    assert check is not None and check.sign_test_p is None and check.ratio == 0.9495
    assert not check.within_noise and not check.holds
