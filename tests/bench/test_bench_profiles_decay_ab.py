"""Load schedules, the decay curve and the A/B noise verdict: pure functions on hand-written inputs."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hf2vllm.bench.compare_runs import compare_reports, noise_verdict
from hf2vllm.bench.decay import decay_curve
from hf2vllm.bench.serve.profiles import arrival_offsets, parse_number_list

from bench_samples import full_report, offline_report


def test_infinite_rate_sends_everything_at_once() -> None:
    assert arrival_offsets(5, math.inf) == [0.0] * 5


@given(st.integers(min_value=1, max_value=200), st.floats(min_value=0.1, max_value=50),
       st.floats(min_value=0.1, max_value=5))
def test_arrivals_start_at_zero_and_never_go_back(count: int, rate: float, burstiness: float) -> None:
    offsets = arrival_offsets(count, rate, burstiness, seed=3)
    assert len(offsets) == count and offsets[0] == 0.0
    assert all(b >= a for a, b in zip(offsets, offsets[1:], strict=False))


def test_poisson_arrivals_have_the_requested_mean_rate_and_burstiness_changes_spread() -> None:
    n = 4000
    gaps = {}
    for burstiness in (0.25, 1.0, 4.0):
        offsets = arrival_offsets(n, 10.0, burstiness, seed=1)
        diffs = [b - a for a, b in zip(offsets, offsets[1:], strict=False)]
        assert statistics.fmean(diffs) == pytest.approx(0.1, rel=0.1)
        gaps[burstiness] = statistics.pstdev(diffs) / statistics.fmean(diffs)
    # Coefficient of variation of gamma gaps is 1/sqrt(shape): bursty > Poisson (1) > regular.
    assert gaps[0.25] > gaps[1.0] > gaps[4.0]
    assert gaps[1.0] == pytest.approx(1.0, rel=0.15)


def test_arrival_offsets_reject_non_positive_rate() -> None:
    with pytest.raises(ValueError):
        arrival_offsets(3, 0.0)


def test_number_lists_parse_and_name_the_option_on_error() -> None:
    assert parse_number_list("1, 2,4", name="--concurrency") == [1.0, 2.0, 4.0]
    assert parse_number_list("0.5,inf", name="--rate", allow_inf=True) == [0.5, math.inf]
    with pytest.raises(ValueError, match="--rate: 'x'"):
        parse_number_list("1,x", name="--rate")
    with pytest.raises(ValueError, match="--concurrency"):
        parse_number_list("inf", name="--concurrency")
    with pytest.raises(ValueError, match="positive"):
        parse_number_list("-1", name="--rate", allow_inf=True)


def test_decay_curve_buckets_decode_intervals_and_skips_the_prefill_token() -> None:
    # Gaps of 0.1 s up to position 4, then 0.2 s: the last bucket decodes at half the first's speed.
    times = [1.0, 1.1, 1.2, 1.3, 1.4, 1.6, 1.8, 2.0, 2.2]
    curve = decay_curve([times, times], 4, "test")
    first, second, third = curve.buckets
    assert (first.start, first.end, first.tokens) == (0, 4, 6)  # positions 1..3 of two sequences
    assert first.tokens_per_second_per_sequence == pytest.approx(10.0)
    assert second.tokens_per_second_per_sequence == pytest.approx(4 / (0.1 + 0.2 * 3))
    assert third.tokens_per_second_per_sequence == pytest.approx(5.0)
    # Two sequences in lockstep: the aggregate is twice one sequence's speed.
    assert first.aggregate_tokens_per_second == pytest.approx(20.0)
    assert curve.last_to_first_ratio == pytest.approx(0.5)
    assert third.mean_itl_ms == pytest.approx(200.0)


def test_decay_curve_handles_sequences_of_different_length() -> None:
    curve = decay_curve([[0.0, 0.1, 0.2], [0.0, 0.1, 0.2, 0.3, 0.4]], 2, "mixed")
    assert [b.tokens for b in curve.buckets] == [2, 3, 1]
    with pytest.raises(ValueError):
        decay_curve([[0.0, 1.0]], 0, "bad")


def test_noise_verdict_separates_real_changes_from_noise() -> None:
    assert noise_verdict([100, 101, 99], [130, 131, 129], higher_is_better=True, noise_floor=0.05)[0] == "B better"
    assert noise_verdict([100, 101, 99], [130, 131, 129], higher_is_better=False, noise_floor=0.05)[0] == "B worse"
    assert noise_verdict([100, 101, 99], [102, 103, 101], higher_is_better=True, noise_floor=0.05)[0] == "within noise"


def test_noise_verdict_uses_the_measured_spread_when_it_exceeds_the_floor() -> None:
    verdict, noise = noise_verdict([80, 100, 120], [110, 112, 111], higher_is_better=True, noise_floor=0.05)
    assert noise == pytest.approx(0.4)
    assert verdict == "within noise"


def test_noise_verdict_is_inconclusive_without_repeats_or_with_overlap() -> None:
    assert noise_verdict([100], [150], higher_is_better=True, noise_floor=0.05)[0] == "inconclusive"
    # change 110/101 - 1 = 8.9% exceeds the noise (B's spread 9/110 = 8.2%), but the ranges touch at 102.
    assert noise_verdict([100, 101, 102], [102, 110, 111], higher_is_better=True, noise_floor=0.05)[0] == "inconclusive"


def test_compare_reports_pairs_modes_and_load_levels() -> None:
    a, b = offline_report(), offline_report(scale=1.5)
    rows = compare_reports(a, b).rows
    assert {r.item for r in rows} == {m.label for m in a.offline.modes}  # type: ignore[union-attr]
    assert all(r.verdict == "B better" and r.ratio_b_over_a == pytest.approx(1.5) for r in rows)
    same = compare_reports(a, offline_report(scale=1.01)).rows
    assert all(r.verdict == "within noise" for r in same)
    served = compare_reports(full_report(), full_report()).rows
    assert {r.metric for r in served if r.section == "serve"} == {"output tok/s", "median TTFT ms", "p99 E2E ms"}
