"""Parse the figures vLLM writes to its log: start-up KV capacity and the periodic stats line.

The patterns follow vllm 0.32's format strings:

* ``update_kv_cache_capacity``: ``"%s KV cache size: %s tokens, Maximum concurrency for %s tokens
  per request: %.2fx"`` (``GPU``/``CPU`` prefix, thousands separators). vLLM 0.26 (the CUDA build
  of docs/gpu-validation.md) logs the same two figures on two separate lines.
* CPU worker: ``"Explicitly set (X/Y) GiB for KV cache"`` or ``"Auto set (X/Y) GiB for KV cache"``;
  GPU worker: ``"Available KV cache memory: X GiB"``, or with an explicit size (0.26)
  ``"reserved X GiB memory for KV Cache as specified by kv_cache_memory_bytes"``
* ``LoggingStatLogger.log``: ``"Avg prompt throughput: %.1f tokens/s, Avg generation throughput:
  %.1f tokens/s, Running: %d reqs, Waiting: %d reqs[, Preemptions: %d], %s KV cache usage: %.1f%%[,
  Prefix cache hit rate: %.1f%%]"``
"""

from __future__ import annotations

import re

from pydantic import BaseModel

_NUMBER = r"[\d,]+"
KV_SIZE = re.compile(
    rf"(?:(?P<device>[A-Z][A-Za-z0-9 +]*?) )?KV cache size: (?P<tokens>{_NUMBER}) tokens"
    rf"(?:, |\n[^\n]*?)Maximum concurrency for (?P<length>{_NUMBER}) tokens per request: (?P<concurrency>[\d.]+)x"
)
CPU_KV_MEMORY = re.compile(r"(?P<how>Explicitly|Auto) set \((?P<kv>[\d.]+)/(?P<total>[\d.]+)\) GiB for KV cache")
GPU_KV_MEMORY = re.compile(
    r"(?:Available KV cache memory: (?P<kv>[\d.]+) GiB"
    r"|reserved (?P<reserved>[\d.]+) GiB memory for KV Cache as specified by kv_cache_memory_bytes)"
)
STATS = re.compile(
    r"Avg prompt throughput: (?P<prompt>[\d.]+) tokens/s, "
    r"Avg generation throughput: (?P<generation>[\d.]+) tokens/s, "
    r"Running: (?P<running>\d+) reqs, Waiting: (?P<waiting>\d+) reqs"
    r"(?:.*?Preemptions: (?P<preemptions>\d+))?"
    r".*?KV cache usage: (?P<usage>[\d.]+)%"
    r"(?:, Prefix cache hit rate: (?P<hit>[\d.]+)%)?"
)


def _int(text: str) -> int:
    return int(text.replace(",", ""))


class StartupFigures(BaseModel):
    """KV capacity and memory as one engine start logged them."""

    kv_cache_tokens: int | None = None
    max_model_len: int | None = None
    max_concurrency: float | None = None
    kv_memory_gib: float | None = None
    kv_memory_source: str | None = None  # "explicit", "auto" (CPU) or "available" (GPU)
    device: str | None = None

    @property
    def complete(self) -> bool:
        return self.kv_cache_tokens is not None and self.kv_memory_gib is not None


class StatsLine(BaseModel):
    """One periodic stats line of a running engine."""

    prompt_throughput: float
    generation_throughput: float
    running: int
    waiting: int
    preemptions: int
    kv_cache_usage: float  # fraction 0..1
    prefix_cache_hit_rate: float | None  # fraction 0..1


def parse_startup(text: str) -> StartupFigures:
    """The last KV-capacity and KV-memory figures in ``text`` (a log or its tail)."""
    figures = StartupFigures()
    for match in KV_SIZE.finditer(text):
        figures.kv_cache_tokens = _int(match["tokens"])
        figures.max_model_len = _int(match["length"])
        figures.max_concurrency = float(match["concurrency"])
        figures.device = (match["device"] or "").strip() or None
    for match in CPU_KV_MEMORY.finditer(text):
        figures.kv_memory_gib = float(match["kv"])
        figures.kv_memory_source = "explicit" if match["how"] == "Explicitly" else "auto"
    for match in GPU_KV_MEMORY.finditer(text):
        figures.kv_memory_gib = float(match["kv"] or match["reserved"])
        figures.kv_memory_source = "available" if match["kv"] else "explicit"
    return figures


def parse_stats_lines(text: str) -> list[StatsLine]:
    """Every periodic stats line in ``text``, oldest first."""
    lines = []
    for match in STATS.finditer(text):
        lines.append(
            StatsLine(
                prompt_throughput=float(match["prompt"]),
                generation_throughput=float(match["generation"]),
                running=int(match["running"]),
                waiting=int(match["waiting"]),
                preemptions=int(match["preemptions"] or 0),
                kv_cache_usage=float(match["usage"]) / 100,
                prefix_cache_hit_rate=float(match["hit"]) / 100 if match["hit"] is not None else None,
            )
        )
    return lines
