"""The benchmark report: one Pydantic model is the truth; JSON, CSV, terminal, HTML and markdown render it.

Schema (``BenchReport``, written as ``bench.json``; ``schema_version`` changes when a field changes meaning):

- ``machine``: where the numbers came from (CPU, cores, memory, load average at start and end).
- ``offline``: one ``OfflineModeResult`` per mode (HF sequential, HF batched per batch size, the plain
  hand-written HF loop, vLLM one-at-a-time, vLLM all-at-once), each with tokens/s, requests/s, total
  time, peak memory and ``repeats`` (every timed repetition, for spread); ``speedups`` against HF batched
  at its best batch size; ``fairness`` (HF batched best vs the plain loop).
- ``serve``: one ``LoadPointResult`` per load level (closed-loop concurrency or open-loop rate) with
  latency statistics (TTFT, TPOT, ITL, E2E in ms), throughputs, goodput, and the saturation point.
- ``decay``: ``DecayCurve`` per source (tokens/s per output-position bucket).
- ``crosscheck``: our serve benchmark and ``vllm bench serve`` on the same server and workload.
Times are seconds unless a field name ends in ``_ms``; memory is MiB.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


class MachineInfo(BaseModel):
    """The machine and its load while the benchmark ran (a shared machine makes numbers noisy)."""

    hostname: str
    platform: str
    cpu_model: str
    logical_cpus: int | None
    memory_gib: float
    load_average_start: list[float] = Field(description="1, 5, 15-minute load averages when the run began")
    load_average_end: list[float] = Field(default_factory=list)
    packages: dict[str, str] = Field(default_factory=dict)
    started_at: str = Field(description="UTC ISO time")
    finished_at: str | None = None


class LatencyStats(BaseModel):
    """Summary of one latency metric over many requests (milliseconds)."""

    count: int
    mean: float
    median: float
    p90: float
    p99: float
    min: float
    max: float
    stdev: float


class SpreadStats(BaseModel):
    """Spread of a quantity over repeated runs."""

    count: int
    mean: float
    median: float
    min: float
    max: float
    stdev: float
    relative_spread: float = Field(description="(max - min) / mean; 0 with one run")


class OfflineModeResult(BaseModel):
    """One offline mode (one backend, one way of submitting the request set)."""

    mode: str = Field(description="hf_sequential | hf_batched | hf_plain_loop | vllm_one_at_a_time | vllm_all_at_once")
    label: str = Field(description="Human-readable name, e.g. 'HF batched (bs=16)'")
    backend: Literal["hf", "vllm"]
    batch_size: int | None = None
    requests: int
    output_tokens: int
    prompt_tokens: int
    total_seconds: float = Field(description="Median over repeats")
    output_tokens_per_second: float = Field(description="Median over repeats")
    requests_per_second: float
    peak_rss_mib: float = Field(description="Peak RSS of this process plus its engine children during the mode")
    output_lengths_equal: bool = Field(description="Every request generated the same number of tokens")
    repeats: list[float] = Field(default_factory=list, description="output tokens/s of each timed repetition")
    status: Literal["ok", "oom", "skipped", "skipped_time_cap", "error"] = "ok"
    note: str | None = None


class Speedup(BaseModel):
    mode: str
    label: str
    ratio_vs_hf_batched_best: float


class FairnessCheck(BaseModel):
    """HF batched (our backend) at its best batch size vs a plain ``model.generate`` loop at that size."""

    batch_size: int
    hf_batched_tokens_per_second: float
    plain_loop_tokens_per_second: float
    ratio: float = Field(description="hf_batched / plain_loop (median of pair_ratios when timed in pairs); "
                                     ">= 1 (within noise) means HF was not handicapped")
    hf_batched_repeats: list[float] = Field(default_factory=list, description="tok/s of each HF batched timing")
    plain_loop_repeats: list[float] = Field(
        default_factory=list, description="tok/s of each plain-loop timing (taken interleaved with HF batched)")
    pair_ratios: list[float] = Field(
        default_factory=list, description="HF batched / plain loop within each interleaved pair of timings")
    loop_faster_pairs: int | None = Field(None, description="Pairs in which the plain loop was the faster one")
    sign_test_p: float | None = Field(
        None, description="One-sided sign test: chance of the loop winning at least loop_faster_pairs of the pairs "
                          "if both were equally fast")
    significance: float = Field(0.05, description="sign_test_p below this means the loop won beyond chance")
    within_noise: bool = Field(description="ratio within the tolerance of 1, or the loop's wins explained by chance "
                                           "(sign_test_p >= significance)")
    holds: bool = Field(description="HF batched is at least as fast as the plain loop, allowing run-to-run noise")

    def explain(self) -> str:
        """How the verdict was reached, in one sentence (shared by the Markdown, terminal and HTML views)."""
        if not self.pair_ratios:
            return f"ratio of medians {self.ratio:.3f}"
        text = (f"ratio {self.ratio:.3f} = median over {len(self.pair_ratios)} interleaved pairs of HF batched / plain "
                f"loop ({', '.join(f'{r:.3f}' for r in self.pair_ratios)})")
        if self.sign_test_p is not None:
            text += (f"; the plain loop was faster in {self.loop_faster_pairs} of {len(self.pair_ratios)} pairs "
                     f"(one-sided sign test p = {self.sign_test_p:.3f}; it counts as faster only if p < "
                     f"{self.significance:g} and the ratio is below the tolerance)")
        return text


class OfflineReport(BaseModel):
    model: str
    requests: int
    max_new_tokens: int
    fixed_output_length: bool
    dtype: str
    repeats: int
    batch_sizes_requested: list[int]
    modes: list[OfflineModeResult]
    best_hf_batch_size: int | None
    speedups: list[Speedup]
    fairness: FairnessCheck | None
    load_seconds: dict[str, float] = Field(default_factory=dict)


class RequestTiming(BaseModel):
    """One streamed request as measured by the client (seconds since the run began)."""

    start: float
    first_token: float | None = None
    end: float
    token_times: list[float] = Field(default_factory=list, description="arrival time of each streamed chunk")
    prompt_tokens: int = 0
    output_tokens: int = 0
    ok: bool = True
    error: str | None = None


class SLO(BaseModel):
    """Latency objectives (milliseconds); None = not constrained."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2e_ms: float | None = None

    def is_empty(self) -> bool:
        return self.ttft_ms is None and self.tpot_ms is None and self.e2e_ms is None


# ``rate=inf`` (everything at once) is a real load level: JSON has no infinity, so it is written "Infinity".
_INF_AS_STRING = ConfigDict(ser_json_inf_nan="strings")


class LoadPointResult(BaseModel):
    """One load level of a serve benchmark."""

    model_config = _INF_AS_STRING

    profile: Literal["concurrency", "rate"]
    load: float = Field(description="concurrency (closed loop) or requests/s (open loop; inf = all at once)")
    burstiness: float | None = None
    requests: int
    completed: int
    failed: int
    duration_s: float
    output_tokens: int
    output_tokens_per_second: float
    requests_per_second: float
    goodput_requests_per_second: float | None = None
    slo_attainment: float | None = Field(None, description="fraction of requests meeting every SLO")
    ttft_ms: LatencyStats | None
    tpot_ms: LatencyStats | None
    itl_ms: LatencyStats | None
    e2e_ms: LatencyStats | None
    stopped_by_time_cap: bool = False
    errors: dict[str, int] = Field(
        default_factory=dict, description="failed requests: each distinct error (status and message) and its count")


class ServeReport(BaseModel):
    model_config = _INF_AS_STRING

    url: str
    model: str
    prompt_source: str
    output_tokens_per_request: int
    warmup_requests: int
    slo: SLO
    slo_attainment_target: float
    points: list[LoadPointResult]
    saturation_profile: str = Field("concurrency", description="which kind of load the two fields below refer to")
    saturation_load: float | None = Field(None, description="highest load at which the SLOs still held")
    throughput_knee_load: float | None = Field(None, description="load beyond which throughput grows < 10%")


class DecayBucket(BaseModel):
    start: int = Field(description="first output position in the bucket (0-based)")
    end: int = Field(description="one past the last position")
    tokens: int
    tokens_per_second_per_sequence: float
    aggregate_tokens_per_second: float
    mean_itl_ms: float


class DecayCurve(BaseModel):
    source: str = Field(description="e.g. 'HF batched (bs=4)' or 'vLLM served (concurrency 4)'")
    sequences: int
    output_tokens_per_sequence: int
    bucket_size: int
    buckets: list[DecayBucket]
    last_to_first_ratio: float | None = Field(None, description="throughput of the last bucket / the first")


class CrossCheckSide(BaseModel):
    output_tokens_per_second: list[float]
    median_ttft_ms: list[float]
    request_throughput: list[float] = Field(default_factory=list)
    ttft_ms: list[float] = Field(
        default_factory=list, description="Every measured request's TTFT, all rounds (the median compared).")
    duration_s: list[float] = Field(default_factory=list, description="Measured time of each round")
    output_tokens: list[int] = Field(
        default_factory=list, description="Output tokens of each round (sum over sum of duration_s is compared)")

    def pooled_output_tokens_per_second(self) -> float | None:
        """Output tokens of all rounds over their measured time: one long interleaved run per tool."""
        return sum(self.output_tokens) / sum(self.duration_s) if self.duration_s else None


class CrossCheck(BaseModel):
    """Our serve benchmark vs ``vllm bench serve``: same server, prompts, output length, concurrency."""

    server_command: list[str]
    vllm_bench_command: list[str]
    workload: dict[str, float | int | str]
    ours: CrossCheckSide
    vllm_bench: CrossCheckSide
    first_in_round: list[str] = Field(
        default_factory=list, description="Which tool ran first in each round ('hf2vllm bench serve' or 'vllm bench serve').")
    throughput_relative_difference: float
    median_ttft_relative_difference: float
    tolerance: float
    holds: bool


class BenchReport(BaseModel):
    """Everything one ``make bench`` / ``hf2vllm bench`` run produced."""

    schema_version: int = SCHEMA_VERSION
    kind: Literal["offline", "serve", "full"]
    machine: MachineInfo
    offline: OfflineReport | None = None
    serve: ServeReport | None = None
    decay: list[DecayCurve] = Field(default_factory=list)
    crosscheck: CrossCheck | None = None
    notes: list[str] = Field(default_factory=list)
