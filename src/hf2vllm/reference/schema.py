"""What a recorded reference directory holds: a manifest and one journaled line per request.

A reference directory (``hf2vllm record --out REF``)::

    REF/manifest.json     ReferenceManifest: identity (model, tokenizer, template, prompts, settings),
                          environment, the reference's measured noise, and whether it is complete
    REF/requests.jsonl    a journal (``server.journal``): a header naming the run, then one
                          RecordedRequest per line, appended (fsync'd) as each batch finishes

Versioned with ``format_version`` (``MAJOR.MINOR``): a minor bump only adds fields, a major bump renames
or removes one; a reader refuses a major version it does not know. docs/reference-format.md is generated
from these models (``python -m hf2vllm.reference.schema_doc``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from hf2vllm.backends.base import GenerationResult
from hf2vllm.environment import EnvironmentInfo
from hf2vllm.reference.identity import ModelFingerprint, PromptsFingerprint
from hf2vllm.report.schema import NoiseCalibration
from hf2vllm.requests import ChatRequest, PromptOptions

FORMAT_VERSION = "1.0"
MANIFEST = "manifest.json"
REQUESTS = "requests.jsonl"


class ReferenceManifest(BaseModel):
    """``manifest.json`` of a reference directory."""

    format_version: str = FORMAT_VERSION
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    completed_at: str | None = Field(None, description="Set when every request and the noise calibration are written.")
    complete: bool = Field(False, description="False while recording (or after a crash): --resume continues it.")
    run_key: str = Field(description="Fingerprint of identity + settings; the journal's header carries the same.")
    backend: str = Field(description="The reference backend kind (hf).")
    backend_options: dict[str, Any] = Field(description="What the backend reported about itself (dtype, device...).")
    dtype: str
    model: ModelFingerprint
    prompts: PromptsFingerprint
    prompt_options: PromptOptions = Field(description="How the reference's prompts were built (chat template...).")
    generation: dict[str, Any] = Field(description="The resolved GenerationSpec every request ran with.")
    max_model_len: int | None = Field(description="The reference's context limit when recorded.")
    noise: NoiseCalibration | None = Field(
        None, description="The reference measured against itself (layout and prefill-vs-decode), for near-tie verdicts."
    )
    environment: EnvironmentInfo
    record_seconds: float | None = Field(None, description="Wall time of the recording (all sessions of it).")


class RecordedRequest(BaseModel):
    """One line of ``requests.jsonl`` (the journal record's payload)."""

    id: str
    prompt_token_ids: list[int]
    prompt_text: str
    source: ChatRequest = Field(description="The request as written in the prompt file (messages or prompt, metadata).")
    result: GenerationResult = Field(description="The reference's answer: ids, text, finish reason, per-step logprobs.")
