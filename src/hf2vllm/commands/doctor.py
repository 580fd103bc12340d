"""``hf2vllm doctor``: lint a codebase (Python, launch scripts, vLLM YAML) for migration bugs."""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from hf2vllm.errors import InputError


class OutputFormat(str, Enum):
    terminal = "terminal"
    json = "json"
    sarif = "sarif"
    markdown = "markdown"


def _split_ids(values: list[str] | None) -> list[str]:
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


def _scan_root(paths: list[Path]) -> Path:
    """Findings are shown relative to the working directory, or to the scanned tree when outside it."""
    cwd = Path.cwd().resolve()
    resolved = [p.resolve() for p in paths]
    if all(p == cwd or cwd in p.parents for p in resolved):
        return cwd
    common = Path(os.path.commonpath([str(p) for p in resolved]))
    return common.parent if common.is_file() else common


def _check_options(output: Path | None, config: Path | None, model_config: Path | None,
                   workload_max_tokens: int | None, device_memory_gib: float | None,
                   select: list[str] | None, ignore: list[str] | None) -> None:
    """Every option checked before any file is scanned (issue #20)."""
    from hf2vllm import checks
    from hf2vllm.doctor.engine import select_rules

    checks.output_file(output, "--output")
    if config is not None:
        checks.input_file(config, "--config", what="pyproject.toml")
        checks.read_text(config, "--config")
    if model_config is not None:
        checks.input_file(model_config, "--model-config")
        _check_model_config(model_config)
    checks.number(workload_max_tokens, "--workload-max-tokens", minimum=1, meaning="tokens, prompt + output")
    checks.positive(device_memory_gib, "--device-memory-gib", "GiB of one accelerator")
    for option, ids in (("--select", _split_ids(select)), ("--ignore", _split_ids(ignore))):
        try:
            select_rules(ids, ())
        except InputError as err:
            unknown, _, known = str(err).partition(" (known:")
            raise InputError(f"{unknown} in {option} (known:{known}") from None


def _check_model_config(path: Path) -> None:
    from hf2vllm import checks
    from hf2vllm.doctor.rules.serving import estimate_parameters

    data = checks.json_file(path, "--model-config")
    if not isinstance(data, dict):
        raise InputError(f"--model-config {path}: a JSON {type(data).__name__}; give the served model's config.json")
    try:
        estimate_parameters(data)
    except KeyError as err:
        raise InputError(f"--model-config {path}: no {err.args[0]!r}, so the model cannot be sized; give the served "
                         "model's config.json") from None
    except (TypeError, ValueError, ZeroDivisionError):
        raise InputError(f"--model-config {path}: its sizes (hidden_size, num_hidden_layers, ...) are not numbers; "
                         "give the served model's config.json") from None


def doctor(
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or directories to check (default: .).")] = None,
    output_format: Annotated[OutputFormat, typer.Option(
        "--format", "-f", help="terminal, json, sarif (SARIF 2.1.0); markdown only with --list-rules.")
    ] = OutputFormat.terminal,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the report to this file.")] = None,
    select: Annotated[list[str] | None, typer.Option(
        "--select", help="Only these rule ids or prefixes (comma-separated or repeated), e.g. HVD1.")] = None,
    ignore: Annotated[list[str] | None, typer.Option(
        "--ignore", help="Never report these rule ids or prefixes.")] = None,
    fix: Annotated[bool, typer.Option("--fix", help="Apply safe mechanical rewrites; prints their diff.")] = False,
    diff: Annotated[bool, typer.Option("--diff", help="Print the --fix diff without writing files.")] = False,
    list_rules: Annotated[bool, typer.Option("--list-rules", help="List the rules and exit.")] = False,
    model_config: Annotated[Path | None, typer.Option(
        "--model-config", help="config.json of the served model (sizes it for HVD102).")] = None,
    workload_max_tokens: Annotated[int | None, typer.Option(
        "--workload-max-tokens", help="Longest request (prompt + output tokens) the deployment serves (HVD103).")
    ] = None,
    device_memory_gib: Annotated[float | None, typer.Option(
        "--device-memory-gib", help="Memory of one accelerator, GiB (HVD102; default 80).")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="pyproject.toml to read the \\[tool.hf2vllm.doctor] table from (default: nearest one).")] = None,
) -> None:
    """Find HF -> vLLM migration bugs before they ship. Exit 1 on any error-level finding or any file that
    could not be read or parsed."""
    _check_options(output, config, model_config, workload_max_tokens, device_memory_gib, select, ignore)
    from rich.console import Console

    from hf2vllm.doctor.engine import scan, select_rules
    from hf2vllm.doctor.fixes import apply_fixes, plan_fixes
    from hf2vllm.doctor.output.rules_doc import rules_json, rules_markdown
    from hf2vllm.doctor.output.sarif import to_sarif
    from hf2vllm.doctor.output.terminal import render_report, render_rules
    from hf2vllm.doctor.rules import RULES
    from hf2vllm.doctor.settings import find_pyproject, load_settings, merge_settings

    def emit(text: str) -> None:
        if output is not None:
            output.write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")

    if list_rules:
        if output_format is OutputFormat.markdown:
            emit(rules_markdown())
        elif output_format is OutputFormat.json:
            emit(rules_json())
        elif output_format is OutputFormat.terminal:
            render_rules(RULES, Console())
        else:
            raise InputError("--list-rules supports --format terminal, json or markdown")
        return
    if output_format is OutputFormat.markdown:
        raise InputError("--format markdown is only for --list-rules")
    if fix and diff:
        raise InputError("--fix and --diff exclude each other (--diff only shows what --fix would write)")

    targets = list(paths or [Path(".")])
    for target in targets:
        if not target.exists():
            raise InputError(f"{target}: no such file or directory (give files or directories to check)")
    pyproject = config or find_pyproject(targets[0])
    settings = merge_settings(
        load_settings(pyproject),
        select=_split_ids(select), ignore=_split_ids(ignore),
        workload_max_tokens=workload_max_tokens,
        model_config_path=str(model_config.resolve()) if model_config else None,
        device_memory_gib=device_memory_gib,
    )
    if settings.model_config_path and not Path(settings.model_config_path).is_file():
        raise InputError(f"--model-config {settings.model_config_path}: no such file")
    select_rules(settings.select, settings.ignore)  # unknown ids are a usage error before any scanning
    root = _scan_root(targets)

    report = scan(targets, settings, root)
    diff_console = Console(stderr=output_format is not OutputFormat.terminal or output is not None)
    if fix or diff:
        from rich.syntax import Syntax

        planned = plan_fixes(report.findings, root)
        for item in planned:
            diff_console.print(Syntax(item.diff, "diff", theme="ansi_dark"))
        if fix and planned:
            fixed = apply_fixes(planned)
            report = scan(targets, settings, root, fixed=fixed)

    if output_format is OutputFormat.json:
        emit(report.model_dump_json(indent=2))
    elif output_format is OutputFormat.sarif:
        emit(json.dumps(to_sarif(report), indent=2))
    elif output is not None:
        with output.open("w", encoding="utf-8") as handle:
            render_report(report, Console(file=handle, width=120, color_system=None))
    else:
        render_report(report, Console())
    if report.has_errors or report.incomplete:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("doctor", help="Lint code, launch scripts and vLLM configs for HF -> vLLM migration bugs.")(doctor)
