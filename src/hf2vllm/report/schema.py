"""The parity report: one Pydantic model that the terminal, JSON and HTML views all render.

Versioned with ``schema_version`` (``MAJOR.MINOR``): a minor bump only adds fields; a major bump
renames or removes one. ``docs/report-schema.md`` documents every field (generated from this module).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from hf2vllm.environment import EnvironmentInfo

SCHEMA_VERSION = "1.0"


class BackendRunSummary(BaseModel):
    """How one backend was run and how long it took."""

    name: str = Field(description='Backend kind: "hf", "vllm", "server".')
    options: dict[str, Any] = Field(default_factory=dict, description="Load options (dtype, engine settings).")
    load_seconds: float
    generate_seconds: float
    output_tokens: int
    output_tokens_per_second: float


class RequestComparison(BaseModel):
    """Both backends' answers to one request and where they part."""

    id: str
    prompt_tokens: int
    reference_token_ids: list[int]
    candidate_token_ids: list[int]
    reference_text: str
    candidate_text: str
    reference_finish_reason: str | None
    candidate_finish_reason: str | None
    exact_match: bool
    first_divergence: int | None = Field(description="Index of the first differing output token; null when equal.")
    reference_token_at_divergence: str | None = Field(
        None, description="Decoded reference token at the divergence; null if that side had stopped."
    )
    candidate_token_at_divergence: str | None = None


class ParitySummary(BaseModel):
    requests: int
    exact_matches: int
    exact_match_rate: float
    mean_common_prefix_fraction: float = Field(
        description="Mean share of each (longer) output covered by the common prefix."
    )


class CompareReport(BaseModel):
    """The result of ``hf2vllm compare``: written to ``report.json``."""

    schema_version: str = SCHEMA_VERSION
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    reference: str = Field(description="Name of the reference backend (the one migrated from).")
    candidate: str = Field(description="Name of the candidate backend (the one migrated to).")
    dtype: str
    generation: dict[str, Any] = Field(description="The GenerationSpec both sides ran with.")
    summary: ParitySummary
    backends: list[BackendRunSummary]
    requests: list[RequestComparison]
    environment: EnvironmentInfo
