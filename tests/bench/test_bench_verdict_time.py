"""``hf2vllm bench verdict`` (time to a verdict): ratio, medians, ABBA order and rendering on hand-made
runs (no engine; the real run is ``make bench``), plus the CLI's input checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from hf2vllm.bench.verdict_time import (
    VerdictTimeResult,
    VerdictTimeRun,
    build_result,
    ratio_of,
    render_table,
    run_from_alone,
    run_from_report,
    run_order,
    summarise_path,
    table_rows,
    verdict_sentence,
    write_json,
    write_markdown,
)
from hf2vllm.errors import InputError


def make_run(path: str, wall: float, vllm_load: float = 20.0, vllm_gen: float = 10.0, repeat: int = 0,
             forks: int = 3, **extra: object) -> VerdictTimeRun:
    return VerdictTimeRun(
        path=path, repeat=repeat, wall_seconds=wall, vllm_load_seconds=vllm_load, vllm_generate_seconds=vllm_gen,
        hf_load_seconds=2.0, hf_seconds=wall - vllm_load - vllm_gen - 2.0,
        ratio=round(ratio_of(wall, vllm_load, vllm_gen), 3), ratio_in_run=round(ratio_of(wall, vllm_load, vllm_gen), 3),
        verdicts={"match": 45, "near_tie": 3, "mismatch": 2},
        exact_matches=45, requests=50, forks=forks if path == "teacher_forcing" else 50, **extra,  # type: ignore[arg-type]
    )


def test_ratio_is_wall_over_vllm_load_plus_generate() -> None:
    assert ratio_of(107.1, 20.0, 10.0) == pytest.approx(3.57)
    assert ratio_of(36.0, 20.0, 10.0) == pytest.approx(1.2)
    with pytest.raises(ValueError):
        ratio_of(10.0, 0.0, 0.0)


def test_order_alternates_abba_over_repeats() -> None:
    paths = ("teacher_forcing", "hf_generate", "vllm_alone")
    assert run_order(paths, 1) == [(0, "teacher_forcing"), (0, "hf_generate"), (0, "vllm_alone")]
    assert [p for _, p in run_order(paths, 2)] == [
        "teacher_forcing", "hf_generate", "vllm_alone", "vllm_alone", "hf_generate", "teacher_forcing",
    ]
    assert [r for r, _ in run_order(("hf_generate", "vllm_alone", "teacher_forcing"), 2)] == [0, 0, 0, 1, 1, 1]
    assert run_order(("vllm_alone", "hf_generate", "teacher_forcing"), 2)[0] == (0, "vllm_alone")


@pytest.mark.parametrize("order, repeats", [(("teacher_forcing", "hf_generate"), 1),
                                            (("hf_generate", "hf_generate", "vllm_alone"), 1),
                                            (("teacher_forcing", "hf_generate", "vllm_alone", "x"), 1),
                                            (("teacher_forcing", "hf_generate", "vllm_alone"), 0)])
def test_order_rejects_missing_duplicate_or_no_repeats(order: tuple[str, ...], repeats: int) -> None:
    with pytest.raises(InputError):
        run_order(order, repeats)


def test_baseline_runs_are_the_denominator_and_the_in_run_ratio_is_kept() -> None:
    # In-run vLLM 20 + 10 s; alone it took 16 + 8 and 18 + 9 s: medians 17 + 8.5 = 25.5 s.
    runs = [make_run("teacher_forcing", 36.0), make_run("hf_generate", 102.0),
            run_from_alone(SimpleNamespace(load_seconds=16.0, generate_seconds=8.0, results=[1] * 50), 0, 25.0),
            run_from_alone(SimpleNamespace(load_seconds=18.0, generate_seconds=9.0, results=[1] * 50), 1, 28.0)]
    result = build_result(runs, device="cpu")
    assert result.baseline_seconds == 25.5
    assert result.ratio_new == pytest.approx(36.0 / 25.5, abs=1e-3) and result.ratio_old == 4.0
    assert result.paths["teacher_forcing"].ratio_in_run == 1.2
    assert result.meets_target is True and "vLLM's own time 25.5 s (measured alone)" in verdict_sentence(result)
    baseline_row = table_rows(result)[-1]
    assert baseline_row[0].startswith("baseline: vLLM alone") and baseline_row[6] == "1 (denominator)"
    alone = result.paths["vllm_alone"]
    assert (alone.runs, alone.vllm_load_seconds, alone.vllm_generate_seconds, alone.requests) == (2, 17.0, 8.5, 50)
    # Without a baseline the in-run figure is the ratio, and the sentence says so.
    no_baseline = build_result(runs[:2], device="cpu")
    assert no_baseline.ratio_new == 1.2 and no_baseline.baseline_seconds is None
    assert "read from inside each compare run" in verdict_sentence(no_baseline)


def test_medians_per_path_and_speedup() -> None:
    runs = [
        make_run("teacher_forcing", 36.0, repeat=0),   # ratio 1.2
        make_run("hf_generate", 107.1, repeat=0),      # ratio 3.57
        make_run("hf_generate", 120.0, repeat=1),      # ratio 4.0
        make_run("teacher_forcing", 45.0, repeat=1),   # ratio 1.5
        make_run("teacher_forcing", 39.0, repeat=2),   # ratio 1.3
        make_run("hf_generate", 90.0, repeat=2),       # ratio 3.0
    ]
    new = summarise_path(runs, "teacher_forcing")
    assert new is not None and new.runs == 3
    assert new.wall_seconds == 39.0 and new.ratio == 1.3 and new.ratio_spread == [1.2, 1.5]
    result = build_result(runs, device="cpu")
    assert result.ratio_new == 1.3 and result.ratio_old == 3.57
    assert result.speedup == pytest.approx(107.1 / 39.0, abs=1e-3)
    assert result.target == 1.5 and result.meets_target is True
    assert result.paths["hf_generate"].forks == 50 and result.paths["teacher_forcing"].forks == 3
    assert summarise_path(runs[:1], "hf_generate") is None


def test_median_of_even_repeats_is_the_mean_of_the_middle_two() -> None:
    runs = [make_run("teacher_forcing", w) for w in (36.0, 48.0)]
    assert summarise_path(runs, "teacher_forcing").wall_seconds == 42.0  # type: ignore[union-attr]


def test_target_depends_on_the_device_class() -> None:
    runs = [make_run("teacher_forcing", 42.0), make_run("hf_generate", 107.1)]  # new ratio 1.4
    assert build_result(runs, device="cpu").meets_target is True
    gpu = build_result(runs, device="cuda")
    assert gpu.target == 1.3 and gpu.meets_target is False
    assert "target (GPU): new-path ratio 1.40 <= 1.3: missed" in verdict_sentence(gpu)


def test_fallback_to_hf_generate_is_noted() -> None:
    runs = [make_run("teacher_forcing", 40.0, verdict_method="hf_generate", verdict_method_note="image requests")]
    assert build_result(runs).notes == ["teacher_forcing run 0 fell back to hf_generate: image requests"]


def test_run_from_report_reads_backends_and_counts_forks() -> None:
    backends = [SimpleNamespace(load_seconds=3.0, generate_seconds=5.0, mode="teacher_forced"),
                SimpleNamespace(load_seconds=20.0, generate_seconds=10.0, mode="generate")]
    rows = [SimpleNamespace(reference_generated=g) for g in (False, True, False, False)]
    report = SimpleNamespace(wall_seconds=39.0, backends=backends, requests=rows,
                             summary=SimpleNamespace(verdicts={"match": 3, "near_tie": 1, "mismatch": 0},
                                                     exact_matches=3),
                             verdict_method="teacher_forcing", verdict_method_note=None)
    run = run_from_report(report, "teacher_forcing", repeat=1)
    assert (run.ratio, run.forks, run.requests, run.exact_matches) == (1.3, 1, 4, 3)
    assert (run.vllm_load_seconds, run.vllm_generate_seconds, run.hf_load_seconds, run.hf_seconds) == (20, 10, 3, 5)
    assert run.hf_mode == "teacher_forced" and run.repeat == 1
    report.wall_seconds = None
    assert run_from_report(report, "teacher_forcing", measured_wall=45.0).ratio == 1.5


def test_markdown_table_and_json(tmp_path: Path) -> None:
    runs = [make_run("teacher_forcing", 36.0), make_run("hf_generate", 107.1)]
    result = build_result(runs, device="cpu", max_new_tokens=64, notes=["in-process timing"])
    text = render_table(result)
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| path |"))
    assert lines[header + 1].startswith("|---|---:")
    new_row, old_row = lines[header + 2], lines[header + 3]
    assert new_row.startswith("| new: teacher forcing") and "| 1.20 |" in new_row and "| 3/50 |" in new_row
    assert old_row.startswith("| old: HF generate()") and "| 3.57 |" in old_row and "| 50/50 |" in old_row
    assert all(line.count("|") == lines[header].count("|") for line in (new_row, old_row))
    assert "target (CPU): new-path ratio 1.20 <= 1.5: holds" in text
    assert "speedup of the new path (old wall time / new): 2.98x" in text and "- in-process timing" in text
    write_markdown(result, tmp_path / "v.md")
    assert (tmp_path / "v.md").read_text() == text
    back = VerdictTimeResult.model_validate(json.loads(write_json(result, tmp_path / "d" / "v.json").read_text()))
    assert back == result


def test_spread_shown_with_repeats() -> None:
    runs = [make_run("teacher_forcing", w, repeat=i) for i, w in enumerate((36.0, 39.0, 45.0))]
    assert "1.30 (1.20-1.50)" in render_table(build_result(runs))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    # A wide terminal: Rich's error box would otherwise wrap the message.
    return subprocess.run([sys.executable, "-m", "hf2vllm.cli", "bench", "verdict", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})


def test_cli_rejects_zero_repeats_with_exit_2() -> None:
    done = _cli("--repeats", "0", "--out", "/nonexistent/never.json")
    assert done.returncode == 2, done.stderr
    assert "Invalid value for '--repeats'" in done.stderr and "greater than or equal to 1" in done.stderr


def test_cli_rejects_unknown_device_with_exit_2() -> None:
    done = _cli("--device", "tpu", "--out", "/nonexistent/never.json")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == "error: --device: expected cpu or cuda, got 'tpu'"
