"""``bench serve`` against an endpoint whose requests fail is not a success (issue #20).

The server is real (``stub_openai_server``: stdlib HTTP on 127.0.0.1, ``/v1/models`` lists one model,
every completion answers an error status); the client, the runner and the CLI are the shipped ones.
"""

from __future__ import annotations

import json
from pathlib import Path

from badinput import run_cli
from stub_openai_server import MODEL, stub_openai_server

from hf2vllm.bench.schema import RequestTiming
from hf2vllm.bench.serve.runner import distinct_errors


def _bench(base_url: str, cwd: Path, *extra: str):  # type: ignore[no-untyped-def]
    return run_cli(["bench", "serve", base_url, "-c", "1", "-n", "3", "--warmup", "1", "--max-tokens", "2",
                    "--out", "out", *extra], cwd)


def test_every_request_failing_exits_1_and_records_each_distinct_error(tmp_path: Path) -> None:
    with stub_openai_server(status=500, message="the engine is dead") as base_url:
        done = _bench(base_url, tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert "  3 x HTTP 500: the engine is dead" in lines, done.stderr
    assert lines[-1].startswith("error: 100% of the requests failed, more than --max-failure-rate 0.1")
    report = json.loads((tmp_path / "out" / "bench.json").read_text())
    point = report["serve"]["points"][0]
    assert (point["requests"], point["completed"], point["failed"]) == (3, 0, 3)
    assert point["errors"] == {"HTTP 500: the engine is dead": 3}
    assert report["serve"]["model"] == MODEL
    assert any("3 of 3 measured requests failed" in note for note in report["notes"])
    assert "HTTP 500: the engine is dead" in (tmp_path / "out" / "bench.html").read_text()


def test_failures_within_max_failure_rate_exit_0_but_are_still_shown_and_recorded(tmp_path: Path) -> None:
    with stub_openai_server(status=404, message="no such route") as base_url:
        done = _bench(base_url, tmp_path, "--max-failure-rate", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 of 3 measured requests failed" in done.stderr and f"HTTP 404 from {base_url}: no such route" in done.stderr
    assert "error:" not in done.stderr
    point = json.loads((tmp_path / "out" / "bench.json").read_text())["serve"]["points"][0]
    assert point["failed"] == 3 and sum(point["errors"].values()) == 3


def test_distinct_errors_drop_request_ids_and_count_each_message() -> None:
    def failed(error: str) -> RequestTiming:
        return RequestTiming(start=0.0, end=0.1, ok=False, error=error)

    timings = [
        failed("request bench-c-1: HTTP 500: boom (gave up after 1 attempts)"),
        failed("request bench-c-2: HTTP 500: boom (gave up after 1 attempts)"),
        failed("request bench-c-3: HTTP 429: slow down (gave up after 7 attempts)"),
        RequestTiming(start=0.0, end=0.1),
    ]
    assert distinct_errors(timings) == {"HTTP 500: boom": 2, "HTTP 429: slow down": 1}
