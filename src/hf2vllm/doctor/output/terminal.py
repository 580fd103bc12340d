"""Rich terminal view: findings grouped by file, each with a code excerpt and the fix."""

from __future__ import annotations

from itertools import groupby
from pathlib import Path

from rich.console import Console, Group
from rich.padding import Padding
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from hf2vllm.doctor.model import DoctorReport, Finding, Rule, Severity

_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
_LEXER = {".py": "python", ".sh": "bash", ".bash": "bash", ".zsh": "bash", ".yaml": "yaml", ".yml": "yaml"}


def _file_text(report: DoctorReport, display: str) -> str | None:
    for candidate in (Path(report.root) / display, Path(display)):
        try:
            return candidate.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
    return None


def _excerpt(text: str | None, finding: Finding, lexer: str) -> Syntax | Text:
    if text is None:
        return Text(f"{finding.line:>5} | {finding.source_line}", style="dim")
    last = finding.end_line if finding.end_line and finding.end_line - finding.line < 4 else finding.line
    return Syntax(text, lexer, line_numbers=True, line_range=(max(1, finding.line - 1), last + 1),
                  highlight_lines=set(range(finding.line, last + 1)), theme="ansi_dark", word_wrap=True)


def render_report(report: DoctorReport, console: Console, show_fix: bool = True) -> None:
    for path, group in groupby(report.findings, key=lambda f: f.path):
        findings = list(group)
        console.print(Text(path, style="bold underline"))
        text = _file_text(report, path)
        lexer = _LEXER.get(Path(path).suffix.lower(), "bash")
        explained: set[str] = set()  # the fix text once per rule and file keeps long reports readable
        for finding in findings:
            head = Text.assemble(
                (f"  {finding.line}:{finding.column} ", "dim"),
                (f"{finding.rule_id} ", "bold"),
                (f"{finding.severity.value} ", _STYLE[finding.severity]),
                finding.message,
                (" [fixable]" if finding.fixable else "", "green"),
            )
            parts: list = [head, Padding(_excerpt(text, finding, lexer), (0, 0, 0, 4))]
            if show_fix and finding.rule_id not in explained:
                explained.add(finding.rule_id)
                parts.append(Padding(Text(f"fix: {finding.fix}", style="green"), (0, 0, 0, 4)))
            console.print(Group(*parts))
        console.print()
    for error in report.parse_errors:
        console.print(Text(f"not checked: {error}", style="bold red"))
    s = report.summary
    fixable = sum(f.fixable for f in report.findings)
    status = "bold red" if s.errors else ("yellow" if s.warnings else "green")
    line = (f"{s.errors} error(s), {s.warnings} warning(s), {s.infos} info in {s.files_scanned} file(s) scanned"
            f"; {s.suppressed} suppressed")
    if s.fixed:
        line += f"; {s.fixed} fixed"
    if fixable:
        line += f"; {fixable} fixable with --fix"
    if report.parse_errors:
        line += f"; {len(report.parse_errors)} file(s) not checked"
        status = "bold red"
    console.print(Text(line, style=status))


def render_rules(rules: tuple[Rule, ...], console: Console) -> None:
    table = Table(title="hf2vllm doctor rules", show_lines=False)
    for column in ("id", "severity", "name", "checks", "summary"):
        table.add_column(column, overflow="fold")
    for rule in rules:
        table.add_row(rule.id, Text(rule.severity.value, style=_STYLE[rule.severity]),
                      rule.name + (" (fixable)" if rule.fixable else ""), ", ".join(rule.applies_to), rule.summary)
    console.print(table)
