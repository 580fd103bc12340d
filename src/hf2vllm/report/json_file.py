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
    path = path / REPORT_FILE if path.is_dir() else path
    try:
        return CompareReport.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"report not found: {path}") from None
    except ValidationError as err:
        raise InputError(f"{path}: not a hf2vllm report ({err.error_count()} schema errors)") from None
