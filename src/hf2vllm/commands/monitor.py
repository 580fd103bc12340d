"""``hf2vllm monitor``: follow a vLLM server's /metrics (or its log) and advise on its settings."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from hf2vllm.errors import InputError
from hf2vllm.interrupt import Interrupted


def _render(report, console) -> None:
    hit = "-" if report.prefix_cache_hit_rate is None else f"{report.prefix_cache_hit_rate:.1%}"
    prompt = "-" if report.prompt_throughput is None else f"{report.prompt_throughput:.1f}"
    gen = "-" if report.generation_throughput is None else f"{report.generation_throughput:.1f}"
    preempt = "-" if report.preemptions_total is None else f"{report.preemptions_total:g}"
    console.print(
        f"running {report.running}  waiting {report.waiting}  KV cache {report.kv_cache_usage:.1%}  "
        f"prefix hit {hit}  prompt {prompt} tok/s  generation {gen} tok/s  preemptions {preempt}",
        highlight=False,
    )
    for advice in report.advice:
        style = {"warn": "red", "suggest": "yellow", "info": "cyan"}[advice.severity]
        console.print(f"  [{style}]{advice.severity}[/{style}] {advice.message}", highlight=False)
        console.print(f"      why: {advice.reasoning}", highlight=False)


def register(app: typer.Typer) -> None:
    @app.command("monitor")
    def monitor_command(
        url: Annotated[Optional[str], typer.Argument(help="Server base URL, e.g. http://127.0.0.1:8000 (reads /metrics).")] = None,
        log: Annotated[Optional[Path], typer.Option("--log", help="Read vLLM's log file instead (offline, or alongside).")] = None,
        once: Annotated[bool, typer.Option("--once", help="One snapshot, then exit.")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON (one object per snapshot).")] = False,
        interval: Annotated[float, typer.Option("--interval", help="Seconds between snapshots.")] = 5.0,
        count: Annotated[int, typer.Option("--count", help="Stop after this many snapshots (0 = until Ctrl-C).")] = 0,
        max_num_seqs: Annotated[Optional[int], typer.Option("--max-num-seqs", help="The server's max_num_seqs, to size the advice.")] = None,
        workload: Annotated[str, typer.Option("--workload", help="general or few-shot (expects prefix-cache hits).")] = "general",
    ) -> None:
        """Show running/waiting requests, KV-cache usage, prefix-cache hit rate, throughput and preemptions, with advice and its reasoning."""
        from rich.console import Console

        from hf2vllm.deploy.monitor import (
            MonitorSettings,
            build_report,
            fetch_metrics,
            parse_metrics,
            snapshot_from_log,
        )
        from hf2vllm.deploy.vllm_logs import parse_stats_lines

        from hf2vllm import checks

        checks.choice(workload, "--workload", ("general", "few-shot"))
        checks.positive(interval, "--interval", "seconds between snapshots")
        checks.number(count, "--count", minimum=0, meaning="snapshots; 0 = until Ctrl-C")
        checks.number(max_num_seqs, "--max-num-seqs", minimum=1)
        if url is None and log is None:
            raise InputError("give a server URL (reads /metrics) or --log FILE")
        if url is not None:
            checks.server_url(url)
        checks.input_file(log, "--log", what="vLLM log file")
        settings = MonitorSettings(max_num_seqs=max_num_seqs, workload=workload)
        console = Console()

        def emit(report) -> None:
            if as_json:
                typer.echo(json.dumps(report.model_dump(mode="json")))
            else:
                _render(report, console)

        if url is None:
            assert log is not None
            lines = parse_stats_lines(log.read_text(errors="replace"))
            if not lines:
                raise InputError(f"--log {log}: no vLLM stats lines ('Avg prompt throughput: ...') found")
            snapshots = [snapshot_from_log(line, timestamp=float(i)) for i, line in enumerate(lines)]
            chosen = snapshots[-1:] if once else snapshots
            for snapshot in chosen:
                index = snapshots.index(snapshot)
                emit(build_report(snapshot, snapshots[index - 1] if index else None, settings))
            return

        previous = None
        previous_rate = None
        taken = 0
        if once:
            # Two scrapes a moment apart turn counters into rates.
            previous = parse_metrics(fetch_metrics(url))
            time.sleep(min(interval, 2.0))
        try:
            while True:
                now = parse_metrics(fetch_metrics(url))
                report = build_report(now, previous, settings, previous_generation_throughput=previous_rate)
                emit(report)
                taken += 1
                if once or (count and taken >= count):
                    return
                previous, previous_rate = now, report.generation_throughput
                time.sleep(interval)
        except (KeyboardInterrupt, Interrupted):  # Ctrl-C (or a stop signal) is how a watch ends
            return
