"""The serve benchmark against the session's real `vllm serve`, at tiny scale (no timings asserted)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hf2vllm.bench.schema import SLO, RequestTiming
from hf2vllm.bench.serve.runner import ServeOptions, WorkItem, run_serve, workload_from_requests
from hf2vllm.cli import app
from hf2vllm.requests import bundled_prompts_path, load_requests

pytestmark = pytest.mark.server

TOKENS = 4


def items() -> list[WorkItem]:
    return workload_from_requests(load_requests(bundled_prompts_path())[:3], max_tokens=TOKENS)


@pytest.fixture(scope="module")
def sweep(vllm_server):  # type: ignore[no-untyped-def]
    options = ServeOptions(url=vllm_server.base_url, concurrency=[1, 2], rates=[float("inf")], max_requests=3,
                           warmup_requests=1, slo=SLO(ttft_ms=1e7, tpot_ms=1e7))
    timings: dict[str, list[RequestTiming]] = {}
    report = asyncio.run(run_serve(options, items(), keep_timings=timings))
    return report, timings


def test_every_level_measures_streamed_requests_with_fixed_output_length(sweep) -> None:  # type: ignore[no-untyped-def]
    report, timings = sweep
    assert [(p.profile, p.load) for p in report.points] == [("concurrency", 1), ("concurrency", 2), ("rate", float("inf"))]
    for point in report.points:
        assert (point.requests, point.completed, point.failed) == (3, 3, 0)
        assert point.output_tokens == 3 * TOKENS
        assert point.ttft_ms is not None and point.e2e_ms is not None and point.tpot_ms is not None
        assert point.ttft_ms.max <= point.e2e_ms.max
        assert point.itl_ms is not None and point.itl_ms.count == 3 * (TOKENS - 1)
    for runs in timings.values():
        assert len(runs) == 3  # warm-up requests are not among the measured ones
        assert all(len(t.token_times) == TOKENS and t.start < t.first_token <= t.end for t in runs)  # type: ignore[operator]


def test_goodput_and_saturation_follow_the_slo(sweep) -> None:  # type: ignore[no-untyped-def]
    report, _ = sweep
    # Unreachable bounds: every request meets them, so every level holds and goodput equals throughput.
    assert all(p.slo_attainment == 1.0 for p in report.points)
    assert all(p.goodput_requests_per_second == pytest.approx(p.requests_per_second) for p in report.points)
    assert report.saturation_profile == "rate" and report.saturation_load == float("inf")


def test_time_cap_stops_a_level_by_itself(vllm_server) -> None:  # type: ignore[no-untyped-def]
    options = ServeOptions(url=vllm_server.base_url, concurrency=[1], max_requests=50, warmup_requests=0,
                           time_cap_s=0.01)
    report = asyncio.run(run_serve(options, items()))
    point = report.points[0]
    assert point.stopped_by_time_cap and point.requests < 50


def test_serve_command_writes_json_csv_and_html(vllm_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(app, ["bench", "serve", vllm_server.base_url, "-c", "1", "-n", "2", "--warmup", "0",
                                      "--max-tokens", "3", "--slo-ttft-ms", "10000000", "--out", str(tmp_path)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "bench.json").read_text())
    assert data["serve"]["model"] == vllm_server.model_name
    assert data["serve"]["points"][0]["output_tokens"] == 6
    assert data["serve"]["saturation_load"] == 1
    assert (tmp_path / "bench_serve.csv").is_file() and (tmp_path / "bench.html").is_file()


def _requests_finished(base_url: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    from hf2vllm.deploy.monitor import fetch_metrics

    families = {f.name: f for f in text_string_to_metric_families(fetch_metrics(base_url))}
    return sum(s.value for s in families["vllm:request_success"].samples if s.name == "vllm:request_success_total")


def test_crosscheck_runs_vllm_bench_serve_on_the_same_workload(vllm_server, bundled_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from hf2vllm.bench.crosscheck import OURS, THEIRS, CrossCheckOptions, run_crosscheck

    options = CrossCheckOptions(base_url=vllm_server.base_url, model_name=vllm_server.model_name,
                                tokenizer=bundled_model, prompts=["Hello, my name is", "The capital of France is"],
                                output_len=TOKENS, concurrency=2, num_prompts=2, warmups=0, rounds=2,
                                workdir=tmp_path)
    stale = tmp_path / "vllm-bench" / "round-3.json"
    stale.parent.mkdir()
    stale.write_text("{}")
    before = _requests_finished(vllm_server.base_url)
    check = run_crosscheck(options, ["vllm serve"])
    assert not stale.exists()  # an earlier run's round 3 is not left next to this run's two
    # Priming sends both prompts once, then each tool both prompts per round (the pinned `vllm bench serve`
    # skips its ready-check request by default).
    assert _requests_finished(vllm_server.base_url) - before == 2 + 2 * 2 + 2 * 2
    assert check.first_in_round == [OURS, THEIRS] and check.workload["primed"] == "true"
    assert len(check.ours.output_tokens_per_second) == 2 and len(check.vllm_bench.output_tokens_per_second) == 2
    assert check.vllm_bench.output_tokens_per_second[0] > 0 and check.vllm_bench.median_ttft_ms[0] > 0
    # The TTFT compared is the median over every measured request of both tools (2 per round here).
    assert len(check.ours.ttft_ms) == 4 and len(check.vllm_bench.ttft_ms) == 4
    first_round = check.vllm_bench.ttft_ms[:2]
    assert min(first_round) <= check.vllm_bench.median_ttft_ms[0] <= max(first_round)
    for round_no in (1, 2):
        saved = json.loads((tmp_path / "vllm-bench" / f"round-{round_no}.json").read_text())
        assert saved["completed"] == 2 and saved["total_output_tokens"] == 2 * TOKENS
        assert check.vllm_bench.duration_s[round_no - 1] == round(saved["duration"], 4)
    # Throughput compared: all rounds' tokens over all rounds' measured time, per tool.
    assert check.ours.output_tokens == check.vllm_bench.output_tokens == [2 * TOKENS, 2 * TOKENS]
    pooled = [4 * TOKENS / sum(side.duration_s) for side in (check.ours, check.vllm_bench)]
    assert check.throughput_relative_difference == round(abs(pooled[0] - pooled[1]) / (sum(pooled) / 2), 4)
    assert check.vllm_bench_command[:3] == ["vllm", "bench", "serve"]
    assert "--ignore-eos" in check.vllm_bench_command and "custom" in check.vllm_bench_command
    # One worker imported vLLM for both rounds; each round's own output went to its log.
    assert (tmp_path / "vllm-bench-worker.log").is_file()
    for round_no in (1, 2):
        assert "Serving Benchmark Result" in (tmp_path / f"vllm-bench-round-{round_no}.log").read_text()


def test_vllm_bench_worker_reports_a_bad_round_and_serves_the_next(tmp_path: Path) -> None:
    from hf2vllm.bench.crosscheck import VLLMBenchWorker
    from hf2vllm.errors import BackendUnavailableError

    with VLLMBenchWorker(timeout_s=300, startup_log=tmp_path / "start.log") as worker:
        with pytest.raises(BackendUnavailableError, match=r"round exited with 2; log .*bad\.log"):
            worker.run(["--no-such-option"], tmp_path / "bad.log")
        assert "--no-such-option" in (tmp_path / "bad.log").read_text()
        worker.run(["--help"], tmp_path / "help.log")  # argparse's exit(0) is a clean round
        assert "--max-concurrency" in (tmp_path / "help.log").read_text()
