"""The run verdict, measured noise, verdict method and survival curve in the terminal and HTML views, on
hand-built reports (no engine), and a 1.1-style report that lacks them."""

from __future__ import annotations

import re

import pytest
from rich.console import Console

from hf2vllm.environment import EnvironmentInfo
from hf2vllm.report.html import render_html, survival_chart_svg
from hf2vllm.report.schema import (
    BackendRunSummary,
    CollapseCheck,
    CompareReport,
    DeltaStats,
    DivergenceDiagnosis,
    NoiseCalibration,
    ParitySummary,
    RequestComparison,
    RunVerdict,
    SurvivalPoint,
)
from hf2vllm.report.terminal import render_report

STATEMENT = "vllm is as close to hf as hf is to itself: p99 |Δlogprob| 0.002 vs hf's own 0.0015 (1.33×, limit 2×)"
SURVIVAL = [
    SurvivalPoint(position=0, identical=1.0, at_risk=3),
    SurvivalPoint(position=5, identical=0.666667, at_risk=3),
    SurvivalPoint(position=9, identical=0.333333, at_risk=2),
]


def stats(p99: float, top1: float = 1.0, tokens: int = 40) -> DeltaStats:
    return DeltaStats(tokens=tokens, max_abs_diff=2 * p99, mean_abs_diff=p99 / 4, p99_abs_diff=p99,
                      argmax_agreement=top1)


def environment() -> EnvironmentInfo:
    return EnvironmentInfo(python="3.12", platform="linux", processor="x86_64", cpu_count=2, packages={},
                           device="cpu", model_path="/models/tiny", model_config_sha256=None)


def row(rid: str, fork: int | None, *, generated: bool = True, cand_loops: bool = False) -> RequestComparison:
    ref = list(range(10, 22))
    cand = list(ref) if fork is None else [*ref[:fork], 99, *ref[fork + 1:]]
    diagnosis = None
    if fork is not None:
        diagnosis = DivergenceDiagnosis(
            position=fork, reference_token_id=ref[fork], candidate_token_id=99, reference_margin=0.001,
            candidate_margin=0.0005, candidate_rank_of_reference_token=2, noise_floor=0.003,
            noise_source="reference vs itself 0.003", verdict="near_tie", reason="both margins within the noise",
        )
    return RequestComparison(
        id=rid, prompt_tokens=7, reference_token_ids=ref, candidate_token_ids=cand,
        reference_text="r", candidate_text="c", reference_finish_reason="length", candidate_finish_reason="length",
        exact_match=fork is None, first_divergence=fork, verdict="match" if fork is None else "near_tie",
        diagnosis=diagnosis, teacher_forced_fork=fork, reference_generated=generated,
        reference_degenerate=False, candidate_degenerate=cand_loops,
    )


def base_report(**fields) -> CompareReport:  # type: ignore[no-untyped-def]
    rows = [row("a", None, generated=False), row("b", 5), row("c", 9, cand_loops=True)]
    values = {
        "reference": "hf", "candidate": "vllm", "dtype": "float32", "generation": {"max_new_tokens": 12},
        "summary": ParitySummary(requests=3, exact_matches=1, exact_match_rate=1 / 3, mean_common_prefix_fraction=0.6,
                                 verdicts={"match": 1, "near_tie": 2}, teacher_forcing=stats(0.002)),
        "backends": [
            BackendRunSummary(name="hf", load_seconds=1.0, generate_seconds=2.5, mode="teacher_forced",
                              output_tokens=36, output_tokens_per_second=14.4),
            BackendRunSummary(name="vllm", load_seconds=3.0, generate_seconds=0.7, output_tokens=36,
                              output_tokens_per_second=51.4),
        ],
        "requests": rows, "environment": environment(), "logprobs_mode": "raw_logprobs",
    }
    values.update(fields)
    return CompareReport(**values)


def new_report(*, flagged: bool = False) -> CompareReport:
    collapse = CollapseCheck(rule="last 8 tokens repeat", reference_degenerate=[], candidate_degenerate=["c"],
                             candidate_only=1, reference_only=0, p_value=0.5, flagged=flagged)
    return base_report(
        verdict_method="teacher_forcing",
        noise=NoiseCalibration(change="alone vs batched", dtype="float32", device="cpu", requests=3,
                               reference_vs_reference=stats(0.0015), prefill_vs_decode=stats(0.0007),
                               noise=0.003, resolution_rule="one float32 step"),
        run_verdict=RunVerdict(within_reference_noise=not flagged, statement=STATEMENT,
                               reference_vs_candidate=stats(0.002, 0.97), reference_vs_reference=stats(0.0015, 0.99),
                               p99_ratio=1.333, survival=SURVIVAL, collapse=collapse),
        wall_seconds=9.5,
    )


def terminal(report: CompareReport) -> str:
    console = Console(record=True, width=120)
    render_report(report, console)
    return console.export_text()


def test_terminal_shows_method_noise_verdict_survival_and_collapse() -> None:
    text = terminal(new_report())
    flat = " ".join(text.split())
    assert "verdict by teacher forcing: the reference generated 2 of 3 requests (forks)" in flat
    assert "noise (hf vs hf, alone vs batched, 3 requests): |Δlogprob| max 0.003 · p99 0.0015" in flat
    assert "prefill vs decode max 0.0014" in flat
    assert STATEMENT in flat
    assert "p99 ratio 1.333×" in flat
    assert re.search(r"hf vs vllm\s+│\s+40\s+│\s+0\.002\s+│\s+0\.004\s+│\s+0\.0005\s+│\s+97\.0%", text)
    assert re.search(r"hf vs hf\s+│\s+40\s+│\s+0\.0015\s+│", text)
    assert "identical answers through output position — 0: 100% · 8: 67% · last 11: 33%" in flat
    assert "free-running: degenerate outputs reference 0 · candidate 1 · McNemar p=0.5" in flat
    assert flat.count("quiet") == 1 and "flagged" not in flat
    # The teacher-forced reference has no meaningful tok/s; the generating candidate keeps it.
    assert "hf: load 1.0s, score+forks 2.5s" in flat and "14.4 tok/s" not in flat
    assert "vllm: load 3.0s, generate 0.7s, 51.4 tok/s" in flat and "wall 9.5s" in flat


GREEN, RED = "\x1b[32m", "\x1b[31m"


@pytest.mark.parametrize(("flagged", "colour", "other"), [(False, GREEN, RED), (True, RED, GREEN)])
def test_terminal_colours_the_verdict_and_names_the_collapse_state(flagged: bool, colour: str, other: str) -> None:
    console = Console(record=True, width=120, force_terminal=True, color_system="standard")
    render_report(new_report(flagged=flagged), console)
    styled = console.export_text(styles=True, clear=False)
    plain = " ".join(console.export_text().split())
    state = "flagged" if flagged else "quiet"
    assert f"McNemar p=0.5 (discordant 1 candidate-only / 0 reference-only, alpha 0.05) — {state}" in plain
    # Within the reference's noise the statement is green (ANSI 32); a flagged collapse makes it red (31).
    statement_line = next(line for line in styled.splitlines() if "as close to hf" in line)
    assert colour in statement_line and other not in statement_line


def test_a_1_1_report_renders_without_the_new_lines() -> None:
    old = base_report(schema_version="1.1", backends=[
        BackendRunSummary(name="hf", load_seconds=1.0, generate_seconds=2.5, output_tokens=36,
                          output_tokens_per_second=14.4),
    ])
    saved_as_1_1 = old.model_dump_json(exclude={"verdict_method", "verdict_method_note", "noise", "run_verdict"})
    reloaded = CompareReport.model_validate_json(saved_as_1_1)
    text = " ".join(terminal(reloaded).split())
    assert "hf: load 1.0s, generate 2.5s, 14.4 tok/s" in text
    assert "teacher forcing (raw_logprobs, 40 positions)" in text
    for absent in ("verdict by", "noise (", "run verdict", "free-running", "identical answers", "score+forks"):
        assert absent not in text
    html = render_html(reloaded)
    assert 'id="run-verdict"' not in html and "<svg" in html


def test_hf_generate_method_says_so_with_its_note() -> None:
    report = base_report(verdict_method="hf_generate", verdict_method_note="the candidate returns no prompt logprobs")
    text = " ".join(terminal(report).split())
    assert "verdict by hf generate: the reference generated every request — the candidate returns no prompt" in text


def test_html_has_the_run_verdict_section_and_a_step_per_survival_point() -> None:
    html = render_html(new_report())
    section = html[html.index('<section id="run-verdict">'):html.index('<section id="causes">')]
    assert STATEMENT.replace("'", "&#39;") in section and 'class="statement pass"' in section
    assert "verdict by teacher forcing: the reference generated 2 of 3 requests (forks)" in section
    assert 'id="verdict-stats"' in section and section.count("<tr><td>hf vs ") == 2
    assert 'id="noise-calibration"' in section and "alone vs batched" in section
    assert 'id="collapse-check"' in section and ">quiet<" in section
    chart = section[section.index('<svg class="chart survival"'):]
    chart = chart[:chart.index("</svg>")]
    assert chart.count('<path class="step"') == len(SURVIVAL)
    assert "output position" in chart and "share identical" in chart
    # Per request: the teacher-forced fork, who generated the answer, the noise source.
    assert "teacher-forced fork at 5" in html and "reference scored only" in html
    assert html.count("reference generated</span>") == 2
    assert "reference vs itself 0.003" in html and "vllm loops" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.IGNORECASE)
    assert not re.search(r"url\(\s*['\"]?https?:", html, re.IGNORECASE)


def _step_coords(svg: str) -> list[tuple[float, float, float, float]]:
    """Per step path: (start x, start y, x of the drop, y after the drop)."""
    found = re.findall(r'<path class="step"[^>]* d="M([\d.]+),([\d.]+) H([\d.]+) V([\d.]+)"', svg)
    return [tuple(float(v) for v in match) for match in found]  # type: ignore[misc]


def test_survival_chart_has_share_1_at_the_top_and_0_at_the_bottom() -> None:
    points = [SurvivalPoint(position=0, identical=1.0, at_risk=4), SurvivalPoint(position=5, identical=0.5, at_risk=4),
              SurvivalPoint(position=10, identical=0.0, at_risk=2)]
    svg = survival_chart_svg(points, 10, width=400, height=200)
    x_axis = re.search(r'<line x1="([\d.]+)" y1="([\d.]+)" x2="([\d.]+)" y2="([\d.]+)" class="axis x-axis"', svg)
    y_axis = re.search(r'<line x1="([\d.]+)" y1="([\d.]+)" x2="([\d.]+)" y2="([\d.]+)" class="axis y-axis"', svg)
    assert x_axis and y_axis
    top, bottom = float(y_axis.group(2)), float(y_axis.group(4))
    left, right = float(x_axis.group(1)), float(x_axis.group(3))
    assert top < bottom and float(x_axis.group(2)) == bottom
    steps = _step_coords(svg)
    assert len(steps) == 3
    # Share 1.0 sits on the top of the y axis, 0 on the x axis; 0.5 halfway; y only falls (SVG y grows downwards).
    assert steps[0][1] == top and steps[0][3] == top
    assert steps[1][3] == (top + bottom) / 2
    assert steps[2][3] == bottom
    # x: position 0 at the y axis, the drops at their positions, the last position at the right end.
    assert steps[0][2] == left and steps[1][2] == (left + right) / 2 and steps[2][2] == right
    # Each step starts where the previous one ended.
    assert steps[1][:2] == (steps[0][2], steps[0][3]) and steps[2][:2] == (steps[1][2], steps[1][3])


def test_survival_chart_of_no_points_is_an_empty_chart() -> None:
    assert '<path class="step"' not in survival_chart_svg([], 10)
