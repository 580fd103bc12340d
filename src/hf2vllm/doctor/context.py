"""What a rule sees: one parsed file, facts gathered across the whole scan, and the user's settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from hf2vllm.doctor.dataflow import ProjectIndex, Resolver
from hf2vllm.doctor.model import FileKind
from hf2vllm.doctor.python_source import PythonModule
from hf2vllm.doctor.serve import ServeInvocation
from hf2vllm.doctor.shell import ShellScript


class DoctorSettings(BaseModel):
    """Options from the command line merged over ``[tool.hf2vllm.doctor]`` in pyproject.toml."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, protected_namespaces=())

    select: list[str] = Field(default_factory=list, description="Rule ids or id prefixes to run (empty: all).")
    ignore: list[str] = Field(default_factory=list, description="Rule ids or id prefixes never reported.")
    exclude: list[str] = Field(default_factory=list, description="Glob patterns of paths not scanned.")
    workload_max_tokens: int | None = Field(
        None, alias="workload-max-tokens", ge=1,
        description="Longest request (prompt + output tokens) the deployment must serve.",
    )
    model_config_path: str | None = Field(
        None, alias="model-config", description="config.json of the served model, to size it.")
    device_memory_gib: float = Field(80.0, alias="device-memory-gib", gt=0)
    max_model_len_factor: float = Field(4.0, alias="max-model-len-factor", gt=1)


@dataclass(frozen=True)
class Place:
    """A file position that cross-file rules point back to."""

    path: str
    line: int
    detail: str


@dataclass(frozen=True)
class Workload:
    """The request shape a benchmark command in the scan declares, and which model it targets."""

    place: Place
    max_tokens: int
    model: str | None


@dataclass
class ProjectFacts:
    """Facts that only the whole scan can tell (a server flag in one file, the client in another)."""

    reasoning_parsers: list[Place] = field(default_factory=list)
    few_shot: list[Place] = field(default_factory=list)
    workloads: list[Workload] = field(default_factory=list)
    index: ProjectIndex = field(default_factory=ProjectIndex)
    vllm_pin: VersionPin | None = None
    hf_dtypes: list[DtypeLoad] = field(default_factory=list)


@dataclass(frozen=True)
class VersionPin:
    """The vLLM versions a project declares (requirements, pyproject, setup.py, lock files)."""

    place: Place
    spec: str
    upper: tuple[int, ...] | None  # None: no upper bound, the project follows new releases
    inclusive: bool = True

    def allows(self, version: tuple[int, ...]) -> bool:
        """True when ``version`` (or newer within the pin) can be installed under this pin."""
        if self.upper is None:
            return True
        return version <= self.upper if self.inclusive else version < self.upper


@dataclass(frozen=True)
class DtypeLoad:
    """A model load with the dtype it asks for (``auto`` when the checkpoint decides)."""

    place: Place
    model: str | None
    dtype: str


@dataclass
class FileContext:
    """One scanned file as the rules see it."""

    path: Path
    display_path: str
    kind: FileKind
    text: str
    project: ProjectFacts
    settings: DoctorSettings
    python: PythonModule | None = None
    shell: ShellScript | None = None
    invocations: list[ServeInvocation] = field(default_factory=list)

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()

    @property
    def resolver(self) -> Resolver:
        assert self.python is not None
        return self.project.index.resolver(self.python, self.display_path)
