"""Doctor settings from ``[tool.hf2vllm.doctor]`` in the scanned project's pyproject.toml.

Example::

    [tool.hf2vllm.doctor]
    ignore = ["HVD101"]
    exclude = ["legacy/*"]
    workload-max-tokens = 4096
    device-memory-gib = 80
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError

from hf2vllm.doctor.context import DoctorSettings
from hf2vllm.errors import InputError


def find_pyproject(start: Path) -> Path | None:
    """The nearest pyproject.toml at or above ``start``."""
    here = start.resolve()
    if here.is_file():
        here = here.parent
    for directory in (here, *here.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load_settings(pyproject: Path | None) -> dict:
    """The raw ``[tool.hf2vllm.doctor]`` table (empty when absent), validated against DoctorSettings."""
    if pyproject is None:
        return {}
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise InputError(f"{pyproject}: invalid TOML: {err}") from err
    table = data.get("tool", {}).get("hf2vllm", {}).get("doctor", {})
    if not isinstance(table, dict):
        raise InputError(f"{pyproject}: [tool.hf2vllm.doctor] must be a table")
    try:
        DoctorSettings.model_validate(table)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError(f"{pyproject}: [tool.hf2vllm.doctor] {where}: {first['msg']}") from err
    if "model-config" in table:
        # Relative to the pyproject that names it, not to the shell's working directory.
        table = {**table, "model-config": str((pyproject.parent / table["model-config"]).resolve())}
    return table


def merge_settings(file_table: dict, **cli: object) -> DoctorSettings:
    """Command-line values (those not None / not empty) override the pyproject table."""
    merged = dict(file_table)
    aliases = {"workload_max_tokens": "workload-max-tokens", "model_config_path": "model-config",
               "device_memory_gib": "device-memory-gib"}
    for key, value in cli.items():
        if value is None or value == [] or value == ():
            continue
        merged[aliases.get(key, key)] = value
    try:
        return DoctorSettings.model_validate(merged)
    except ValidationError as err:
        first = err.errors()[0]
        raise InputError(f"doctor setting {'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from err
