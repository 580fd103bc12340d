"""Fixtures for the deployment tests: the deploy commands behind the same error mapping as
``hf2vllm.cli.main`` (one line ``error: ...`` on stderr, exit code 2), independent of other
command modules, and the directory of public config.json files."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

CONFIGS = Path(__file__).parent / "configs"
SNAPSHOTS = Path(__file__).parent / "snapshots"

RUNNER = """
import sys, typer
from hf2vllm.errors import HF2VLLMError
from hf2vllm.commands import plan, calibrate, monitor
app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
for module in (plan, calibrate, monitor):
    module.register(app)
try:
    app()
except HF2VLLMError as err:
    print(f"error: {err}", file=sys.stderr)
    sys.exit(err.exit_code)
"""


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def configs_dir() -> Path:
    return CONFIGS


@pytest.fixture(scope="session")
def deploy_cli():
    """Run the deploy subcommands in a fresh interpreter, like the console script does."""

    def run(*args: str, timeout: float = 240) -> CliResult:
        done = subprocess.run(
            [sys.executable, "-c", RUNNER, *args], capture_output=True, text=True, timeout=timeout
        )
        return CliResult(done.returncode, done.stdout, done.stderr)

    return run


@pytest.fixture(scope="session")
def bundled_model_path() -> Path:
    """The bundled SmolLM2-135M checkpoint (built once into the hf2vllm cache)."""
    from hf2vllm.models import bundled_model_path as bundled

    return bundled()
