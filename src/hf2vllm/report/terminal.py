"""Rich terminal view of a ``CompareReport``: a per-request table and a summary line."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from hf2vllm.report.schema import CompareReport


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


def render_summary(report: CompareReport, console: Console) -> None:
    s = report.summary
    colour = "green" if s.exact_matches == s.requests else ("yellow" if s.exact_match_rate >= 0.9 else "red")
    speeds = " · ".join(
        f"{b.name}: load {b.load_seconds:.1f}s, generate {b.generate_seconds:.1f}s, "
        f"{b.output_tokens_per_second:.1f} tok/s"
        for b in report.backends
    )
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
        return
    counts = " · ".join(f"[{VERDICT_STYLE[v]}]{v}: {n}[/]" for v, n in s.verdicts.items())
    line = f"verdicts — {counts}"
    if s.mean_text_similarity is not None:
        line += f" · mean text similarity {s.mean_text_similarity:.3f}"
    console.print(line)
    tf = s.teacher_forcing
    if tf is not None and tf.tokens:
        console.print(
            f"teacher forcing ({report.logprobs_mode} logprobs, {tf.tokens} positions): |Δlogprob| max "
            f"{tf.max_abs_diff:.4g} · mean {tf.mean_abs_diff:.4g} · p99 {tf.p99_abs_diff:.4g} · "
            f"argmax agreement {tf.argmax_agreement:.1%}"
        )
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


def render_report(report: CompareReport, console: Console | None = None, *, only_mismatches: bool = False) -> None:
    console = console or Console()
    render_comparison_table(report, console, only_mismatches=only_mismatches)
    render_summary(report, console)
    render_diagnosis(report, console)
