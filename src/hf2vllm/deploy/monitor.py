"""Turn a running vLLM server's numbers into advice.

Inputs are the Prometheus text from ``/metrics`` (parsed with ``prometheus_client``'s own parser)
or vLLM's log (the periodic stats line). Two snapshots a few seconds apart give rates (prompt and
generation throughput, new preemptions). The advice rules:

* KV-cache usage under 30% while requests run: batch more. Usage grows roughly linearly with the
  number of running sequences, so ``max_num_seqs`` can grow by about ``target / usage`` (target 70%).
* usage over 80%, or new preemptions: vLLM is evicting or about to; lower ``max_num_seqs`` to what
  fits at the target usage.
* a low prefix-cache hit rate on a few-shot workload: the shared examples are not being reused
  (prefix caching off, or the shared part is not an identical prefix).
* generation throughput falling while outputs get longer is expected (each decode step attends over
  a longer KV); say so instead of raising an alarm.

Usage::

    before = parse_metrics(httpx.get(url + "/metrics").text)
    after = parse_metrics(httpx.get(url + "/metrics").text)
    report = build_report(after, previous=before, settings=MonitorSettings(max_num_seqs=256))
"""

from __future__ import annotations

import math
import time
from typing import Literal

from pydantic import BaseModel, Field

from hf2vllm.deploy.vllm_logs import StatsLine
from hf2vllm.errors import BackendUnavailableError, InputError

LOW_USAGE = 0.30
HIGH_USAGE = 0.80
TARGET_USAGE = 0.70
LOW_PREFIX_HIT = 0.50


class MetricsSnapshot(BaseModel):
    """Server state at one moment (gauges now, counters since start)."""

    timestamp: float
    source: Literal["metrics", "log"]
    running: int
    waiting: int
    kv_cache_usage: float = Field(description="Fraction of KV blocks in use, 0..1.")
    preemptions_total: float | None = None
    prefix_cache_queries_total: float | None = None
    prefix_cache_hits_total: float | None = None
    prompt_tokens_total: float | None = None
    generation_tokens_total: float | None = None
    generation_tokens_per_request_sum: float | None = None
    requests_finished: float | None = None
    # Only the log line carries throughput directly; metrics need two snapshots.
    prompt_throughput: float | None = None
    generation_throughput: float | None = None
    log_prefix_cache_hit_rate: float | None = None
    # The log line counts preemptions per logging interval, not since start.
    preemptions_in_interval: int | None = None
    model_name: str | None = None

    @property
    def prefix_cache_hit_rate(self) -> float | None:
        if self.log_prefix_cache_hit_rate is not None:
            return self.log_prefix_cache_hit_rate
        if self.prefix_cache_queries_total:
            return (self.prefix_cache_hits_total or 0.0) / self.prefix_cache_queries_total
        return None

    @property
    def mean_output_tokens(self) -> float | None:
        if self.requests_finished and self.generation_tokens_per_request_sum is not None:
            return self.generation_tokens_per_request_sum / self.requests_finished
        return None


class MonitorSettings(BaseModel):
    """What the monitor knows about the deployment beyond its metrics."""

    max_num_seqs: int | None = None
    workload: Literal["general", "few-shot"] = "general"


class Advice(BaseModel):
    """One recommendation with the numbers behind it."""

    rule: Literal["raise-max-num-seqs", "lower-max-num-seqs", "prefix-cache", "decode-slowdown-expected", "ok"]
    severity: Literal["info", "suggest", "warn"]
    message: str
    reasoning: str
    suggested_max_num_seqs: int | None = None


class MonitorReport(BaseModel):
    """A snapshot, the rates since the previous one, and the advice (``--once --json`` prints this)."""

    running: int
    waiting: int
    kv_cache_usage: float
    prefix_cache_hit_rate: float | None
    prompt_throughput: float | None
    generation_throughput: float | None
    preemptions_total: float | None
    new_preemptions: float | None
    mean_output_tokens: float | None
    source: str
    advice: list[Advice]


def _sample_value(families: dict, family: str, suffix: str = "") -> float | None:
    """Sum a family's samples named ``family + suffix`` over all label sets (engines, models)."""
    metric = families.get(family)
    if metric is None:
        return None
    values = [s.value for s in metric.samples if s.name == family + suffix]
    return float(sum(values)) if values else None


def parse_metrics(text: str, timestamp: float | None = None) -> MetricsSnapshot:
    """Parse vLLM's ``/metrics`` text into a snapshot."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        families = {family.name: family for family in text_string_to_metric_families(text)}
    except ValueError as err:
        raise InputError(f"/metrics: not Prometheus text format ({err})") from err
    if "vllm:num_requests_running" not in families:
        raise InputError("/metrics: no vllm:num_requests_running metric (is this a vLLM server?)")
    model_name = None
    for sample in families["vllm:num_requests_running"].samples:
        model_name = sample.labels.get("model_name", model_name)
    usage = _sample_value(families, "vllm:kv_cache_usage_perc")
    return MetricsSnapshot(
        timestamp=time.time() if timestamp is None else timestamp,
        source="metrics",
        running=int(_sample_value(families, "vllm:num_requests_running") or 0),
        waiting=int(_sample_value(families, "vllm:num_requests_waiting") or 0),
        kv_cache_usage=usage or 0.0,
        preemptions_total=_sample_value(families, "vllm:num_preemptions", "_total"),
        prefix_cache_queries_total=_sample_value(families, "vllm:prefix_cache_queries", "_total"),
        prefix_cache_hits_total=_sample_value(families, "vllm:prefix_cache_hits", "_total"),
        prompt_tokens_total=_sample_value(families, "vllm:prompt_tokens", "_total"),
        generation_tokens_total=_sample_value(families, "vllm:generation_tokens", "_total"),
        generation_tokens_per_request_sum=_sample_value(families, "vllm:request_generation_tokens", "_sum"),
        requests_finished=_sample_value(families, "vllm:request_generation_tokens", "_count"),
        model_name=model_name,
    )


def snapshot_from_log(line: StatsLine, timestamp: float | None = None) -> MetricsSnapshot:
    return MetricsSnapshot(
        timestamp=time.time() if timestamp is None else timestamp,
        source="log",
        running=line.running,
        waiting=line.waiting,
        kv_cache_usage=line.kv_cache_usage,
        preemptions_in_interval=line.preemptions,
        prompt_throughput=line.prompt_throughput,
        generation_throughput=line.generation_throughput,
        log_prefix_cache_hit_rate=line.prefix_cache_hit_rate,
    )


def _rate(now: float | None, before: float | None, seconds: float) -> float | None:
    if now is None or before is None or seconds <= 0:
        return None
    return max(now - before, 0.0) / seconds


def _new_preemptions(now: MetricsSnapshot, previous: MetricsSnapshot | None) -> float | None:
    if now.preemptions_in_interval is not None:
        return float(now.preemptions_in_interval)
    if previous is not None and now.preemptions_total is not None and previous.preemptions_total is not None:
        return now.preemptions_total - previous.preemptions_total
    return None


def advise(
    now: MetricsSnapshot,
    previous: MetricsSnapshot | None,
    settings: MonitorSettings,
    generation_throughput: float | None,
    previous_generation_throughput: float | None,
) -> list[Advice]:
    """Apply the advice rules to one snapshot (and the one before it, for trends)."""
    advice: list[Advice] = []
    usage = now.kv_cache_usage
    new_preemptions = _new_preemptions(now, previous)
    limit = settings.max_num_seqs
    if usage > HIGH_USAGE or (new_preemptions or 0) > 0:
        base = limit or max(now.running, 1)
        fit = math.floor(base * TARGET_USAGE / usage) if usage > 0 else base
        suggested = max(1, min(fit, base - 1) if (new_preemptions or 0) > 0 else fit)
        cause = (
            f"{new_preemptions:g} preemption(s) since the last look" if (new_preemptions or 0) > 0 else "no preemptions yet"
        )
        advice.append(
            Advice(
                rule="lower-max-num-seqs",
                severity="warn",
                message=f"KV cache {usage:.0%} full with {now.running} running: lower max_num_seqs to about {suggested}",
                reasoning=(
                    f"above {HIGH_USAGE:.0%} KV usage ({cause}) vLLM must preempt running sequences and recompute "
                    f"them when a new block is needed; {base} x {TARGET_USAGE:.0%} / {usage:.0%} ~ {fit} sequences "
                    "keep usage near the target"
                ),
                suggested_max_num_seqs=suggested,
            )
        )
    elif usage < LOW_USAGE and now.running > 0:
        base = limit or now.running
        suggested = max(base + 1, math.ceil(base * TARGET_USAGE / max(usage, 0.01)))
        saturated = now.waiting > 0 or (limit is not None and now.running >= limit)
        advice.append(
            Advice(
                rule="raise-max-num-seqs",
                severity="suggest" if saturated else "info",
                message=(
                    f"KV cache only {usage:.0%} used with {now.running} running"
                    + (f" and {now.waiting} waiting" if now.waiting else "")
                    + f": raise max_num_seqs towards {suggested}"
                ),
                reasoning=(
                    f"usage grows roughly in proportion to running sequences, so {base} x {TARGET_USAGE:.0%} / "
                    f"{usage:.0%} ~ {suggested} sequences fill the cache to the {TARGET_USAGE:.0%} target"
                    + ("" if saturated else "; nothing is queued yet, so this matters once load grows")
                ),
                suggested_max_num_seqs=suggested,
            )
        )
    hit_rate = now.prefix_cache_hit_rate
    if previous is not None and now.prefix_cache_queries_total and previous.prefix_cache_queries_total is not None:
        queries = now.prefix_cache_queries_total - previous.prefix_cache_queries_total
        hits = (now.prefix_cache_hits_total or 0) - (previous.prefix_cache_hits_total or 0)
        if queries > 0:
            hit_rate = hits / queries
    if settings.workload == "few-shot" and hit_rate is not None and hit_rate < LOW_PREFIX_HIT:
        advice.append(
            Advice(
                rule="prefix-cache",
                severity="suggest",
                message=f"prefix-cache hit rate {hit_rate:.0%} on a few-shot workload",
                reasoning=(
                    "few-shot prompts share their examples, which prefix caching computes once (hit rates "
                    "near 98% are normal); a low rate means --enable-prefix-caching is off or the shared part "
                    "is not an identical leading prefix: keep system prompt and examples first and byte-identical, "
                    "put the per-request text last"
                ),
            )
        )
    mean_now = now.mean_output_tokens
    mean_before = previous.mean_output_tokens if previous else None
    if (
        generation_throughput is not None
        and previous_generation_throughput
        and generation_throughput < 0.85 * previous_generation_throughput
        and mean_now is not None
        and mean_before is not None
        and mean_now > mean_before
    ):
        advice.append(
            Advice(
                rule="decode-slowdown-expected",
                severity="info",
                message=(
                    f"generation throughput fell {1 - generation_throughput / previous_generation_throughput:.0%} "
                    f"while mean output length grew {mean_before:.0f} -> {mean_now:.0f} tokens: expected"
                ),
                reasoning=(
                    "each decode step reads the whole KV of every running sequence, so steps get slower as "
                    "outputs grow; this is not a fault and needs no change"
                ),
            )
        )
    if not advice:
        advice.append(
            Advice(
                rule="ok",
                severity="info",
                message=f"KV cache {usage:.0%} used, {now.running} running, {now.waiting} waiting: no change needed",
                reasoning=f"usage is between {LOW_USAGE:.0%} and {HIGH_USAGE:.0%}" if now.running else "the server is idle",
            )
        )
    return advice


def build_report(
    now: MetricsSnapshot,
    previous: MetricsSnapshot | None = None,
    settings: MonitorSettings | None = None,
    previous_generation_throughput: float | None = None,
) -> MonitorReport:
    """Rates since ``previous`` and the advice for ``now``."""
    settings = settings or MonitorSettings()
    seconds = (now.timestamp - previous.timestamp) if previous else 0.0
    prompt_tput = now.prompt_throughput
    gen_tput = now.generation_throughput
    if now.source == "metrics" and previous is not None:
        prompt_tput = _rate(now.prompt_tokens_total, previous.prompt_tokens_total, seconds)
        gen_tput = _rate(now.generation_tokens_total, previous.generation_tokens_total, seconds)
    if previous is not None and previous_generation_throughput is None:
        previous_generation_throughput = previous.generation_throughput
    new_preemptions = _new_preemptions(now, previous)
    return MonitorReport(
        running=now.running,
        waiting=now.waiting,
        kv_cache_usage=now.kv_cache_usage,
        prefix_cache_hit_rate=now.prefix_cache_hit_rate,
        prompt_throughput=prompt_tput,
        generation_throughput=gen_tput,
        preemptions_total=now.preemptions_total,
        new_preemptions=new_preemptions,
        mean_output_tokens=now.mean_output_tokens,
        source=now.source,
        advice=advise(now, previous, settings, gen_tput, previous_generation_throughput),
    )


def fetch_metrics(base_url: str, timeout: float = 10.0) -> str:
    """GET ``{base_url}/metrics`` (base URL with or without ``/v1``)."""
    import httpx

    from hf2vllm.checks import mask_secrets, public_url, url_secrets

    root = base_url.rstrip("/").removesuffix("/v1")
    shown = public_url(f"{root}/metrics")  # the URL may carry credentials (sent as Basic auth): never shown
    try:
        response = httpx.get(f"{root}/metrics", timeout=timeout)
    except httpx.ConnectError as err:
        if "refused" in str(err).lower():
            raise BackendUnavailableError(f"{shown}: nothing listens there (connection refused); start the "
                                          "server (hf2vllm serve) or fix the host/port") from None
        reason = mask_secrets(f"{type(err).__name__}: {err}", url_secrets(base_url))
        raise BackendUnavailableError(f"{shown}: cannot connect ({reason}); check the host and port") from None
    except httpx.HTTPError as err:
        reason = mask_secrets(f"{type(err).__name__}: {err}", url_secrets(base_url))
        raise BackendUnavailableError(f"{shown}: {reason}") from None
    if response.status_code != 200:
        hint = "; give the server's root URL (vLLM serves /metrics there)" if response.status_code == 404 else ""
        raise BackendUnavailableError(f"{shown} answered HTTP {response.status_code}{hint}")
    return response.text
