"""``hf2vllm report``: re-render a saved parity report (terminal summary, report.html, exit gate)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console


def report(
    source: Path = typer.Argument(..., help="A compare output directory (containing report.json) or a report.json."),
    html: Path = typer.Option(None, "--html", help="Write the HTML report to this file (or DIR/report.html)."),
    min_exact_match: float = typer.Option(
        None, "--min-exact-match", min=0.0, max=1.0,
        help="Exit 1 when the exact-match rate is below this (the worst group's, see --gate)."
    ),
    gate: str = typer.Option(
        "worst-group", "--gate", help="worst-group | overall: the rate --min-exact-match is held against. Default "
        "worst-group: the report's group with the lowest exact-match rate (the strictest gate: the overall rate "
        "averages the groups); the whole run when the report has no groups. overall: the run's rate."
    ),
    only_mismatches: bool = typer.Option(False, "--only-mismatches", help="List only requests that differ."),
) -> None:
    """Show a saved report again; optionally write report.html and gate on the exact-match rate.

    Exit codes: 0 ok, 1 exact-match rate (of the worst group, --gate) below --min-exact-match, 2 bad input
    (missing or invalid report).
    """
    from hf2vllm import checks
    from hf2vllm.parity.groups import GATES, check_gate

    checks.choice(gate, "--gate", GATES)
    check_html_target(html)
    from hf2vllm.report.html import write_html
    from hf2vllm.report.json_file import read_report
    from hf2vllm.report.terminal import render_report

    saved = read_report(source)
    console = Console()
    render_report(saved, console, only_mismatches=only_mismatches)
    if html:
        console.print(f"HTML report written to {write_html(saved, html)}")
    check_gate(saved.summary, saved.groups, saved.group_by, min_exact_match, gate)  # type: ignore[arg-type]


def check_html_target(html: Path | None) -> None:
    """``--html`` is a directory (gets report.html) or a file; checked before the report is read."""
    from hf2vllm import checks
    from hf2vllm.errors import InputError

    if html is None:
        return
    if html.suffix == "" and html.is_file():
        raise InputError(f"--html {html}: an existing file without a suffix is taken for a directory; give "
                         "DIR (report.html goes inside) or FILE.html")
    if html.is_dir() or html.suffix == "":
        checks.output_dir(html, "--html")
    else:
        checks.output_file(html, "--html")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
