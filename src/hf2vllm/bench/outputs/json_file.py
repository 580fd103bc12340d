"""``bench.json``: the report itself (schema documented in ``hf2vllm.bench.schema``)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ValidationError

from hf2vllm.bench.schema import BenchReport
from hf2vllm.errors import InputError


def write_json(report: BaseModel, path: Path) -> Path:
    """Write atomically (temp file + rename): a run cut short never leaves half a JSON file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_json(path: Path) -> BenchReport:
    """Load a report; a missing or malformed file raises ``InputError`` naming it."""
    if not path.is_file():
        raise InputError(f"benchmark report not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    try:
        return BenchReport.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError(f"{path}: not an hf2vllm benchmark report ({where}: {first['msg']})") from None
