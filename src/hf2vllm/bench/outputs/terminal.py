"""Rich tables of a ``BenchReport`` for the terminal."""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table

from hf2vllm.bench.schema import BenchReport


def _load_text(profile: str, load: float) -> str:
    if profile == "concurrency":
        return f"c={int(load)}"
    return "rate=inf" if math.isinf(load) else f"rate={load:g}/s"


def _rate(value: float) -> str:
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"


def _ms(stats: object, field: str) -> str:
    return "-" if stats is None else f"{getattr(stats, field):.1f}"


def render_report(report: BenchReport, console: Console) -> None:
    m = report.machine
    console.print(f"[bold]machine[/]: {m.cpu_model}, {m.logical_cpus} CPUs, {m.memory_gib} GiB; "
                  f"load average at start {m.load_average_start}, at end {m.load_average_end}")
    if report.offline is not None:
        off = report.offline
        table = Table(title=f"offline: {off.requests} requests x {off.max_new_tokens} new tokens "
                            f"({'fixed length' if off.fixed_output_length else 'stop at eos'}, {off.dtype})")
        for col in ("mode", "tok/s", "req/s", "total s", "peak RSS MiB", "vs HF batched best", "status"):
            table.add_column(col, justify="left" if col in ("mode", "status") else "right")
        ratios = {s.label: s.ratio_vs_hf_batched_best for s in off.speedups}
        for mode in off.modes:
            ratio = ratios.get(mode.label)
            if mode.status != "ok":
                table.add_row(mode.label, "-", "-", "-", "-", "-", f"{mode.status}: {mode.note or ''}")
                continue
            table.add_row(mode.label, _rate(mode.output_tokens_per_second), _rate(mode.requests_per_second),
                          f"{mode.total_seconds:.2f}", f"{mode.peak_rss_mib:.0f}",
                          "-" if ratio is None else f"{ratio:.2f}x", mode.status)
        console.print(table)
        if off.fairness is not None:
            f = off.fairness
            verdict = "[green]holds[/]" if f.holds else "[red]does not hold[/]"
            console.print(f"fairness: HF batched (bs={f.batch_size}) {_rate(f.hf_batched_tokens_per_second)} tok/s vs "
                          f"plain generate() loop {_rate(f.plain_loop_tokens_per_second)} tok/s "
                          f"({f.explain()}) -> {verdict}")
    if report.serve is not None:
        srv = report.serve
        table = Table(title=f"serve: {srv.url} ({srv.model}), {srv.output_tokens_per_request} tokens/request")
        for col in ("load", "ok/sent", "out tok/s", "req/s", "goodput", "TTFT med/p99 ms", "TPOT med ms",
                    "ITL p99 ms", "E2E med/p99 ms"):
            table.add_column(col, justify="right")
        for p in srv.points:
            good = "-" if p.goodput_requests_per_second is None else f"{p.goodput_requests_per_second:.2f}"
            table.add_row(_load_text(p.profile, p.load), f"{p.completed}/{p.requests}",
                          _rate(p.output_tokens_per_second), _rate(p.requests_per_second), good,
                          f"{_ms(p.ttft_ms, 'median')}/{_ms(p.ttft_ms, 'p99')}", _ms(p.tpot_ms, "median"),
                          _ms(p.itl_ms, "p99"), f"{_ms(p.e2e_ms, 'median')}/{_ms(p.e2e_ms, 'p99')}")
        console.print(table)
        if not srv.slo.is_empty():
            sat = "none held" if srv.saturation_load is None else _load_text(srv.saturation_profile, srv.saturation_load)
            console.print(f"saturation point (SLOs met by >= {srv.slo_attainment_target:.0%} of requests): {sat}")
        if srv.throughput_knee_load is not None:
            console.print(f"throughput knee: {_load_text(srv.saturation_profile, srv.throughput_knee_load)}")
    for curve in report.decay:
        table = Table(title=f"decay: {curve.source} ({curve.sequences} sequences, bucket {curve.bucket_size})")
        for col in ("positions", "tok/s per sequence", "aggregate tok/s", "mean ITL ms"):
            table.add_column(col, justify="right")
        for b in curve.buckets:
            table.add_row(f"{b.start}-{b.end - 1}", _rate(b.tokens_per_second_per_sequence),
                          _rate(b.aggregate_tokens_per_second), f"{b.mean_itl_ms:.1f}")
        console.print(table)
    if report.crosscheck is not None:
        c = report.crosscheck
        verdict = "[green]agree[/]" if c.holds else "[red]disagree[/]"
        console.print(f"cross-check vs vllm bench serve: throughput differs by {c.throughput_relative_difference:.1%}, "
                      f"median TTFT by {c.median_ttft_relative_difference:.1%} (tolerance {c.tolerance:.0%}) -> {verdict}")
    for note in report.notes:
        console.print(f"note: {note}")
