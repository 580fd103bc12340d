"""Monitor advice on /metrics snapshots recorded from a real `vllm serve` (tests/deploy/snapshots,
made by record.py: CPU build, bundled model, 0.05 GiB KV cache, max_num_seqs 16), on the real
server log of that run, and live against the session's test server under load.

Where a rule needs a situation the recording did not reach, the test derives a variant by editing
the value of one metric in a real snapshot, and says which value it edited.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import httpx
import pytest

from hf2vllm.deploy.monitor import MonitorSettings, build_report, parse_metrics
from hf2vllm.deploy.vllm_logs import parse_startup, parse_stats_lines



SNAPSHOTS = Path(__file__).parent / "snapshots"


def snapshot_text(name: str) -> str:
    return (SNAPSHOTS / f"{name}.prom").read_text()


def edited(text: str, metric: str, value: float) -> str:
    """A derived snapshot: ``metric``'s sample value replaced by ``value``."""
    pattern = re.compile(rf"^({re.escape(metric)}\{{[^}}]*\}}) \S+$", re.MULTILINE)
    assert pattern.search(text), metric
    return pattern.sub(lambda m: f"{m.group(1)} {value}", text)


def rules(report) -> set[str]:
    return {advice.rule for advice in report.advice}


def test_real_snapshot_parses_running_waiting_usage_and_counters():
    snap = parse_metrics(snapshot_text("heavy_load"), timestamp=0)
    assert (snap.running, snap.waiting, snap.kv_cache_usage) == (2, 22, 0.75)
    assert snap.prefix_cache_queries_total == 664 and snap.prefix_cache_hits_total == 0
    assert snap.model_name == "smollm2-135m"


def test_low_usage_advises_raising_max_num_seqs_with_an_estimate():
    """Real snapshot: 2 running at 25% KV usage."""
    report = build_report(parse_metrics(snapshot_text("light_load"), timestamp=0),
                          settings=MonitorSettings(max_num_seqs=2))
    advice = next(a for a in report.advice if a.rule == "raise-max-num-seqs")
    assert advice.suggested_max_num_seqs == 6  # ceil(2 x 0.70 / 0.25)
    assert advice.severity == "suggest"  # all 2 slots busy
    assert "25%" in advice.message


def test_real_preemptions_advise_lowering_max_num_seqs():
    """Real pair: the overflowing phase preempted 6 sequences between the two scrapes."""
    before = parse_metrics(snapshot_text("heavy_load"), timestamp=0)
    after = parse_metrics(snapshot_text("heavy_load_later"), timestamp=60)
    report = build_report(after, before, MonitorSettings(max_num_seqs=16))
    assert report.new_preemptions == 6
    advice = next(a for a in report.advice if a.rule == "lower-max-num-seqs")
    assert advice.severity == "warn" and advice.suggested_max_num_seqs < 16
    assert "preemption" in advice.reasoning


def test_high_usage_advises_lowering_max_num_seqs():
    """Derived: heavy_load with vllm:kv_cache_usage_perc edited from 0.75 to 0.93."""
    snap = parse_metrics(edited(snapshot_text("heavy_load"), "vllm:kv_cache_usage_perc", 0.93), timestamp=0)
    report = build_report(snap, settings=MonitorSettings(max_num_seqs=16))
    advice = next(a for a in report.advice if a.rule == "lower-max-num-seqs")
    assert advice.suggested_max_num_seqs == 12  # floor(16 x 0.70 / 0.93)


def test_usage_in_the_target_band_needs_no_change():
    """Real snapshot: 75% usage, no preemptions yet."""
    report = build_report(parse_metrics(snapshot_text("heavy_load"), timestamp=0))
    assert rules(report) == {"ok"}


def test_few_shot_prefix_hits_are_recognised_and_misses_flagged():
    """Real pair: six few-shot prompts sharing ~700 tokens hit the cache 3200 times in 4406 lookups."""
    before = parse_metrics(snapshot_text("heavy_load_later"), timestamp=0)
    after = parse_metrics(snapshot_text("few_shot"), timestamp=30)
    few_shot = MonitorSettings(workload="few-shot")
    assert "prefix-cache" not in rules(build_report(after, before, few_shot))
    # Real snapshot: the heavy phase numbered its prompts first, so 664 lookups found no prefix.
    assert "prefix-cache" in rules(build_report(parse_metrics(snapshot_text("heavy_load"), timestamp=0), settings=few_shot))
    # Derived: few_shot with vllm:prefix_cache_hits_total edited from 3200 to 0.
    missed = parse_metrics(edited(snapshot_text("few_shot"), "vllm:prefix_cache_hits_total", 0), timestamp=30)
    advice = next(a for a in build_report(missed, before, few_shot).advice if a.rule == "prefix-cache")
    assert "identical leading prefix" in advice.reasoning


def test_throughput_decay_with_longer_outputs_is_called_expected():
    """Derived from few_shot.prom: three scrapes 10 s apart with vllm:generation_tokens_total +300
    then +150 (30 -> 15 tok/s) and vllm:request_generation_tokens_sum raised so the mean output
    grows from 119 to 219 tokens."""
    text = snapshot_text("few_shot")
    snaps = []
    for t, generated, output_sum in [(0, 2827, 2621), (10, 3127, 3821), (20, 3277, 4821)]:
        derived = edited(edited(text, "vllm:generation_tokens_total", generated),
                         "vllm:request_generation_tokens_sum", output_sum)
        snaps.append(parse_metrics(derived, timestamp=t))
    first = build_report(snaps[1], snaps[0])
    second = build_report(snaps[2], snaps[1], previous_generation_throughput=first.generation_throughput)
    assert first.generation_throughput == 30 and second.generation_throughput == 15
    advice = next(a for a in second.advice if a.rule == "decode-slowdown-expected")
    assert advice.severity == "info" and "expected" in advice.message
    assert all(a.severity != "warn" for a in second.advice)


def test_real_server_log_gives_startup_figures_and_stats_lines():
    log = (SNAPSHOTS / "server.log").read_text()
    startup = parse_startup(log)
    assert startup.kv_memory_source == "explicit" and startup.kv_memory_gib == 0.05
    assert startup.kv_cache_tokens and startup.max_model_len == 1024
    lines = parse_stats_lines(log)
    assert max(line.waiting for line in lines) > 0
    assert max(line.kv_cache_usage for line in lines) == 1.0


def test_monitor_reads_a_saved_log_offline(deploy_cli):
    result = deploy_cli("monitor", "--log", str(SNAPSHOTS / "server.log"), "--max-num-seqs", "16", "--json")
    assert result.exit_code == 0, result.stderr
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(reports) == len(parse_stats_lines((SNAPSHOTS / "server.log").read_text()))
    full = [r for r in reports if r["kv_cache_usage"] == 1.0]
    assert full and all("lower-max-num-seqs" in {a["rule"] for a in r["advice"]} for r in full)


@pytest.mark.server
def test_monitor_against_running_server_under_load_shows_running_requests_and_kv_usage(vllm_server, deploy_cli):
    stop = threading.Event()
    root = vllm_server.base_url.rstrip("/").removesuffix("/v1")

    def load() -> None:
        with httpx.Client(timeout=600) as client:
            while not stop.is_set():
                try:
                    client.post(f"{root}/v1/completions", json={
                        "model": vllm_server.model_name, "prompt": "Count slowly from one to a thousand:",
                        "max_tokens": 96, "ignore_eos": True, "temperature": 0.0})
                except httpx.HTTPError:
                    return  # the session's server is shutting down

    workers = [threading.Thread(target=load, daemon=True) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        result = deploy_cli("monitor", root, "--once", "--json", "--interval", "1")
    finally:
        stop.set()
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["running"] > 0
    assert report["kv_cache_usage"] > 0
    assert report["advice"]
