"""Identity of a recorded reference: the content hashes of its model and prompts, and what a report
says about the record it was compared against. No imports from the rest of the package (the report
schema uses these)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ModelFingerprint(BaseModel):
    """Who the reference model is, by content: a copy elsewhere has the same hashes, a retrained or
    quantised one does not."""

    path: str = Field(description="Where the model was when recorded (a hint for --against; identity is the hashes).")
    config_sha256: str | None = Field(description="sha256 of config.json.")
    weights_sha256: str | None = Field(
        description="sha256 over the weight files' names and hashes, in name order (null: no weight file found)."
    )
    weight_files: dict[str, str] = Field(default_factory=dict, description="weight file name -> its sha256.")
    tokenizer_sha256: str | None = Field(
        description="sha256 over the tokenizer's files (tokenizer.json, vocab, merges, special tokens, and "
        "tokenizer_config.json without its chat_template): what turns text into ids."
    )
    chat_template_sha256: str | None = Field(
        description="sha256 of the chat template the tokenizer applies (wherever it is stored); null: none."
    )


class PromptsFingerprint(BaseModel):
    """The prompt file the reference answered."""

    path: str = Field(description="The prompt file as given (\"bundled\" for the bundled set).")
    sha256: str = Field(description="sha256 of the file's bytes.")
    requests: int = Field(description="Requests recorded (after --limit).")
    limit: int | None = None


class RecordedReferenceInfo(BaseModel):
    """What a report compared against: the record, where it came from, and a declared model change."""

    path: str
    format_version: str
    created_at: str
    model: ModelFingerprint
    prompts: PromptsFingerprint
    dtype: str
    device: str | None = None
    packages: dict[str, str] = Field(default_factory=dict, description="The recording environment's versions.")
    record_seconds: float | None = None
    ray_workers: int | None = Field(None, description="Ray workers the reference was recorded on (None: one process).")
    recorded_by_this_run: bool = Field(
        False, description="The reference was recorded by this compare (--ray-workers), then read back as a record."
    )
    kept: bool = Field(True, description="False: recorded into a temporary folder, removed after the run.")
    candidate_model_differs: str | None = Field(
        None, description="Set when the candidate runs another model than the record's (declared with --vllm-model): "
        "the first line of every view of the report says so.",
    )
