"""Pure benchmark statistics: percentiles, per-request latencies, goodput, saturation, speedups, spread.

Definitions follow ``vllm bench serve`` so the two tools can be compared number for number:

- TTFT: first streamed token arrival - request start.
- TPOT: (E2E - TTFT) / (output tokens - 1), for requests with more than one output token.
- ITL: gaps between successive streamed chunks.
- E2E: last chunk (request end) - request start.
- Throughput: output tokens (or completed requests) / benchmark duration (first start to last end).
- Goodput: requests meeting every SLO / benchmark duration.

Percentiles interpolate linearly between order statistics (numpy's default, which vLLM uses).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from hf2vllm.bench.schema import SLO, LatencyStats, LoadPointResult, RequestTiming, SpreadStats


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation; raises ValueError on an empty input."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q={q} outside 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_stats(values_ms: Sequence[float]) -> LatencyStats | None:
    """mean/median/p90/p99/min/max/stdev of a latency sample; None when there is nothing to summarise."""
    if not values_ms:
        return None
    return LatencyStats(
        count=len(values_ms),
        mean=statistics.fmean(values_ms),
        median=percentile(values_ms, 50),
        p90=percentile(values_ms, 90),
        p99=percentile(values_ms, 99),
        min=min(values_ms),
        max=max(values_ms),
        stdev=statistics.pstdev(values_ms) if len(values_ms) > 1 else 0.0,
    )


def spread(values: Sequence[float]) -> SpreadStats:
    """Spread of repeated measurements of one quantity."""
    if not values:
        raise ValueError("spread of an empty sequence")
    mean = statistics.fmean(values)
    return SpreadStats(
        count=len(values),
        mean=mean,
        median=percentile(values, 50),
        min=min(values),
        max=max(values),
        stdev=statistics.stdev(values) if len(values) > 1 else 0.0,
        relative_spread=(max(values) - min(values)) / mean if mean else 0.0,
    )


def ttft_ms(timing: RequestTiming) -> float | None:
    return None if timing.first_token is None else (timing.first_token - timing.start) * 1000.0


def e2e_ms(timing: RequestTiming) -> float:
    return (timing.end - timing.start) * 1000.0


def tpot_ms(timing: RequestTiming) -> float | None:
    """Time per output token after the first; None for single-token outputs (undefined, as in vLLM)."""
    if timing.first_token is None or timing.output_tokens <= 1:
        return None
    return (timing.end - timing.first_token) * 1000.0 / (timing.output_tokens - 1)


def itls_ms(timing: RequestTiming) -> list[float]:
    times = timing.token_times
    return [(b - a) * 1000.0 for a, b in zip(times, times[1:], strict=False)]


def meets_slo(timing: RequestTiming, slo: SLO) -> bool:
    """A request meets the SLO when it succeeded and every given bound holds (a bound is inclusive)."""
    if not timing.ok:
        return False
    checks = [
        ("ttft", slo.ttft_ms, ttft_ms(timing)),
        ("tpot", slo.tpot_ms, tpot_ms(timing)),
        ("e2e", slo.e2e_ms, e2e_ms(timing)),
    ]
    for name, bound, value in checks:
        if bound is None:
            continue
        if value is None:
            # A one-token answer has no TPOT: it cannot violate a per-token bound.
            if name == "tpot":
                continue
            return False
        if value > bound:
            return False
    return True


def benchmark_duration(timings: Sequence[RequestTiming]) -> float:
    if not timings:
        return 0.0
    return max(t.end for t in timings) - min(t.start for t in timings)


def summarise_load_point(
    timings: Sequence[RequestTiming],
    *,
    profile: str,
    load: float,
    slo: SLO,
    burstiness: float | None = None,
    duration_s: float | None = None,
    stopped_by_time_cap: bool = False,
) -> LoadPointResult:
    """All metrics of one load level from its request timings (warm-up requests already excluded)."""
    done = [t for t in timings if t.ok]
    duration = duration_s if duration_s is not None else benchmark_duration(timings)
    out_tokens = sum(t.output_tokens for t in done)
    goodput = attainment = None
    if not slo.is_empty():
        good = sum(1 for t in timings if meets_slo(t, slo))
        goodput = good / duration if duration > 0 else 0.0
        attainment = good / len(timings) if timings else 0.0
    return LoadPointResult(
        profile=profile,  # type: ignore[arg-type]
        load=load,
        burstiness=burstiness,
        requests=len(timings),
        completed=len(done),
        failed=len(timings) - len(done),
        duration_s=duration,
        output_tokens=out_tokens,
        output_tokens_per_second=out_tokens / duration if duration > 0 else 0.0,
        requests_per_second=len(done) / duration if duration > 0 else 0.0,
        goodput_requests_per_second=goodput,
        slo_attainment=attainment,
        ttft_ms=latency_stats([v for t in done if (v := ttft_ms(t)) is not None]),
        tpot_ms=latency_stats([v for t in done if (v := tpot_ms(t)) is not None]),
        itl_ms=latency_stats([gap for t in done for gap in itls_ms(t)]),
        e2e_ms=latency_stats([e2e_ms(t) for t in done]),
        stopped_by_time_cap=stopped_by_time_cap,
    )


def saturation_load(points: Sequence[LoadPointResult], attainment_target: float) -> float | None:
    """The highest load at which the SLOs still held, scanning loads upwards and stopping at the first miss.

    "Held" means at least ``attainment_target`` of the requests met every SLO. Stopping at the first miss
    keeps a lucky higher point (noise) from hiding a real failure below it. None: no SLO or none held.
    """
    ordered = sorted(points, key=lambda p: p.load)
    best = None
    for point in ordered:
        if point.slo_attainment is None or point.slo_attainment < attainment_target:
            break
        best = point.load
    return best


def throughput_knee(points: Sequence[LoadPointResult], min_gain: float = 0.10) -> float | None:
    """The load after which raising the load adds less than ``min_gain`` (relative) output throughput."""
    ordered = sorted(points, key=lambda p: p.load)
    if not ordered:
        return None
    for here, nxt in zip(ordered, ordered[1:], strict=False):
        base = here.output_tokens_per_second
        if base <= 0 or (nxt.output_tokens_per_second - base) / base < min_gain:
            return here.load
    return ordered[-1].load


def speedup(tokens_per_second: float, baseline_tokens_per_second: float) -> float:
    """Throughput ratio against a baseline (0 when the baseline produced nothing)."""
    return tokens_per_second / baseline_tokens_per_second if baseline_tokens_per_second > 0 else 0.0


def relative_difference(a: float, b: float) -> float:
    """|a - b| relative to their mean (symmetric, so neither side is privileged)."""
    mean = (a + b) / 2.0
    return abs(a - b) / mean if mean else 0.0
