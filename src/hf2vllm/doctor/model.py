"""The doctor's data: rules (with the examples that document and test them) and findings.

A ``Rule`` is pure metadata plus one check function; a ``Finding`` is what a check reports. The
``DoctorReport`` is the single truth that the terminal, JSON and SARIF views render.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from hf2vllm.doctor.context import FileContext


class Severity(str, Enum):
    """How bad a finding is. Any ``error`` makes ``hf2vllm doctor`` exit 1."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 0, "warning": 1, "info": 2}[self.value]


FileKind = Literal["python", "shell", "yaml"]


@dataclass(frozen=True)
class ExampleFile:
    """One file of a rule example; ``name`` decides how the doctor parses it (``.py``, ``.sh``, ``.yaml``)."""

    name: str
    content: str


@dataclass(frozen=True)
class Example:
    """A small project (one or more files) that shows a rule. Bad examples must trigger the rule;
    good examples must produce no finding at all. Both are rendered into docs/rules.md and run by tests."""

    files: tuple[ExampleFile, ...]

    @classmethod
    def of(cls, name: str, content: str, *more: tuple[str, str]) -> Example:
        return cls(files=(ExampleFile(name, content),) + tuple(ExampleFile(n, c) for n, c in more))


@dataclass(frozen=True)
class Hit:
    """What a check yields: where, and a message specific to this occurrence."""

    line: int
    column: int
    message: str
    end_line: int | None = None
    end_column: int | None = None
    fixable: bool = False


CheckFn = Callable[["FileContext"], Iterator[Hit]]


@dataclass(frozen=True)
class Rule:
    """A migration bug the doctor knows: identity, explanation, examples and the check itself."""

    id: str
    name: str
    severity: Severity
    applies_to: tuple[FileKind, ...]
    summary: str
    why: str
    fix: str
    bad: Example
    good: Example
    check: CheckFn = field(repr=False, compare=False)
    fixable: bool = False


class Finding(BaseModel):
    """One occurrence of a rule in one file (1-based line and column)."""

    rule_id: str
    rule_name: str
    severity: Severity
    path: str = Field(description="Path as given or discovered, relative to the scan root when possible.")
    line: int
    column: int
    end_line: int | None = None
    end_column: int | None = None
    message: str
    fix: str
    fixable: bool = False
    source_line: str = ""


class DoctorSummary(BaseModel):
    files_scanned: int
    errors: int
    warnings: int
    infos: int
    suppressed: int
    fixed: int = 0


class DoctorReport(BaseModel):
    """Everything one doctor run found, sorted by path, line, column and rule id."""

    version: str
    root: str
    findings: list[Finding]
    summary: DoctorSummary
    parse_errors: list[str] = Field(default_factory=list, description="Files that could not be parsed.")

    @property
    def has_errors(self) -> bool:
        return any(f.severity is Severity.ERROR for f in self.findings)

    @property
    def incomplete(self) -> bool:
        """Some file could not be read or parsed: the run cannot vouch for it, so it must not pass as clean."""
        return bool(self.parse_errors)
