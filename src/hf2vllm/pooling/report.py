"""The pooling parity report: one Pydantic model, rendered to the terminal and written as JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from hf2vllm.environment import EnvironmentInfo
from hf2vllm.pooling.lora import AdapterInspection
from hf2vllm.pooling.metrics import NormalisationState, VectorAgreement
from hf2vllm.pooling.vllm_compat import PoolingAPI
from hf2vllm.pooling.vllm_side import EngineFacts, VllmSide

POOLING_SCHEMA_VERSION = "1.1"  # 1.1: measured quantisation delta, vllm_side, engine


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
    """A quantised vLLM side: the delta it causes, measured on this run (see docs/pooling.md).

    The cosine gate is reported, not enforced: ``gate`` says whether the run would have passed it.
    """

    method: str | None = Field(description="quant_method of the vLLM checkpoint, or --quantization.")
    engine_method: str | None = Field(None, description="The method vLLM's engine resolved and ran.")
    checkpoint: str | None = Field(None, description="vLLM-side checkpoint when it is not HF's.")
    bits: int | None = None
    group_size: int | None = None
    vllm_dtype: str | None = Field(None, description="Activation dtype of the quantised engine.")
    reference_dtype: str | None = Field(None, description="HF side's dtype (the full-precision reference).")
    measured: VectorAgreement = Field(description="HF (full precision) vs quantised vLLM, all rows.")
    gate: str = Field(description="The cosine gate's verdict had it been enforced.")
    expected: str = Field(description="Typical published range, for context next to the measurement.")


class PoolingReport(BaseModel):
    """Result of ``hf2vllm compare --task hidden-states|embed`` (and ``--lora`` on generation)."""

    schema_version: str = POOLING_SCHEMA_VERSION
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    task: str
    model: str
    dtype: str
    vllm_api: PoolingAPI | None = None
    vllm_pooler: dict[str, Any] = Field(default_factory=dict, description="Pooler settings the engine ran with.")
    vllm_side: VllmSide | None = Field(None, description="vLLM-side checkpoint and dtype when they differ from HF's.")
    engine: EngineFacts | None = Field(None, description="What the vLLM engine resolved (quantisation, pooling).")
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
    hf_placement: dict[str, list[str]] | None = Field(
        None, description="Where Accelerate put the HF model's modules ({device: modules}) when --hf-option "
        "device_map/max_memory placed it over several devices (docs/scale.md)."
    )
