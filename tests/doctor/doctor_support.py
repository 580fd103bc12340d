"""Helpers for the doctor tests (imported as ``doctor_support``; conftest.py holds the fixtures).

Write a rule example or fixture to disk, run the doctor CLI in-process.

The doctor needs no engine, so everything here runs in milliseconds; the CLI is invoked through the
same ``register(app)`` hook that ``hf2vllm.cli`` uses, with the CLI's error-to-exit-code mapping.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import typer
from typer.testing import CliRunner

from hf2vllm.commands.doctor import register
from hf2vllm.doctor.model import Example
from hf2vllm.errors import HF2VLLMError

FIXTURES = Path(__file__).parent / "fixtures"
_PLANTED = re.compile(r"planted(?:@(\d+))?: ((?:HVD\d{3}[, ]*)+)")


def write_example(root: Path, example: Example) -> Path:
    for file in example.files:
        path = root / file.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(file.content, encoding="utf-8")
    return root


def planted_bugs(root: Path) -> set[tuple[str, int, str]]:
    """(path, line, rule) for every ``planted: HVDxxx`` marker (``planted@LINE:`` names another line)."""
    expected: set[tuple[str, int, str]] = set()
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for match in _PLANTED.finditer(line):
                for rule_id in re.findall(r"HVD\d{3}", match.group(2)):
                    expected.add((path.relative_to(root).as_posix(), int(match.group(1) or number), rule_id))
    return expected


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


def _app() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        """Keeps ``doctor`` a subcommand, as in the real app."""

    register(app)
    return app


@contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def run_doctor(args: list[str], cwd: Path) -> CliResult:
    """``hf2vllm doctor ARGS`` in ``cwd``; HF2VLLMError becomes exit 2 + one stderr line, as in cli.main."""
    runner = CliRunner()
    with _cwd(cwd):
        result = runner.invoke(_app(), ["doctor", *args], catch_exceptions=True, env={"COLUMNS": "160"})
    if isinstance(result.exception, HF2VLLMError):
        return CliResult(result.exception.exit_code, result.stdout, f"error: {result.exception}\n")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return CliResult(result.exit_code, result.stdout, result.stderr)
