"""The parity report: one Pydantic model that the terminal, JSON and HTML views all render.

Versioned with ``schema_version`` (``MAJOR.MINOR``): a minor bump only adds fields; a major bump
renames or removes one. ``docs/report-schema.md`` documents every field (generated from this module).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from hf2vllm.backends.base import StepLogprobs
from hf2vllm.environment import EnvironmentInfo
from hf2vllm.reference.identity import RecordedReferenceInfo
from hf2vllm.requests import PromptOptions

SCHEMA_VERSION = "1.4"
"""1.4: ``reference_record`` says how the reference was recorded (``ray_workers``) and whether this run recorded it
(``recorded_by_this_run``, ``kept``: compare --ray-workers). 1.3: per-group verdicts (``group_by``, ``groups``: one summary per value of a request metadata key, worst
first); ``reference_record`` and ``verdict_method`` "record" (compare --against a recorded reference). 1.2: teacher-forced verdicts (``verdict_method``), measured noise (``noise``), the run-level verdict
(``run_verdict``: reference-vs-reference next to reference-vs-candidate, survival of identical answers, the
free-running collapse check), ``logprobs_mode`` read from the candidate engine."""

Verdict = Literal["match", "near_tie", "mismatch"]
CauseId = Literal[
    "bos_doubled",
    "chat_template_differs",
    "special_tokens_differ",
    "prompt_ids_differ",
    "generation_settings_differ",
    "stop_sets_differ",
    "dtype_differs",
    "context_too_short",
    "rope_scaling_differs",
    "decoding_differs",
    "batch_sensitive",
    "candidate_collapses",
]
VerdictMethod = Literal["teacher_forcing", "hf_generate", "record"]


class DeltaStats(BaseModel):
    """Absolute logprob differences between the two backends on identical token sequences."""

    tokens: int = Field(description="Positions measured (both directions of teacher forcing together).")
    max_abs_diff: float
    mean_abs_diff: float
    p99_abs_diff: float = Field(description="99th percentile (nearest rank) of |Δlogprob|.")
    argmax_agreement: float = Field(description="Share of positions where both sides' top-1 token is the same.")


class TeacherForcing(BaseModel):
    """Each side's output scored under the other backend (same prompt, same continuation tokens)."""

    reference_output_diff: list[float] = Field(
        description="Per position of the reference output: candidate logprob minus reference logprob."
    )
    candidate_output_diff: list[float] = Field(
        description="Per position of the candidate output: reference logprob minus candidate logprob."
    )
    stats: DeltaStats


class DivergenceDiagnosis(BaseModel):
    """Why the outputs part at the first divergence: a near tie within the noise, or a real difference."""

    position: int
    reference_token_id: int | None = Field(description="Null when the reference had already stopped.")
    candidate_token_id: int | None = Field(description="Null when the candidate had already stopped.")
    reference_margin: float | None = Field(
        description="Reference side: logprob of its token minus the best other token's logprob."
    )
    candidate_margin: float | None = Field(
        description="Candidate side: logprob of its token minus its logprob of the reference token "
        "(null when the reference token is outside the candidate's top-k)."
    )
    candidate_rank_of_reference_token: int | None = Field(
        description="1-based rank of the reference token in the candidate's top-k; null when outside it."
    )
    noise_floor: float = Field(
        description="The noise the margins are judged against: the larger of the reference's own measured noise "
        "(report.noise) and one step of the dtype at this position's largest logit."
    )
    noise_source: str | None = Field(None, description="Which of the two set noise_floor, with its value.")
    verdict: Literal["near_tie", "mismatch"]
    reason: str


class BatchProbe(BaseModel):
    """The candidate re-run on a divergent request alone and in a smaller batch."""

    alone_changed: bool = Field(description="The output run alone differs from the output in the full batch.")
    small_batch_changed: bool | None = Field(
        None, description="Same for a batch of only the divergent requests (null when there was one)."
    )
    small_batch_size: int | None = None


class Cause(BaseModel):
    """A named reason for differences, with the evidence that shows it."""

    id: CauseId
    title: str
    evidence: list[str] = Field(default_factory=list)
    requests: list[str] = Field(default_factory=list, description="Affected request ids; empty = every request.")


class SideSetup(BaseModel):
    """How one side was set up: the values the cause checks compare."""

    role: Literal["reference", "candidate"]
    backend: str
    dtype: str
    max_model_len: int | None = Field(description="Context limit the side enforces (null: none known).")
    generation: dict[str, Any] = Field(description="The effective GenerationSpec of this side.")
    prompt: PromptOptions
    rope_scaling: dict[str, Any] | None = None
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    dot_precision: str | None = Field(
        None, description="Set when the side multiplies in less precision than its dtype (\"tf32\": vLLM's float32 "
        "attention on CUDA, Triton's default); verdicts then allow that precision's steps.",
    )


class NoiseCalibration(BaseModel):
    """How far the reference moves from itself under changes that must not matter (measured in this run, on
    this dtype and device): the near-tie threshold comes from here and from the dtype's resolution."""

    change: str = Field(description="The change the reference was scored under, against its main pass.")
    dtype: str
    device: str
    requests: int = Field(description="Requests scored a second time for the calibration.")
    reference_vs_reference: DeltaStats = Field(
        description="|Δlogprob| between the reference's two scorings of the same tokens (shared top-k tokens)."
    )
    prefill_vs_decode: DeltaStats | None = Field(
        None, description="The reference's cached decode (generate) against its own full-sequence pass on the same "
        "tokens: the common prefixes of the requests it generated (null when it generated none).",
    )
    noise: float = Field(description="Largest |Δlogprob| of the reference against itself: the noise used for verdicts.")
    resolution_rule: str = Field(description="The dtype's resolution term: one step at the position's largest logit.")


class SurvivalPoint(BaseModel):
    """Share of answers still identical through an output position (Kaplan-Meier: answers that ended
    without forking leave the risk set)."""

    position: int
    identical: float
    at_risk: int = Field(description="Answers still running and identical up to this position.")


class CollapseCheck(BaseModel):
    """Free-running check: degenerate repetition in each side's own greedy output, judged with a paired
    exact (McNemar) test so a few benign forks do not alarm."""

    rule: str = Field(description="What counts as degenerate.")
    reference_degenerate: list[str] = Field(default_factory=list, description="Requests whose reference output loops.")
    candidate_degenerate: list[str] = Field(default_factory=list, description="Requests whose candidate output loops.")
    candidate_only: int = Field(description="Discordant pairs: degenerate on the candidate only.")
    reference_only: int = Field(description="Discordant pairs: degenerate on the reference only.")
    p_value: float = Field(description="One-sided exact McNemar p: P(>= candidate_only of the discordant pairs | no difference).")
    flagged: bool = Field(description="The candidate collapses more often than the reference beyond chance (p < alpha).")
    alpha: float = 0.05


class RunVerdict(BaseModel):
    """Is the candidate as close to the reference as the reference is to itself?"""

    within_reference_noise: bool
    statement: str = Field(description="One sentence with the evidence, as the terminal shows it.")
    reference_vs_candidate: DeltaStats = Field(description="Teacher-forced |Δlogprob| and top-1 agreement, reference vs candidate.")
    reference_vs_reference: DeltaStats = Field(description="The same statistics, reference vs itself (report.noise).")
    p99_ratio: float | None = Field(description="reference-vs-candidate p99 over reference-vs-reference p99 (null: 0/0).")
    survival: list[SurvivalPoint] = Field(
        default_factory=list, description="How long answers stay identical: one point per fork position, position 0 first."
    )
    collapse: CollapseCheck | None = None


class BackendRunSummary(BaseModel):
    """How one backend was run and how long it took."""

    name: str = Field(description='Backend kind: "hf", "vllm", "server".')
    options: dict[str, Any] = Field(default_factory=dict, description="Load options (dtype, engine settings).")
    load_seconds: float
    generate_seconds: float = Field(description="Generation, or for a teacher-forced reference its scoring passes "
                                    "plus the generation of forked requests.")
    mode: Literal["generate", "teacher_forced", "recorded"] = Field(
        "generate", description="teacher_forced: this side scored the other side's tokens and generated only forks; "
        "recorded: this side's answers were read from a record (compare --against).",
    )
    output_tokens: int
    output_tokens_per_second: float

    @field_validator("options")
    @classmethod
    def _without_credentials(cls, options: dict[str, Any]) -> dict[str, Any]:
        from hf2vllm.checks import public_options

        # A credential given as an engine option (--vllm-option hf_token=...) or inside a URL stays out
        # of report.json and report.html.
        return public_options(options)  # type: ignore[return-value]


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
    verdict: Verdict = Field(
        "match",
        description="match, near_tie (numerical noise) or mismatch (a real difference; also any divergence left "
        "unclassified, e.g. with --no-explain).",
    )
    diagnosis: DivergenceDiagnosis | None = None
    causes: list[CauseId] = Field(default_factory=list, description="Ids of the report's causes that apply here.")
    text_similarity: float = Field(1.0, description="Normalised edit similarity of the two texts (1 = equal).")
    candidate_prompt_tokens: int | None = Field(None, description="Set when the candidate's prompt ids differ.")
    reference_logprobs: list[StepLogprobs] | None = None
    candidate_logprobs: list[StepLogprobs] | None = None
    teacher_forcing: TeacherForcing | None = None
    batch_probe: BatchProbe | None = None
    teacher_forced_fork: int | None = Field(
        None, description="First position where the reference's full-sequence pass over the candidate's tokens "
        "picks another token (or stops/continues differently); null when it agrees everywhere.",
    )
    reference_generated: bool = Field(
        True, description="The reference generated this answer itself; false: it agreed with every candidate token "
        "when teacher-forced, so its answer is the candidate's (verdict_method teacher_forcing).",
    )
    reference_degenerate: bool | None = Field(None, description="The reference's own output ends in a repetition loop.")
    candidate_degenerate: bool | None = Field(None, description="The candidate's output ends in a repetition loop.")

    @model_validator(mode="after")
    def _divergence_is_never_a_match(self) -> RequestComparison:
        # Only a diagnosis may call a divergence near_tie; without one (explanations off, no logprobs)
        # a difference must not read as "match".
        if not self.exact_match and self.verdict == "match":
            self.verdict = "mismatch"
        return self


class ParitySummary(BaseModel):
    requests: int
    exact_matches: int
    exact_match_rate: float
    mean_common_prefix_fraction: float = Field(
        description="Mean share of each (longer) output covered by the common prefix."
    )
    verdicts: dict[str, int] = Field(default_factory=dict, description="Requests per verdict.")
    mean_text_similarity: float | None = None
    teacher_forcing: DeltaStats | None = Field(None, description="Over all requests' teacher-forced positions.")


class GroupSummary(BaseModel):
    """Parity of the requests that share one value of the report's ``group_by`` metadata key (a prompt-file
    key such as ``"domain": "code"``); ``report.groups`` lists them worst first (``parity.groups``)."""

    name: str = Field(description='The metadata value as text; "(none)" for requests without the key.')
    requests: int
    exact_matches: int
    exact_match_rate: float
    verdicts: dict[str, int] = Field(default_factory=dict, description="Requests per verdict (match, near_tie, mismatch).")
    mean_common_prefix_fraction: float = Field(
        description="Mean share of each (longer) output covered by the common prefix."
    )
    request_ids: list[str] = Field(default_factory=list, description="The group's requests, in prompt-file order.")


class CompareReport(BaseModel):
    """The result of ``hf2vllm compare``: written to ``report.json``."""

    schema_version: str = SCHEMA_VERSION
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    reference: str = Field(description="Name of the reference backend (the one migrated from).")
    candidate: str = Field(description="Name of the candidate backend (the one migrated to).")
    dtype: str
    generation: dict[str, Any] = Field(description="The GenerationSpec both sides ran with.")
    summary: ParitySummary
    group_by: str | None = Field(
        None, description="The request metadata key the requests are grouped by (null: not grouped). Default: "
        "\"domain\" when any request carries it.",
    )
    groups: list[GroupSummary] = Field(
        default_factory=list, description="One summary per group_by value, worst first: lowest exact-match rate, "
        "then most mismatches (empty when not grouped).",
    )
    backends: list[BackendRunSummary]
    requests: list[RequestComparison]
    environment: EnvironmentInfo
    logprobs_mode: str | None = Field(
        None, description="The candidate engine's logprobs_mode as read from it (\"raw_logprobs\": log-softmax of "
        "the logits before any sampling processor, as the reference computes; 1.1 reports wrote \"raw\").",
    )
    verdict_method: VerdictMethod = Field(
        "hf_generate", description="teacher_forcing: the reference scored the candidate's tokens and generated only "
        "where it disagreed; hf_generate: the reference generated every request; record: the reference's answers, "
        "logprobs and noise were read from a record (compare --against), the candidate scored the reference's tokens.",
    )
    reference_record: RecordedReferenceInfo | None = Field(
        None, description="compare --against: the record the candidate was checked against (null: a live reference).",
    )
    verdict_method_note: str | None = Field(None, description="Why hf_generate was used when it was not asked for.")
    noise: NoiseCalibration | None = None
    run_verdict: RunVerdict | None = None
    wall_seconds: float | None = Field(None, description="Wall time of the whole comparison (loads included).")
    stage_seconds: dict[str, float] = Field(
        default_factory=dict, description="Where the wall time went, stage by stage (loads, generation, scoring, ...)."
    )
    logprobs_top_k: int | None = None
    causes: list[Cause] = Field(default_factory=list, description="Named reasons for differences, with evidence.")
    sides: list[SideSetup] = Field(default_factory=list)
    token_strings: dict[int, str] = Field(
        default_factory=dict,
        description="Decoded text of every token id in the outputs and top-k lists (renders need no tokenizer).",
    )
