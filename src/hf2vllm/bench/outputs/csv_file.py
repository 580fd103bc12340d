"""CSV views: one file per section (offline modes, serve load levels, decay buckets), flat columns."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from hf2vllm.bench.schema import BenchReport


def offline_rows(report: BenchReport) -> list[dict[str, Any]]:
    if report.offline is None:
        return []
    ratios = {s.label: s.ratio_vs_hf_batched_best for s in report.offline.speedups}
    return [
        {
            "mode": m.mode, "label": m.label, "backend": m.backend, "batch_size": m.batch_size, "status": m.status,
            "requests": m.requests, "output_tokens": m.output_tokens, "total_seconds": m.total_seconds,
            "output_tokens_per_second": m.output_tokens_per_second, "requests_per_second": m.requests_per_second,
            "peak_rss_mib": m.peak_rss_mib, "speedup_vs_hf_batched_best": ratios.get(m.label),
            "repeats_tokens_per_second": " ".join(f"{r:g}" for r in m.repeats),
        }
        for m in report.offline.modes
    ]


def serve_rows(report: BenchReport) -> list[dict[str, Any]]:
    if report.serve is None:
        return []
    rows = []
    for p in report.serve.points:
        row: dict[str, Any] = {
            "profile": p.profile, "load": p.load, "burstiness": p.burstiness, "requests": p.requests,
            "completed": p.completed, "failed": p.failed, "duration_s": round(p.duration_s, 4),
            "output_tokens_per_second": round(p.output_tokens_per_second, 3),
            "requests_per_second": round(p.requests_per_second, 4),
            "goodput_requests_per_second": p.goodput_requests_per_second, "slo_attainment": p.slo_attainment,
        }
        for metric in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
            stats = getattr(p, metric)
            for stat in ("mean", "median", "p90", "p99"):
                row[f"{metric[:-3]}_{stat}_ms"] = None if stats is None else round(getattr(stats, stat), 3)
        rows.append(row)
    return rows


def decay_rows(report: BenchReport) -> list[dict[str, Any]]:
    return [
        {"source": c.source, "bucket_start": b.start, "bucket_end": b.end, "tokens": b.tokens,
         "tokens_per_second_per_sequence": b.tokens_per_second_per_sequence,
         "aggregate_tokens_per_second": b.aggregate_tokens_per_second, "mean_itl_ms": b.mean_itl_ms}
        for c in report.decay for b in c.buckets
    ]


def write_csv(report: BenchReport, directory: Path, stem: str = "bench") -> list[Path]:
    """Write ``<stem>_offline.csv``, ``<stem>_serve.csv``, ``<stem>_decay.csv`` (sections with data only)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for section, rows in (("offline", offline_rows(report)), ("serve", serve_rows(report)),
                          ("decay", decay_rows(report))):
        if not rows:
            continue
        path = directory / f"{stem}_{section}.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        written.append(path)
    return written
