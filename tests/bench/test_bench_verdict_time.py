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


# ---------------------------------------------------------------- against_record (issue #21): compare --against REF


def test_order_takes_the_against_path_at_most_once() -> None:
    from hf2vllm.bench.verdict_time import ORDER_WITH_AGAINST

    assert ORDER_WITH_AGAINST == ("teacher_forcing", "against_record", "hf_generate", "vllm_alone")
    assert [p for _, p in run_order(ORDER_WITH_AGAINST, 2)] == [
        "teacher_forcing", "against_record", "hf_generate", "vllm_alone",
        "vllm_alone", "hf_generate", "against_record", "teacher_forcing",
    ]
    assert [r for r, _ in run_order(ORDER_WITH_AGAINST, 2)] == [0, 0, 0, 0, 1, 1, 1, 1]
    for bad in (("teacher_forcing", "against_record", "against_record", "hf_generate", "vllm_alone"),
                ("against_record", "hf_generate", "vllm_alone"), ("against_record",)):
        with pytest.raises(InputError, match="at most once against_record"):
            run_order(bad, 1)


def _against_runs() -> list[VerdictTimeRun]:
    # vLLM alone 24 + 8 = 32 s in both repeats; live 48 and 40 s, against 36 and 34 s.
    alone = [run_from_alone(SimpleNamespace(load_seconds=24.0, generate_seconds=8.0, results=[1] * 50), r, 33.0)
             for r in (0, 1)]
    return [make_run("teacher_forcing", 48.0, repeat=0), make_run("against_record", 36.0, repeat=0, forks=0,
                                                                  verdict_method="record"),
            make_run("hf_generate", 100.0, repeat=0), alone[0], alone[1], make_run("hf_generate", 104.0, repeat=1),
            make_run("against_record", 34.0, repeat=1, verdict_method="record"),
            make_run("teacher_forcing", 40.0, repeat=1)]


def test_against_ratios_over_vllm_alone_and_over_the_live_path() -> None:
    result = build_result(_against_runs(), device="cpu", record_seconds=61.25, record_bytes=123456)
    assert result.baseline_seconds == 32.0
    assert result.paths["against_record"].wall_seconds == 35.0 and result.paths["teacher_forcing"].wall_seconds == 44.0
    assert result.ratio_against == pytest.approx(35.0 / 32.0, abs=1e-3)
    assert result.paths["against_record"].ratio_spread == [round(34 / 32, 3), round(36 / 32, 3)]
    assert result.against_over_live == pytest.approx(35.0 / 44.0, abs=1e-3)  # medians' quotient
    assert result.against_over_live_spread == [0.75, 0.85]  # 36/48 and 34/40, each repeat's two runs
    assert result.ratio_new == pytest.approx(44.0 / 32.0, abs=1e-3) and result.meets_target is True
    assert result.record_seconds == 61.25 and not result.notes  # same verdicts, method "record"
    # The record is not in any ratio: the same runs without it give the same figures.
    bare = build_result(_against_runs(), device="cpu")
    assert (bare.ratio_against, bare.against_over_live) == (result.ratio_against, result.against_over_live)


def test_against_figures_absent_without_the_path_or_the_live_one() -> None:
    runs = _against_runs()
    without = build_result([r for r in runs if r.path != "against_record"], device="cpu")
    assert (without.ratio_against, without.against_over_live, without.against_over_live_spread) == (None, None, [])
    assert "against" not in verdict_sentence(without)
    no_live = build_result([r for r in runs if r.path != "teacher_forcing"], device="cpu")
    assert no_live.ratio_against is not None and no_live.against_over_live is None


def test_against_run_notes_other_verdicts_or_method() -> None:
    runs = [make_run("teacher_forcing", 40.0),
            make_run("against_record", 35.0, verdict_method="teacher_forcing").model_copy(
                update={"verdicts": {"match": 44, "near_tie": 4, "mismatch": 2}})]
    notes = build_result(runs).notes
    assert "against_record run 0 reports verdict method teacher_forcing, not record" in notes
    assert ("verdicts differ: against_record match 44, near_tie 4, mismatch 2, teacher_forcing match 45, "
            "near_tie 3, mismatch 2") in notes


def test_run_from_report_against_a_record_counts_no_forks() -> None:
    backends = [SimpleNamespace(load_seconds=0.01, generate_seconds=0.0, mode="generate"),
                SimpleNamespace(load_seconds=20.0, generate_seconds=10.0, mode="generate")]
    report = SimpleNamespace(wall_seconds=33.0, backends=backends,
                             requests=[SimpleNamespace(reference_generated=True) for _ in range(4)],
                             summary=SimpleNamespace(verdicts={"match": 4}, exact_matches=4),
                             verdict_method="record", verdict_method_note=None)
    run = run_from_report(report, "against_record")
    assert (run.path, run.forks, run.requests, run.ratio, run.verdict_method) == ("against_record", 0, 4, 1.1, "record")
    assert run_from_report(report, "hf_generate").forks == 4


def test_against_markdown_rows_sentence_and_json(tmp_path: Path) -> None:
    result = build_result(_against_runs(), device="cpu", record_seconds=61.25, record_bytes=123456,
                          order=["teacher_forcing", "against_record", "hf_generate", "vllm_alone"], repeats=2)
    rows = table_rows(result)
    labels = [r[0].split(":")[0] for r in rows]
    assert labels == ["new", "against a record", "old", "baseline", "record (once, before the timed runs; in no ratio)"]
    against_row, record_row = rows[1], rows[-1]
    assert against_row[1] == "35.0" and against_row[6] == "1.09 (1.06-1.12)" and against_row[8] == "recorded"
    assert record_row[1] == "61.2" and set(record_row[2:]) == {"-"}
    text = render_table(result)
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| path |"))
    table = lines[header:header + 7]
    assert all(line.count("|") == lines[header].count("|") for line in table)
    assert table[3].startswith("| against a record: compare --against REF") and table[6].startswith("| record (once")
    assert "against-a-record ratio 1.09" in text
    assert "compare --against / live compare (teacher forcing) wall time: 0.80 (per repeat 0.75-0.85)" in text
    assert "the record itself took 61.2 s once (in no ratio)" in text
    back = VerdictTimeResult.model_validate(json.loads(write_json(result, tmp_path / "v.json").read_text()))
    assert back == result and back.against_over_live == result.against_over_live


def test_json_written_before_the_against_path_still_reads() -> None:
    # docs/bench/verdict.json as written before issue #21: no against fields, three paths.
    old = {"kind": "verdict_time", "device": "cpu", "repeats": 2,
           "order": ["teacher_forcing", "hf_generate", "vllm_alone"], "runs": [make_run("teacher_forcing", 36.0).model_dump()], "ratio_new": 1.2}
    result = VerdictTimeResult.model_validate(old)
    assert result.record_seconds is None and result.against_over_live is None and result.against_over_live_spread == []
    assert "against" not in render_table(build_result(result.runs))


def test_cli_offers_against_on_by_default() -> None:
    done = _cli("--help")
    assert done.returncode == 0, done.stderr
    assert "--against" in done.stdout and "--no-against" in done.stdout and "default: against" in done.stdout
