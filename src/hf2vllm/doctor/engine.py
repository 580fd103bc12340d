"""Run the doctor: find files, parse them, gather cross-file facts, apply rules, filter findings.

Usage::

    report = scan([Path("my_project")], DoctorSettings())
    report.has_errors
"""

from __future__ import annotations

import ast
import fnmatch
import io
import os
import re
import tokenize
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from hf2vllm import __version__
from hf2vllm.doctor.context import DoctorSettings, FileContext, Place, ProjectFacts, VersionPin, Workload
from hf2vllm.doctor.model import DoctorReport, DoctorSummary, FileKind, Finding, Hit, Rule, Severity
from hf2vllm.doctor.python_source import PythonModule, llm_invocations
from hf2vllm.doctor.rules import RULES
from hf2vllm.doctor.knowledge import parse_version
from hf2vllm.doctor.rules.consistency import hf_dtype_loads
from hf2vllm.doctor.serve import parse_number
from hf2vllm.doctor.shell import parse_shell
from hf2vllm.doctor.suppressions import hash_comment_suppressions, is_suppressed, python_suppressions
from hf2vllm.doctor.yaml_config import parse_yaml_invocations
from hf2vllm.errors import InputError

SKIPPED_DIRS = {".git", ".hg", ".venv", "venv", "env", "node_modules", "__pycache__", ".tox", ".nox", "build", "dist",
                "site-packages", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".eggs"}
_SHELL_SUFFIXES = {".sh", ".bash", ".zsh"}
_YAML_SUFFIXES = {".yaml", ".yml"}
_FEW_SHOT = re.compile(r"few[_-]?shot|n[_-]?shots?\b|num[_-]?shots|k[_-]?shot", re.I)


def select_rules(select: Sequence[str] = (), ignore: Sequence[str] = (),
                 rules: Sequence[Rule] = RULES) -> list[Rule]:
    """Rules kept by ``select`` (ids or prefixes such as ``HVD1``; empty = all) minus ``ignore``."""
    for pattern in (*select, *ignore):
        if not any(rule.id.startswith(pattern.upper()) for rule in rules):
            known = ", ".join(rule.id for rule in rules)
            raise InputError(f"unknown rule id or prefix {pattern!r} (known: {known})")

    def matches(rule: Rule, patterns: Sequence[str]) -> bool:
        return any(rule.id.startswith(p.upper()) for p in patterns)

    return [r for r in rules if (not select or matches(r, select)) and not matches(r, ignore)]


def file_kind(path: Path, head: str = "") -> FileKind | None:
    suffix = path.suffix.lower()
    if suffix == ".py":
        return "python"
    if suffix in _SHELL_SUFFIXES:
        return "shell"
    if suffix in _YAML_SUFFIXES:
        return "yaml"
    if not suffix and re.match(r"#!.*\b(ba|z)?sh\b", head):
        return "shell"
    return None


def discover(paths: Iterable[Path], exclude: Sequence[str] = ()) -> list[Path]:
    """Files to scan under ``paths`` (given files are always scanned if their kind is known)."""
    found: list[Path] = []
    for path in paths:
        if not path.exists():
            raise InputError(f"{path}: no such file or directory")
        if path.is_file():
            found.append(path)
            continue
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS and not d.endswith(".egg-info"))
            for name in sorted(filenames):
                candidate = Path(dirpath) / name
                rel = candidate.relative_to(path).as_posix()
                if any(fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(name, pat) for pat in exclude):
                    continue
                found.append(candidate)
    return found


@dataclass
class ParsedFile:
    context: FileContext
    suppressions: dict[int, set[str]]


def _display(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


class UnreadableFile(Exception):
    """A file of a kind the doctor checks that it could not read or decode (reported, never skipped silently)."""


def read_source(path: Path, kind: FileKind) -> str:
    """The text of a file the doctor checks. Python honours its PEP 263 coding cookie (``# -*- coding: latin-1
    -*-``), as the interpreter does; shell and YAML must be UTF-8, as vLLM's config loader and PyYAML expect."""
    data = path.read_bytes()
    if kind == "python":
        try:
            encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        except SyntaxError as err:  # an unknown or conflicting coding cookie
            raise UnreadableFile(f"cannot decode: {err}") from None
        try:
            return data.decode(encoding).removeprefix("\ufeff")
        except UnicodeDecodeError as err:
            raise UnreadableFile(f"cannot decode as {encoding} (byte {err.start}): "
                                 "add a PEP 263 coding line or re-save the file as UTF-8") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UnreadableFile(f"cannot decode as UTF-8 (byte {err.start})") from None


def _parse(path: Path, root: Path, settings: DoctorSettings, facts: ProjectFacts) -> ParsedFile | None:
    kind = file_kind(path)
    if kind is None and not path.suffix:
        try:
            with path.open("rb") as handle:
                kind = file_kind(path, handle.read(200).decode("utf-8", errors="replace"))
        except OSError:
            return None
    if kind is None:
        return None
    try:
        text = read_source(path, kind)
    except OSError as err:
        raise UnreadableFile(f"cannot read: {err.strerror or err}") from None
    ctx = FileContext(path=path, display_path=_display(path, root), kind=kind, text=text, project=facts,
                      settings=settings)
    if kind == "python":
        ctx.python = PythonModule.parse(text, filename=str(path))
        ctx.invocations = ctx.python.serve_invocations + llm_invocations(ctx.python)
        return ParsedFile(ctx, python_suppressions(text))
    if kind == "shell":
        ctx.shell = parse_shell(text)
        ctx.invocations = ctx.shell.invocations
    else:
        ctx.invocations = parse_yaml_invocations(text)
    return ParsedFile(ctx, hash_comment_suppressions(text))


def _gather_facts(files: list[ParsedFile], facts: ProjectFacts) -> None:
    for parsed in files:
        ctx = parsed.context
        if ctx.python is not None:
            facts.hf_dtypes.extend(hf_dtype_loads(ctx))
        for inv in ctx.invocations:
            flag = inv.flag("reasoning-parser")
            if flag is not None and flag.value:
                facts.reasoning_parsers.append(Place(ctx.display_path, flag.line, flag.value))
        if ctx.python is not None:
            for name in sorted(ctx.python.identifiers):
                if _FEW_SHOT.search(name):
                    line = next((n.lineno for n in ast.walk(ctx.python.tree)
                                 if isinstance(n, ast.Name | ast.arg | ast.FunctionDef) and
                                 getattr(n, "id", getattr(n, "arg", getattr(n, "name", None))) == name), 1)
                    facts.few_shot.append(Place(ctx.display_path, line, f"`{name}`"))
                    break
        if ctx.shell is not None:
            for command in ctx.shell.commands:
                shots = command.flag_value("num-fewshot", "num_fewshot")
                if shots is not None and (parse_number(shots) or 0) > 0:
                    facts.few_shot.append(Place(ctx.display_path, command.tokens[0].line, f"--num_fewshot {shots}"))
                words = command.words
                is_bench = ("bench" in words[:3] and "vllm" in [Path(w).name for w in words[:2]]) or any(
                    "benchmark_serving" in w or "benchmark_throughput" in w for w in words[:3])
                if not is_bench:
                    continue
                prompt = command.flag_value("random-input-len", "input-len", "sonnet-input-len")
                output = command.flag_value("random-output-len", "output-len", "sonnet-output-len")
                total = (parse_number(prompt or "") or 0) + (parse_number(output or "") or 0)
                if total > 0:
                    place = Place(ctx.display_path, command.tokens[0].line, "benchmark")
                    facts.workloads.append(Workload(place, int(total), command.flag_value("model")))


_PIN_FILES = re.compile(r"^(requirements[\w.-]*\.(txt|in)|pyproject\.toml|setup\.py|setup\.cfg|"
                        r"environment[\w.-]*\.ya?ml|Pipfile|constraints[\w.-]*\.txt)$")
_VLLM_REQUIREMENT = re.compile(r"(?<![\w-])vllm(?:-cpu)?\s*(?:\[[^\]]*\])?\s*"
                               r"((?:[<>=!~]=?=?\s*[0-9][0-9a-z.+*]*\s*,?\s*)+)", re.I)


def find_vllm_pin(files: Sequence[Path], root: Path) -> VersionPin | None:
    """The vLLM version range the scanned project declares (the tightest upper bound found), or None."""
    best: VersionPin | None = None
    for path in files:
        if not _PIN_FILES.match(path.name):
            continue
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if line.lstrip().startswith("#"):
                continue
            for match in _VLLM_REQUIREMENT.finditer(line):
                spec = re.sub(r"\s+", "", match.group(1)).rstrip(",")
                upper, inclusive = None, True
                for clause in spec.split(","):
                    op = re.match(r"[<>=!~]+", clause)
                    version = parse_version(clause)
                    if op is None or not version:
                        continue
                    if op.group(0) in ("==", "===", "<="):
                        candidate, incl = version, True
                    elif op.group(0) == "<":
                        candidate, incl = version, False
                    elif op.group(0) == "~=":
                        candidate, incl = version[:-1] + (version[-1] + 1,) if len(version) > 1 else version, False
                    else:
                        continue
                    if upper is None or candidate < upper:
                        upper, inclusive = candidate, incl
                pin = VersionPin(Place(_display(path, root), number, f"vllm{spec}"), f"vllm{spec}", upper, inclusive)
                if best is None or (pin.upper is not None and (best.upper is None or pin.upper < best.upper)):
                    best = pin
    return best


def analyse(paths: Sequence[Path], settings: DoctorSettings, root: Path | None = None,
            rules: Sequence[Rule] | None = None) -> tuple[list[Finding], int, int, list[str]]:
    """(findings kept, files scanned, findings suppressed, parse errors) for ``paths``."""
    root = root or Path.cwd()
    active = list(rules) if rules is not None else select_rules(settings.select, settings.ignore)
    facts = ProjectFacts()
    parsed: list[ParsedFile] = []
    errors: list[str] = []
    discovered = discover(paths, settings.exclude)
    for path in discovered:
        try:
            item = _parse(path, root, settings, facts)
        except SyntaxError as err:
            errors.append(f"{_display(path, root)}:{err.lineno}: cannot parse Python: {err.msg}")
            continue
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            errors.append(f"{_display(path, root)}{line}: cannot parse YAML: {getattr(err, 'problem', err)}")
            continue
        except UnreadableFile as err:
            errors.append(f"{_display(path, root)}: {err}")
            continue
        if item is not None:
            parsed.append(item)
    for item in parsed:
        if item.context.python is not None:
            facts.index.add(item.context.display_path, item.context.python)
    facts.vllm_pin = find_vllm_pin(discovered, root)
    _gather_facts(parsed, facts)
    findings: list[Finding] = []
    suppressed = 0
    for item in parsed:
        ctx = item.context
        lines = ctx.lines
        for rule in active:
            if ctx.kind not in rule.applies_to:
                continue
            for hit in rule.check(ctx):
                if ctx.kind == "python":
                    hit = _characters_not_bytes(hit, lines)
                if is_suppressed(item.suppressions, rule.id, hit.line, hit.end_line):
                    suppressed += 1
                    continue
                findings.append(Finding(
                    rule_id=rule.id, rule_name=rule.name, severity=rule.severity, path=ctx.display_path,
                    line=hit.line, column=hit.column, end_line=hit.end_line, end_column=hit.end_column,
                    message=hit.message, fix=rule.fix, fixable=hit.fixable,
                    source_line=lines[hit.line - 1] if 0 < hit.line <= len(lines) else "",
                ))
    findings = sorted(_unique(findings), key=lambda f: (f.path, f.line, f.column, f.rule_id))
    return findings, len(parsed), suppressed, errors


def _char_column(lines: list[str], line: int, byte_column: int) -> int:
    if not 0 < line <= len(lines):
        return byte_column
    return len(lines[line - 1].encode("utf-8")[: byte_column - 1].decode("utf-8", errors="ignore")) + 1


def _characters_not_bytes(hit: Hit, lines: list[str]) -> Hit:
    """``ast`` columns count UTF-8 bytes; editors, SARIF and libcst count characters."""
    return replace(
        hit,
        column=_char_column(lines, hit.line, hit.column),
        end_column=_char_column(lines, hit.end_line, hit.end_column)
        if hit.end_line is not None and hit.end_column is not None else hit.end_column,
    )


def _unique(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple] = set()
    out = []
    for f in findings:
        key = (f.rule_id, f.path, f.line, f.column, f.message)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def scan(paths: Sequence[Path], settings: DoctorSettings, root: Path | None = None,
         fixed: int = 0) -> DoctorReport:
    """Scan ``paths`` and build the report every output format renders."""
    root = root or Path.cwd()
    findings, files, suppressed, errors = analyse(paths, settings, root)
    summary = DoctorSummary(
        files_scanned=files,
        errors=sum(f.severity is Severity.ERROR for f in findings),
        warnings=sum(f.severity is Severity.WARNING for f in findings),
        infos=sum(f.severity is Severity.INFO for f in findings),
        suppressed=suppressed,
        fixed=fixed,
    )
    return DoctorReport(version=__version__, root=str(root), findings=findings, summary=summary,
                        parse_errors=errors)
