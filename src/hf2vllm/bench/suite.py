"""The ``make bench`` suite: offline benchmark, decay curves, a small served sweep and the cross-check
against ``vllm bench serve``, on the bundled model, writing JSON/CSV/HTML and ``docs/benchmarks.md``.

Sized for a 2-core CPU machine (about 10 minutes when idle). Results are written after every stage,
so a run cut short still leaves what it measured.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from hf2vllm.bench.schema import SLO, BenchReport


STAGES = ("offline", "hf_decay", "serve", "served_decay", "crosscheck")


class SuiteOptions(BaseModel):
    out_dir: Path = Path("docs/bench")
    markdown: Path | None = Path("docs/benchmarks.md")
    requests: int = Field(16, ge=1)
    max_new_tokens: int = Field(32, ge=1)
    batch_sizes: list[int] = Field(default_factory=lambda: [1, 4, 8, 16, 32, 64])
    repeats: int = Field(1, ge=1)
    decay_sequences: int = Field(4, ge=1)
    decay_tokens: int = Field(256, ge=2)
    decay_bucket: int = Field(64, ge=1)
    serve_concurrency: list[int] = Field(default_factory=lambda: [1, 2, 4])
    serve_rates: list[float] = Field(default_factory=lambda: [1.0])
    serve_requests: int = Field(12, ge=1)
    slo: SLO = Field(default_factory=lambda: SLO(ttft_ms=2000.0, tpot_ms=250.0))
    # 12 rounds x 16 prompts = 192 measured requests per tool: with 96, the two tools' median TTFTs came
    # 1-5.4% apart between runs (per-request TTFT varies ~14% at C=1 on this VM).
    crosscheck_rounds: int = Field(12, ge=1)
    # Shorter answers than the offline stage: TTFT does not depend on them, and at C=1 on 2 cores each
    # output token costs ~0.08 s, so 8 tokens buy twice the requests of 16 inside make bench's 20 minutes.
    crosscheck_max_new_tokens: int = Field(8, ge=1)
    crosscheck_concurrency: int = 1
    kv_cache_gib: float = 1.0
    stages: list[str] = Field(default_factory=lambda: list(STAGES), description="Stages to run, in the fixed order.")
    resume: bool = Field(False, description="Start from out_dir/bench.json and keep the sections not re-run.")


def _save(report: BenchReport, options: SuiteOptions) -> None:
    from hf2vllm.bench.machine import finish_machine
    from hf2vllm.bench.outputs.csv_file import write_csv
    from hf2vllm.bench.outputs.html import write_html
    from hf2vllm.bench.outputs.json_file import write_json
    from hf2vllm.bench.outputs.markdown import write_markdown

    report.machine = finish_machine(report.machine)
    write_json(report, options.out_dir / "bench.json")
    write_csv(report, options.out_dir)
    write_html(report, options.out_dir / "bench.html")
    if options.markdown is not None:
        rel = options.out_dir.resolve()
        try:
            prefix = rel.relative_to(options.markdown.parent.resolve()).as_posix()
        except ValueError:
            prefix = str(rel)
        write_markdown(report, options.markdown, json_name=f"{prefix}/bench.json", html_name=f"{prefix}/bench.html")


def run_suite(options: SuiteOptions, on_status: Callable[[str], None] | None = None) -> BenchReport:
    """Run ``options.stages`` in order; with ``resume``, sections not re-run come from the earlier JSON."""
    from hf2vllm.bench.machine import collect_machine
    from hf2vllm.models import bundled_model_path
    from hf2vllm.parity.run import load_tokenizer

    status = on_status or (lambda _m: None)
    unknown = set(options.stages) - set(STAGES)
    if unknown:
        from hf2vllm.errors import InputError

        raise InputError(f"--stages: unknown stage(s) {sorted(unknown)}; known: {', '.join(STAGES)}")
    model_path = bundled_model_path()
    report = BenchReport(kind="full", machine=collect_machine())
    previous = options.out_dir / "bench.json"
    if options.resume and previous.is_file():
        from hf2vllm.bench.outputs.json_file import read_json

        # Keep the earlier sections (and the machine they were measured on: its start time and load).
        report = read_json(previous)
        now = collect_machine()
        report.notes.append(f"stages {', '.join(options.stages)} run at {now.started_at} on top of the earlier "
                            f"results (load average then {now.load_average_start})")
    tokenizer = load_tokenizer(model_path)
    if "offline" in options.stages:
        _offline_stage(report, options, status)
    if "hf_decay" in options.stages:
        _hf_decay_stage(report, options, model_path, tokenizer, status)
    if {"serve", "served_decay", "crosscheck"} & set(options.stages):
        _server_stages(report, options, model_path, tokenizer, status)
    note = ("fixed output length: every request generates exactly max_new_tokens tokens "
            "(min_new_tokens/min_tokens on the offline backends, ignore_eos on the server)")
    if note not in report.notes:
        report.notes.append(note)
    _save(report, options)
    return report


def _offline_stage(report: BenchReport, options: SuiteOptions, status: Callable[[str], None]) -> None:
    from hf2vllm.bench.offline import OfflineBenchOptions, run_offline

    offline_opts = OfflineBenchOptions(limit=options.requests, max_new_tokens=options.max_new_tokens,
                                       batch_sizes=options.batch_sizes, repeats=options.repeats,
                                       kv_cache_gib=options.kv_cache_gib)

    def on_progress(partial):  # type: ignore[no-untyped-def]
        report.offline = partial
        _save(report, options)

    report.offline = run_offline(offline_opts, on_status=status, on_progress=on_progress)
    _save(report, options)


def _hf_decay_stage(report: BenchReport, options: SuiteOptions, model_path: Path, tokenizer: Any,
                    status: Callable[[str], None]) -> None:
    """One HF batch generating a long fixed-length answer, every decode step timed."""
    from hf2vllm.backends.hf import HFBackend
    from hf2vllm.bench.decay import decay_curve, hf_token_times
    from hf2vllm.bench.offline import OfflineBenchOptions, prepare_bench_requests
    from hf2vllm.parity.run import stop_token_ids

    status(f"decay: HF batch of {options.decay_sequences} x {options.decay_tokens} tokens")
    # Exactly one batch of decay_sequences rows, however long the answers.
    hf = HFBackend(model_path, dtype="float32", batch_size=options.decay_sequences, max_batch_tokens=sys.maxsize)
    try:
        decay_reqs = prepare_bench_requests(
            OfflineBenchOptions(limit=options.decay_sequences, max_new_tokens=options.decay_tokens), model_path,
            tokenizer)
        stops = stop_token_ids(model_path, tokenizer)
        times = hf_token_times(hf.model, [r.prompt_token_ids for r in decay_reqs], max_new_tokens=options.decay_tokens,
                               pad_token_id=hf.pad_token_id, eos_token_ids=stops)
    finally:
        hf.close()
    source = f"HF batched (bs={options.decay_sequences})"
    report.decay = [c for c in report.decay if c.source != source]
    report.decay.append(decay_curve(times, options.decay_bucket, source))
    _save(report, options)


def _server_stages(report: BenchReport, options: SuiteOptions, model_path: Path, tokenizer: Any,
                   status: Callable[[str], None]) -> None:
    """One real `vllm serve` for the served sweep, the served decay curve and the cross-check."""
    from hf2vllm.bench.serve.runner import ServeOptions, run_serve, workload_from_requests
    from hf2vllm.requests import bundled_prompts_path, load_requests
    from hf2vllm.server.launch import ServerConfig, VLLMServer, small_cpu_server_args

    status("starting vllm serve")
    config = ServerConfig(model=model_path, served_model_name="smollm2-135m",
                          extra_args=small_cpu_server_args(options.kv_cache_gib),
                          log_path=options.out_dir / "vllm-serve.log")
    with VLLMServer(config) as server:
        requests = load_requests(bundled_prompts_path())
        items = workload_from_requests(requests, max_tokens=options.max_new_tokens)
        serve_opts = ServeOptions(url=server.base_url, model=server.model_name, concurrency=options.serve_concurrency,
                                  rates=options.serve_rates, max_requests=options.serve_requests, slo=options.slo)
        if "serve" in options.stages:
            status("served sweep")
            report.serve = asyncio.run(run_serve(serve_opts, items, prompt_source="bundled prompt set (chat)"))
            _save(report, options)
        if "served_decay" in options.stages:
            _served_decay(report, options, server, requests, status)
        if "crosscheck" in options.stages:
            _crosscheck(report, options, server, model_path, tokenizer, status)


def _served_decay(report: BenchReport, options: SuiteOptions, server: Any, requests: list[Any],
                  status: Callable[[str], None]) -> None:
    """Concurrent long fixed-length requests to the server; their streamed chunk times make the curve."""
    from hf2vllm.bench.decay import decay_curve
    from hf2vllm.bench.serve.runner import ServeOptions, run_serve, workload_from_requests

    status(f"decay: vLLM served, concurrency {options.decay_sequences} x {options.decay_tokens} tokens")
    decay_items = workload_from_requests(requests[: options.decay_sequences], max_tokens=options.decay_tokens)
    timings: dict[str, Any] = {}
    decay_opts = ServeOptions(url=server.base_url, model=server.model_name, concurrency=[options.decay_sequences],
                              max_requests=options.decay_sequences, warmup_requests=0, time_cap_s=600)
    asyncio.run(run_serve(decay_opts, decay_items, keep_timings=timings))
    served = [t.token_times for runs in timings.values() for t in runs if t.ok]
    source = f"vLLM served (concurrency {options.decay_sequences})"
    report.decay = [c for c in report.decay if c.source != source]
    report.decay.append(decay_curve(served, options.decay_bucket, source))
    _save(report, options)


def _crosscheck(report: BenchReport, options: SuiteOptions, server: Any, model_path: Path, tokenizer: Any,
                status: Callable[[str], None]) -> None:
    from hf2vllm.bench.crosscheck import CrossCheckOptions, run_crosscheck
    from hf2vllm.bench.offline import OfflineBenchOptions, prepare_bench_requests

    prompts = [r.prompt_text for r in prepare_bench_requests(
        OfflineBenchOptions(limit=options.requests, max_new_tokens=options.max_new_tokens), model_path, tokenizer)]
    cc = CrossCheckOptions(base_url=server.base_url, model_name=server.model_name, tokenizer=model_path,
                           prompts=prompts, output_len=options.crosscheck_max_new_tokens,
                           concurrency=options.crosscheck_concurrency, num_prompts=options.requests,
                           rounds=options.crosscheck_rounds, workdir=options.out_dir / "crosscheck")
    report.crosscheck = run_crosscheck(cc, server.command(), on_status=status)
    _save(report, options)
