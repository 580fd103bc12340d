"""Rich terminal view of a ``CompareReport``: the groups (schema 1.3, worst first), a per-request table, a
summary line and the diagnosis (verdicts, teacher forcing, and from schema 1.2 the verdict method, the
measured noise and the run verdict)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from hf2vllm.report.schema import CompareReport, DeltaStats, RunVerdict, SurvivalPoint


def _shorten(text: str | None, width: int = 18) -> str:
    if text is None:
        return "(stopped)"
    text = repr(text)[1:-1]
    return text if len(text) <= width else text[: width - 1] + "…"


def render_comparison_table(report: CompareReport, console: Console, *, only_mismatches: bool = False) -> None:
    table = Table(title=f"{report.reference} vs {report.candidate} — per request", show_lines=False)
    table.add_column("request", overflow="fold")
    table.add_column("prompt tok", justify="right")
    table.add_column("out tok", justify="right")
    table.add_column("match", justify="center")
    table.add_column("first diff", justify="right")
    table.add_column(f"{report.reference} → {report.candidate} at diff")
    for row in report.requests:
        if only_mismatches and row.exact_match:
            continue
        out_tokens = f"{len(row.reference_token_ids)}/{len(row.candidate_token_ids)}"
        if row.exact_match:
            table.add_row(row.id, str(row.prompt_tokens), out_tokens, "[green]✓[/]", "-", "")
        else:
            tokens = (
                f"{_shorten(row.reference_token_at_divergence)} → {_shorten(row.candidate_token_at_divergence)}"
            )
            table.add_row(
                row.id, str(row.prompt_tokens), out_tokens, "[red]✗[/]", str(row.first_divergence), tokens
            )
    console.print(table)


def render_groups(report: CompareReport, console: Console) -> None:
    """The groups (``report.groups``, worst first) as a table, the worst row highlighted; nothing for
    fewer than two groups (one group is the whole run, which the summary line already shows)."""
    if len(report.groups) < 2:
        return
    table = Table(title=f"{report.reference} vs {report.candidate} — by {report.group_by}, worst first")
    table.add_column(str(report.group_by), overflow="fold")
    for column in ("exact", "rate", "match", "near tie", "mismatch", "prefix"):
        table.add_column(column, justify="right")
    for index, group in enumerate(report.groups):
        colour = "green" if group.exact_matches == group.requests else (
            "yellow" if group.exact_match_rate >= 0.9 else "red"
        )
        table.add_row(
            f"{group.name} (worst)" if index == 0 else group.name,
            f"{group.exact_matches}/{group.requests}",
            f"[{colour}]{group.exact_match_rate:.1%}[/]",
            *(str(group.verdicts.get(v, 0)) for v in ("match", "near_tie", "mismatch")),
            f"{group.mean_common_prefix_fraction:.1%}",
            style="bold" if index == 0 else None,
        )
    console.print(table)


def record_lines(report: CompareReport) -> list[str]:
    """What a run against a record says first: a declared model change, then which record it was."""
    record = report.reference_record
    if record is None:
        return []
    versions = ", ".join(f"{k} {v}" for k, v in record.packages.items() if k in ("transformers", "torch"))
    what = f"({record.prompts.requests} requests, {record.dtype}{', ' + versions if versions else ''})"
    if record.recorded_by_this_run:
        where = (f"in {record.path}" if record.kept
                 else "in a temporary folder, removed (--reference-dir or --out keeps it)")
        lines = [f"reference: recorded by this run on {record.ray_workers or 1} Ray workers {where} {what}, "
                 "then read back as a record"]
    else:
        on_ray = f" on {record.ray_workers} Ray workers" if record.ray_workers else ""
        lines = [f"reference: recorded {record.created_at}{on_ray} in {record.path} {what}; no HF model loaded"]
    if record.candidate_model_differs:
        lines.insert(0, f"candidate model differs: {record.candidate_model_differs}")
    return lines


def render_record_lines(report: CompareReport, console: Console) -> None:
    for i, line in enumerate(record_lines(report)):
        console.print(f"[bold yellow]{line}[/]" if i == 0 and report.reference_record and
                      report.reference_record.candidate_model_differs else line, markup=True, highlight=False)


def render_summary(report: CompareReport, console: Console) -> None:
    s = report.summary
    colour = "green" if s.exact_matches == s.requests else ("yellow" if s.exact_match_rate >= 0.9 else "red")
    speeds = " · ".join(
        f"{b.name}: load {b.load_seconds:.1f}s, score+forks {b.generate_seconds:.1f}s"
        if b.mode == "teacher_forced"
        else f"{b.name}: read {b.load_seconds:.1f}s ({b.output_tokens} recorded tokens)"
        if b.mode == "recorded"
        else f"{b.name}: load {b.load_seconds:.1f}s, generate {b.generate_seconds:.1f}s, "
        f"{b.output_tokens_per_second:.1f} tok/s"
        for b in report.backends
    )
    if report.wall_seconds is not None:
        speeds += f" · wall {report.wall_seconds:.1f}s"
    console.print(
        f"[bold {colour}]{s.exact_matches}/{s.requests} exact matches "
        f"({s.exact_match_rate:.1%})[/] · mean common prefix {s.mean_common_prefix_fraction:.1%} · "
        f"{report.dtype} · max_new_tokens {report.generation.get('max_new_tokens')}"
    )
    console.print(speeds)


VERDICT_STYLE = {"match": "green", "near_tie": "yellow", "mismatch": "red"}


def render_diagnosis(report: CompareReport, console: Console, *, worst: int = 5) -> None:
    """Counts per verdict, the named causes with their first evidence, and the worst requests."""
    s = report.summary
    if not s.verdicts:
        render_run_verdict(report, console)
        return
    counts = " · ".join(f"[{VERDICT_STYLE[v]}]{v}: {n}[/]" for v, n in s.verdicts.items())
    line = f"verdicts — {counts}"
    if s.mean_text_similarity is not None:
        line += f" · mean text similarity {s.mean_text_similarity:.3f}"
    console.print(line)
    tf = s.teacher_forcing
    if tf is not None and tf.tokens:
        console.print(
            f"teacher forcing ({report.logprobs_mode}, {tf.tokens} positions): |Δlogprob| max "
            f"{tf.max_abs_diff:.4g} · mean {tf.mean_abs_diff:.4g} · p99 {tf.p99_abs_diff:.4g} · "
            f"argmax agreement {tf.argmax_agreement:.1%}"
        )
    render_run_verdict(report, console)
    for cause in report.causes:
        scope = f"{len(cause.requests)} request(s)" if cause.requests else "all requests"
        console.print(f"[bold red]cause[/] {cause.id} — {cause.title} ({scope})")
        for item in cause.evidence[:2]:
            console.print(f"    {item}", markup=False, highlight=False)
    ranked = sorted(
        (r for r in report.requests if r.verdict != "match"),
        key=lambda r: (r.verdict != "mismatch", -(r.teacher_forcing.stats.max_abs_diff if r.teacher_forcing else 0.0)),
    )
    if not ranked:
        return
    table = Table(title=f"worst {min(worst, len(ranked))} requests")
    for column in ("request", "verdict", "first diff", "ref margin", "noise floor", "max |Δlogprob|", "why"):
        table.add_column(column, overflow="fold")
    for row in ranked[:worst]:
        d = row.diagnosis
        table.add_row(
            row.id,
            f"[{VERDICT_STYLE[row.verdict]}]{row.verdict}[/]",
            "-" if d is None else str(d.position),
            "-" if d is None or d.reference_margin is None else f"{d.reference_margin:.4g}",
            "-" if d is None else f"{d.noise_floor:.3g}",
            "-" if row.teacher_forcing is None else f"{row.teacher_forcing.stats.max_abs_diff:.4g}",
            ", ".join(row.causes) or ("" if d is None else d.reason),
        )
    console.print(table)


def _schema_at_least(report: CompareReport, major: int, minor: int) -> bool:
    try:
        found = tuple(int(part) for part in report.schema_version.split(".")[:2])
    except ValueError:
        return False
    return found >= (major, minor)


def verdict_method_text(report: CompareReport) -> str | None:
    """How the verdicts were reached, in one plain sentence; None for reports before schema 1.2 (they
    carry no verdict method: the reference generated every request)."""
    if not (_schema_at_least(report, 1, 2) or report.noise is not None or report.run_verdict is not None):
        return None
    if report.verdict_method == "teacher_forcing":
        generated = sum(1 for row in report.requests if row.reference_generated)
        text = (
            f"verdict by teacher forcing: the reference generated {generated} of {len(report.requests)} "
            "requests (forks)"
        )
    elif report.verdict_method == "record":
        text = (f"verdict against a record: the reference's answers, logprobs and noise were read from "
                f"{report.reference_record.path if report.reference_record else 'a record'}; the candidate scored "
                "the recorded tokens")
    else:
        text = "verdict by hf generate: the reference generated every request"
    if report.verdict_method_note:
        text += f" — {report.verdict_method_note}"
    return text


SURVIVAL_MARKS = (0, 8, 16, 32)
"""Output positions the terminal reports the survival curve at (plus the last position)."""


def identical_through(points: list[SurvivalPoint], position: int) -> float:
    """Share of answers still identical through ``position``: the step curve's value there (the last point
    at or before it; 1.0 before the first).

    >>> pts = [SurvivalPoint(position=0, identical=1.0, at_risk=4), SurvivalPoint(position=3, identical=0.5, at_risk=2)]
    >>> identical_through(pts, 2), identical_through(pts, 3), identical_through(pts, 40)
    (1.0, 0.5, 0.5)
    """
    value = 1.0
    for point in points:
        if point.position > position:
            break
        value = point.identical
    return value


def longest_output(report: CompareReport) -> int:
    """Length of the longest output of either side (at least 1)."""
    return max(
        (max(len(r.reference_token_ids), len(r.candidate_token_ids)) for r in report.requests), default=1
    ) or 1


def _stats_cells(stats: DeltaStats) -> tuple[str, str, str, str, str]:
    return (
        str(stats.tokens),
        f"{stats.p99_abs_diff:.4g}",
        f"{stats.max_abs_diff:.4g}",
        f"{stats.mean_abs_diff:.4g}",
        f"{stats.argmax_agreement:.1%}",
    )


def _verdict_colour(verdict: RunVerdict) -> str:
    if verdict.within_reference_noise:
        return "green"
    return "red" if verdict.collapse is not None and verdict.collapse.flagged else "yellow"


def render_run_verdict(report: CompareReport, console: Console) -> None:
    """Verdict method, measured noise, the run verdict with its evidence, survival and the collapse check.
    Prints nothing for reports that lack these fields (schema 1.1)."""
    ref, cand = report.reference, report.candidate
    method = verdict_method_text(report)
    if method is not None:
        console.print(method, markup=False, highlight=False)
    noise = report.noise
    if noise is not None:
        rr = noise.reference_vs_reference
        line = (
            f"noise ({ref} vs {ref}, {noise.change}, {noise.requests} requests): |Δlogprob| max "
            f"{rr.max_abs_diff:.4g} · p99 {rr.p99_abs_diff:.4g}"
        )
        if noise.prefill_vs_decode is not None:
            line += f"; prefill vs decode max {noise.prefill_vs_decode.max_abs_diff:.4g}"
        line += f" → near-tie noise {noise.noise:.4g} ({noise.dtype}, {noise.device})"
        console.print(line, markup=False, highlight=False)
    verdict = report.run_verdict
    if verdict is None:
        return
    colour = _verdict_colour(verdict)
    console.print(f"[bold {colour}]run verdict:[/] ", end="")
    console.print(verdict.statement, style=colour, markup=False, highlight=False)
    ratio = "n/a (0/0)" if verdict.p99_ratio is None else f"{verdict.p99_ratio:g}×"
    table = Table(title=f"{ref} vs {cand} next to {ref} vs itself · p99 ratio {ratio}", title_justify="left")
    for column in ("pair", "tokens", "p99 |Δlogprob|", "max", "mean", "top-1 agreement"):
        table.add_column(column, justify="left" if column == "pair" else "right")
    table.add_row(f"{ref} vs {cand}", *_stats_cells(verdict.reference_vs_candidate))
    table.add_row(f"{ref} vs {ref}", *_stats_cells(verdict.reference_vs_reference))
    console.print(table)
    if verdict.survival:
        last = longest_output(report) - 1
        marks = sorted({m for m in SURVIVAL_MARKS if m < last} | {last})
        parts = [
            f"{'last ' if m == last else ''}{m}: {identical_through(verdict.survival, m):.0%}" for m in marks
        ]
        console.print(
            f"identical answers through output position — {' · '.join(parts)}", markup=False, highlight=False
        )
    collapse = verdict.collapse
    if collapse is not None:
        state = "[bold red]flagged[/]" if collapse.flagged else "[green]quiet[/]"
        console.print(
            f"free-running: degenerate outputs reference {len(collapse.reference_degenerate)} · candidate "
            f"{len(collapse.candidate_degenerate)} · McNemar p={collapse.p_value:.3g} "
            f"(discordant {collapse.candidate_only} candidate-only / {collapse.reference_only} reference-only, "
            f"alpha {collapse.alpha:g}) — {state}",
            highlight=False,
        )


def render_report(report: CompareReport, console: Console | None = None, *, only_mismatches: bool = False) -> None:
    console = console or Console()
    render_record_lines(report, console)
    render_groups(report, console)
    render_comparison_table(report, console, only_mismatches=only_mismatches)
    render_summary(report, console)
    render_diagnosis(report, console)
