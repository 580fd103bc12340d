"""Reading and writing ``report.json`` (atomically: a crash never leaves half a report)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pydantic import ValidationError

from hf2vllm.errors import InputError
from hf2vllm.report.schema import CompareReport

REPORT_FILE = "report.json"


def write_report(report: CompareReport, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / REPORT_FILE
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".json", dir=out_dir)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(report.model_dump_json(indent=2))
    os.replace(tmp, target)
    return target


def read_report(path: Path) -> CompareReport:
    """A saved ``report.json`` (or a directory holding one); anything else raises one ``InputError`` line
    saying what the file is instead: missing, not text, not JSON (truncated?), another hf2vllm report, a
    newer schema than this hf2vllm reads, or the first field that does not fit the schema."""
    import json

    path = Path(path)
    if path.is_dir():
        if not (path / REPORT_FILE).is_file() and (path / "pooling-report.json").is_file():
            raise InputError(f"{path} holds a pooling report (pooling-report.json): `hf2vllm report` shows "
                             "compare reports; the pooling comparison prints its own summary")
        path = path / REPORT_FILE
    if not path.exists():
        raise InputError(f"report not found: {path}")
    if not path.is_file():
        raise InputError(f"report {path}: not a regular file")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise InputError(f"report {path}: cannot read it ({err.strerror or err})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"report {path}: a binary file, not a hf2vllm report.json") from None
    if not text.strip():
        raise InputError(f"report {path}: empty file (the run that wrote it did not finish?)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        cut = " - the file ends early (truncated?)" if err.pos >= len(text.rstrip()) else ""
        raise InputError(f"report {path}:{err.lineno}: not valid JSON ({err.msg}){cut}") from None
    if not isinstance(data, dict):
        raise InputError(f"report {path}: a JSON {type(data).__name__}, not a hf2vllm report")
    _check_kind_and_version(data, path)
    try:
        return CompareReport.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        raise InputError(f"report {path}: not a hf2vllm compare report: field {where}: {first['msg']}{more}") from None


def _check_kind_and_version(data: dict, path: Path) -> None:
    from hf2vllm.report.schema import SCHEMA_VERSION

    version = data.get("schema_version")
    if isinstance(version, int) and "machine" in data:
        raise InputError(f"report {path}: a benchmark report (bench.json); `hf2vllm report` shows compare reports")
    if "task" in data and "min_cosine" in data:
        raise InputError(f"report {path}: a pooling report; `hf2vllm report` shows compare reports")
    if version is None:
        return  # the schema check below names what is missing
    try:
        found = tuple(int(part) for part in str(version).split("."))
    except ValueError:
        raise InputError(f"report {path}: schema_version {version!r} is not MAJOR.MINOR") from None
    readable = tuple(int(part) for part in SCHEMA_VERSION.split("."))
    if found > readable:
        raise InputError(f"report {path}: schema {version} is newer than this hf2vllm reads (up to "
                         f"{SCHEMA_VERSION}); upgrade hf2vllm to show it")
