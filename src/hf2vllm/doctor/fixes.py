"""``--fix``: mechanical rewrites that cannot change meaning, applied with libcst so that comments,
spacing and quoting survive byte for byte outside the renamed keyword.

Only findings the doctor reported (selected, not suppressed) and marked ``fixable`` are rewritten; the
fix for each rule id is looked up in ``FIXERS``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from hf2vllm.doctor.knowledge import HF_ONLY_SAMPLING_KWARGS
from hf2vllm.doctor.model import Finding


@dataclass(frozen=True)
class FileFix:
    """The rewrite of one file: the new text, its unified diff, and how many findings it resolves."""

    path: Path
    display_path: str
    new_text: str
    diff: str
    fixed: int


class _RenameKeywords(cst.CSTTransformer):
    """Rename keyword arguments found at given (line, column) positions (1-based, from the findings)."""

    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, targets: dict[tuple[int, int], str]) -> None:
        super().__init__()
        self.targets = targets
        self.renamed = 0

    def leave_Arg(self, original_node: cst.Arg, updated_node: cst.Arg) -> cst.Arg:
        if original_node.keyword is None:
            return updated_node
        pos = self.get_metadata(PositionProvider, original_node.keyword).start
        new_name = self.targets.get((pos.line, pos.column + 1))
        if new_name is None or original_node.keyword.value not in HF_ONLY_SAMPLING_KWARGS:
            return updated_node
        self.renamed += 1
        return updated_node.with_changes(keyword=cst.Name(new_name))


def _sampling_renames(findings: list[Finding], text: str) -> dict[tuple[int, int], str]:
    lines = text.splitlines()
    targets: dict[tuple[int, int], str] = {}
    for finding in findings:
        line = lines[finding.line - 1] if finding.line <= len(lines) else ""
        name = line[finding.column - 1:].split("=", 1)[0].strip()
        entry = HF_ONLY_SAMPLING_KWARGS.get(name)
        if entry is not None and entry.rename_to is not None:
            targets[(finding.line, finding.column)] = entry.rename_to
    return targets


FIXERS: dict[str, Callable[[list[Finding], str], dict[tuple[int, int], str]]] = {"HVD001": _sampling_renames}


def fix_text(text: str, findings: list[Finding]) -> tuple[str, int]:
    """Apply every available fix for ``findings`` (all from one file) to ``text``."""
    targets: dict[tuple[int, int], str] = {}
    for rule_id, fixer in FIXERS.items():
        targets.update(fixer([f for f in findings if f.rule_id == rule_id and f.fixable], text))
    if not targets:
        return text, 0
    module = cst.parse_module(text)
    transformer = _RenameKeywords(targets)
    new_module = MetadataWrapper(module).visit(transformer)
    return new_module.code, transformer.renamed


def plan_fixes(findings: list[Finding], root: Path) -> list[FileFix]:
    """One ``FileFix`` per Python file with fixable findings; nothing is written here."""
    by_path: dict[str, list[Finding]] = {}
    for finding in findings:
        if finding.fixable:
            by_path.setdefault(finding.path, []).append(finding)
    fixes: list[FileFix] = []
    for display, file_findings in sorted(by_path.items()):
        path = Path(display) if Path(display).is_absolute() else root / display
        if not path.is_file():  # shown as given because it lies outside the scan root
            path = Path(display)
        old = path.read_text(encoding="utf-8")
        new, count = fix_text(old, file_findings)
        if count == 0 or new == old:
            continue
        diff = "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                            fromfile=f"a/{display}", tofile=f"b/{display}"))
        fixes.append(FileFix(path=path, display_path=display, new_text=new, diff=diff, fixed=count))
    return fixes


def apply_fixes(fixes: list[FileFix]) -> int:
    for fix in fixes:
        fix.path.write_text(fix.new_text, encoding="utf-8")
    return sum(fix.fixed for fix in fixes)
