"""The report's views: JSON round trip, CSV columns, markdown numbers, terminal tables, the A/B CLI."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from hf2vllm.bench.outputs.csv_file import write_csv
from hf2vllm.bench.outputs.json_file import read_json, write_json
from hf2vllm.bench.outputs.markdown import render_markdown
from hf2vllm.bench.outputs.terminal import render_report
from hf2vllm.cli import app
from hf2vllm.errors import InputError

from bench_samples import full_report, offline_report


def test_json_round_trips_the_whole_report(tmp_path: Path) -> None:
    report = full_report()
    path = write_json(report, tmp_path / "bench.json")
    assert read_json(path) == report
    assert json.loads(path.read_text())["schema_version"] == 1


def test_reading_a_non_report_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "other.json"
    bad.write_text('{"hello": 1}')
    with pytest.raises(InputError, match="other.json: not an hf2vllm benchmark report"):
        read_json(bad)
    broken = tmp_path / "broken.json"
    broken.write_text("{\n oops")
    with pytest.raises(InputError, match="broken.json:2"):
        read_json(broken)
    with pytest.raises(InputError, match="not found"):
        read_json(tmp_path / "missing.json")


def test_csv_has_one_file_per_section_with_flat_rows(tmp_path: Path) -> None:
    report = full_report()
    paths = {p.name: p for p in write_csv(report, tmp_path)}
    assert set(paths) == {"bench_offline.csv", "bench_serve.csv", "bench_decay.csv"}
    offline = list(csv.DictReader(paths["bench_offline.csv"].open()))
    assert [r["label"] for r in offline] == [m.label for m in report.offline.modes]  # type: ignore[union-attr]
    best = next(r for r in offline if r["label"] == "HF batched (bs=16)")
    assert float(best["speedup_vs_hf_batched_best"]) == 1.0
    serve = list(csv.DictReader(paths["bench_serve.csv"].open()))
    assert float(serve[0]["ttft_median_ms"]) == pytest.approx(100.0)
    assert len(list(csv.DictReader(paths["bench_decay.csv"].open()))) == len(report.decay[0].buckets)


def test_markdown_states_machine_load_and_every_mode() -> None:
    report = full_report()
    text = render_markdown(report)
    assert "Test CPU 9000" in text and "[0.5, 0.4, 0.3]" in text
    for mode in report.offline.modes:  # type: ignore[union-attr]
        assert f"| {mode.label} | {mode.output_tokens_per_second:.1f} |" in text
    assert "Fairness check" in text and "holds" in text
    assert "Saturation point: concurrency 4" in text


def test_terminal_view_shows_modes_fairness_and_serve_levels() -> None:
    console = Console(record=True, width=200)
    render_report(full_report(), console)
    text = console.export_text()
    assert "vLLM all at once" in text and "fairness:" in text and "c=4" in text and "rate=inf" in text


def test_compare_command_prints_verdicts_and_writes_json(tmp_path: Path) -> None:
    a = write_json(offline_report(), tmp_path / "a.json")
    b = write_json(offline_report(scale=2.0), tmp_path / "b.json")
    out = tmp_path / "ab.json"
    result = CliRunner().invoke(app, ["bench", "compare", str(a), str(b), "--json", str(out)],
                                env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "B better" in result.output
    rows = json.loads(out.read_text())["rows"]
    assert rows and all(r["ratio_b_over_a"] == pytest.approx(2.0) for r in rows)


def test_compare_command_reports_a_missing_file_on_one_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "hf2vllm.cli", "bench", "compare", str(tmp_path / "nope.json"),
                           str(tmp_path / "nope.json")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: benchmark report not found: {tmp_path / 'nope.json'}"]


def test_suite_refuses_an_unknown_stage_before_any_work(tmp_path: Path) -> None:
    from hf2vllm.bench.suite import SuiteOptions, run_suite

    with pytest.raises(InputError, match="--stages: unknown stage"):
        run_suite(SuiteOptions(out_dir=tmp_path, markdown=None, stages=["offline", "warp_drive"]))
    assert not any(tmp_path.iterdir())
