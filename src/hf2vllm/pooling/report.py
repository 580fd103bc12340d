"""The pooling parity report: one Pydantic model, rendered to the terminal and written as JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from hf2vllm.environment import EnvironmentInfo
from hf2vllm.pooling.lora import AdapterInspection
from hf2vllm.pooling.metrics import NormalisationState, VectorAgreement
from hf2vllm.pooling.vllm_compat import PoolingAPI

POOLING_SCHEMA_VERSION = "1.0"


class RequestVectorParity(BaseModel):
    """Hidden states (every token) or the embedding of one request, HF vs vLLM."""

    id: str
    tokens: int
    agreement: VectorAgreement


class ProbeDisagreement(BaseModel):
    request_id: str
    position: int | None = Field(None, description="Token position (token-level probes) or span start.")
    token: str | None = Field(None, description="Decoded token(s) at that position.")
    reference: str
    candidate: str


class ProbeComparison(BaseModel):
    """A probe head's predictions on HF and on vLLM vectors."""

    source: str
    pooling: str
    rows: int
    agreement_rate: float
    disagreements: list[ProbeDisagreement] = Field(default_factory=list, description="First few.")
    labelled_spans: int = 0
    reference_accuracy: float | None = None
    candidate_accuracy: float | None = None


class LoraSideCheck(BaseModel):
    """Base model vs base + adapter on one backend: did the adapter change anything?"""

    backend: str
    base_vs_adapter: VectorAgreement | None = None
    changed_generations: int | None = Field(None, description="Requests whose greedy output changed.")
    applied: bool


class LoraCheck(BaseModel):
    inspection: AdapterInspection
    min_effect: float = Field(description="Relative L2 change (base -> adapter) a side must exceed to count as applied.")
    sides: list[LoraSideCheck]
    adapter_parity: VectorAgreement | None = Field(None, description="HF+adapter vs vLLM+adapter hidden states.")
    adapter_generation_exact_match_rate: float | None = None
    passed: bool


class QuantisationNote(BaseModel):
    """What quantisation on the vLLM side does to the exact checks (see docs/pooling.md)."""

    method: str | None
    expected: str
    measured: bool


class PoolingReport(BaseModel):
    """Result of ``hf2vllm compare --task hidden-states|embed`` (and ``--lora`` on generation)."""

    schema_version: str = POOLING_SCHEMA_VERSION
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    task: str
    model: str
    dtype: str
    vllm_api: PoolingAPI | None = None
    vllm_pooler: dict[str, Any] = Field(default_factory=dict, description="Pooler settings the engine ran with.")
    sequence_pooling: str | None = Field(None, description="embed: LAST/MEAN/CLS and where that came from.")
    min_cosine: float
    normalisation: NormalisationState | None = None
    overall: VectorAgreement | None = None
    requests: list[RequestVectorParity] = Field(default_factory=list)
    probe: ProbeComparison | None = None
    lora: LoraCheck | None = None
    quantisation: QuantisationNote | None = None
    passed: bool
    failures: list[str] = Field(default_factory=list)
    environment: EnvironmentInfo | None = None
