"""A/B: two benchmark reports side by side, with ratios and a verdict on run-to-run noise.

The verdict rule (``noise_verdict``), for one quantity measured ``a`` (runs of A) and ``b`` (runs of B):

- ``change = median(b) / median(a) - 1``; ``noise = max(noise_floor, relative spread of a, of b)``
  (relative spread = (max - min) / median over repeats).
- ``|change| <= noise``: **within noise** — the runs cannot tell A and B apart.
- ``|change| > noise`` with at least two repeats on each side whose ranges do not overlap:
  **B better** / **B worse** (direction depends on whether higher is better for the quantity).
- otherwise (too few repeats, or overlapping ranges): **inconclusive** — repeat the runs.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel

from hf2vllm.bench.schema import BenchReport

Verdict = Literal["B better", "B worse", "within noise", "inconclusive"]


class ABRow(BaseModel):
    """One quantity in both runs."""

    section: str
    item: str
    metric: str
    higher_is_better: bool
    a_runs: list[float]
    b_runs: list[float]
    a_median: float
    b_median: float
    ratio_b_over_a: float | None
    noise: float
    verdict: Verdict


class ABComparison(BaseModel):
    a_label: str
    b_label: str
    noise_floor: float
    rows: list[ABRow]


def _relative_spread(values: Sequence[float]) -> float:
    med = statistics.median(values)
    return (max(values) - min(values)) / abs(med) if med else 0.0


def noise_verdict(a: Sequence[float], b: Sequence[float], *, higher_is_better: bool, noise_floor: float) -> tuple[Verdict, float]:
    """The verdict for one quantity (module docstring) and the noise level it used."""
    if not a or not b:
        raise ValueError("noise_verdict needs at least one run on each side")
    med_a, med_b = statistics.median(a), statistics.median(b)
    noise = max(noise_floor, _relative_spread(a), _relative_spread(b))
    if med_a == 0:
        return ("within noise" if med_b == 0 else "inconclusive"), noise
    change = med_b / med_a - 1.0
    if abs(change) <= noise:
        return "within noise", noise
    separated = max(a) < min(b) or max(b) < min(a)
    if len(a) >= 2 and len(b) >= 2 and separated:
        improved = change > 0 if higher_is_better else change < 0
        return ("B better" if improved else "B worse"), noise
    return "inconclusive", noise


def _row(section: str, item: str, metric: str, a: list[float], b: list[float], higher: bool, floor: float) -> ABRow:
    verdict, noise = noise_verdict(a, b, higher_is_better=higher, noise_floor=floor)
    med_a, med_b = statistics.median(a), statistics.median(b)
    return ABRow(section=section, item=item, metric=metric, higher_is_better=higher, a_runs=a, b_runs=b,
                 a_median=med_a, b_median=med_b, ratio_b_over_a=(med_b / med_a) if med_a else None,
                 noise=round(noise, 4), verdict=verdict)


def _load_key(profile: str, load: float) -> str:
    return f"{profile} {'inf' if math.isinf(load) else f'{load:g}'}"


def compare_reports(a: BenchReport, b: BenchReport, *, noise_floor: float = 0.05, a_label: str = "A",
                    b_label: str = "B") -> ABComparison:
    """Pair every quantity present in both reports (offline modes by label, serve points by load)."""
    rows: list[ABRow] = []
    if a.offline and b.offline:
        b_modes = {m.label: m for m in b.offline.modes if m.status == "ok"}
        for ma in a.offline.modes:
            mb = b_modes.get(ma.label)
            if ma.status != "ok" or mb is None:
                continue
            rows.append(_row("offline", ma.label, "output tok/s", ma.repeats or [ma.output_tokens_per_second],
                             mb.repeats or [mb.output_tokens_per_second], True, noise_floor))
    if a.serve and b.serve:
        b_points = {_load_key(p.profile, p.load): p for p in b.serve.points}
        for pa in a.serve.points:
            pb = b_points.get(_load_key(pa.profile, pa.load))
            if pb is None:
                continue
            key = _load_key(pa.profile, pa.load)
            rows.append(_row("serve", key, "output tok/s", [pa.output_tokens_per_second], [pb.output_tokens_per_second],
                             True, noise_floor))
            if pa.ttft_ms and pb.ttft_ms:
                rows.append(_row("serve", key, "median TTFT ms", [pa.ttft_ms.median], [pb.ttft_ms.median], False,
                                 noise_floor))
            if pa.e2e_ms and pb.e2e_ms:
                rows.append(_row("serve", key, "p99 E2E ms", [pa.e2e_ms.p99], [pb.e2e_ms.p99], False, noise_floor))
    if a.crosscheck and b.crosscheck:
        rows.append(_row("serve", "cross-check workload", "output tok/s (repeats)",
                         a.crosscheck.ours.output_tokens_per_second, b.crosscheck.ours.output_tokens_per_second,
                         True, noise_floor))
    return ABComparison(a_label=a_label, b_label=b_label, noise_floor=noise_floor, rows=rows)


def render_comparison(comparison: ABComparison, console: object) -> None:
    from rich.table import Table

    table = Table(title=f"A = {comparison.a_label}   B = {comparison.b_label}   (noise floor "
                        f"{comparison.noise_floor:.0%})")
    for col in ("section", "item", "metric", "A (runs)", "B (runs)", "B/A", "noise", "verdict"):
        table.add_column(col, justify="left" if col in ("section", "item", "metric", "verdict") else "right")
    colors = {"B better": "green", "B worse": "red", "within noise": "dim", "inconclusive": "yellow"}
    for r in comparison.rows:
        ratio = "-" if r.ratio_b_over_a is None else f"{r.ratio_b_over_a:.3f}"
        table.add_row(r.section, r.item, r.metric, ", ".join(f"{v:.1f}" for v in r.a_runs),
                      ", ".join(f"{v:.1f}" for v in r.b_runs), ratio, f"{r.noise:.1%}",
                      f"[{colors[r.verdict]}]{r.verdict}[/]")
    console.print(table)  # type: ignore[attr-defined]
