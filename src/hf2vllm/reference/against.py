"""``compare --against REF``: the same question as a live compare, with the reference read from a record.

Before anything loads, the record is checked against this run: the model (config and weights), the
tokenizer, the chat template, the prompt file and the settings must be the ones recorded, or the run is
refused (exit 2) naming each difference. The one difference a user may declare is the candidate's model
(``--vllm-model``, e.g. a quantised copy): its tokenizer and template must still be the recorded ones, and
the report says in its first line that the models differ.

The reference side is then the ``record`` backend (``backends.recorded``): its answers, per-step logprobs
and measured noise come from the record; the candidate generates and scores the reference's tokens
(``prompt_logprobs``), so a fork's verdict has both sides' margins, as in a live run.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from hf2vllm.errors import InputError
from hf2vllm.reference.identity import ModelFingerprint, PromptsFingerprint, RecordedReferenceInfo
from hf2vllm.reference.schema import MANIFEST, REQUESTS, RecordedRequest, ReferenceManifest
from hf2vllm.reference.store import read_manifest, read_requests
from hf2vllm.requests import PreparedRequest
from hf2vllm.spec import GenerationSpec


class ReferenceMismatchError(InputError):
    """This run is not the one recorded (model, tokenizer, template, prompts or settings differ)."""


@functools.lru_cache(maxsize=2)
def _open_record(path: Path, _stamps: tuple[object, ...]) -> ReferenceRecord:
    return ReferenceRecord._read(path)


class ReferenceRecord:
    """A complete reference directory, loaded."""

    def __init__(self, path: Path, manifest: ReferenceManifest, requests: dict[str, RecordedRequest]) -> None:
        self.path, self.manifest, self.requests = path, manifest, requests

    @classmethod
    def open(cls, path: str | Path) -> ReferenceRecord:
        """The complete record at ``path``, read once per version of its files: the identity check and the
        ``record`` backend of one run share it (a large record's requests.jsonl is the costly part)."""
        path = Path(path)  # as given: messages name the record the way the user wrote it
        stamps = tuple((f.stat().st_size, f.stat().st_mtime_ns) if f.is_file() else None
                       for f in (path / MANIFEST, path / REQUESTS))
        return _open_record(path, stamps)

    @classmethod
    def _read(cls, path: Path) -> ReferenceRecord:
        manifest = read_manifest(path)
        recorded = read_requests(path, manifest.run_key)
        if not manifest.complete:
            raise InputError(
                f"reference {path} is incomplete ({len(recorded)} of {manifest.prompts.requests} requests recorded): "
                f"finish it with `hf2vllm record --out {path} --resume` and the same options"
            )
        if len(recorded) != manifest.prompts.requests:
            raise InputError(
                f"reference {path} lists {manifest.prompts.requests} requests but holds {len(recorded)}: record it again"
            )
        return cls(path, manifest, recorded)

    def spec(self) -> GenerationSpec:
        return GenerationSpec.model_validate(self.manifest.generation)


def describe_differences(
    manifest: ReferenceManifest,
    model: ModelFingerprint,
    prompts: PromptsFingerprint | None,
    spec: GenerationSpec | None,
    prompt_options: dict[str, Any] | None,
    dtype: str | None,
    *,
    model_may_differ: bool = False,
) -> list[str]:
    """Each way this run differs from the record, in words (empty: the same run).

    ``model_may_differ``: the candidate's weights and config may differ (a declared quantised copy); the
    tokenizer and chat template still may not, or prompt ids would not be comparable.
    """
    found: list[str] = []
    recorded = manifest.model
    if not model_may_differ:
        if model.config_sha256 != recorded.config_sha256:
            found.append(f"model config.json differs (sha256 {_short(model.config_sha256)} here, "
                         f"{_short(recorded.config_sha256)} recorded from {recorded.path})")
        if model.weights_sha256 != recorded.weights_sha256:
            changed = sorted(
                name for name in set(model.weight_files) | set(recorded.weight_files)
                if model.weight_files.get(name) != recorded.weight_files.get(name)
            )
            found.append(f"model weights differ ({', '.join(changed[:3]) or 'weight files'}; recorded from "
                         f"{recorded.path}); if the candidate is meant to differ (a quantised copy), pass it as --vllm-model")
    if model.tokenizer_sha256 != recorded.tokenizer_sha256:
        found.append(f"tokenizer differs (sha256 {_short(model.tokenizer_sha256)} here, {_short(recorded.tokenizer_sha256)} recorded)")
    if model.chat_template_sha256 != recorded.chat_template_sha256:
        found.append(f"chat template differs (sha256 {_short(model.chat_template_sha256)} here, "
                     f"{_short(recorded.chat_template_sha256)} recorded)")
    if prompts is not None:
        if prompts.sha256 != manifest.prompts.sha256:
            found.append(f"prompt file differs ({prompts.path}: sha256 {_short(prompts.sha256)}; recorded "
                         f"{manifest.prompts.path}: {_short(manifest.prompts.sha256)})")
    if spec is not None:
        mine, theirs = spec.model_dump(), manifest.generation
        keys = [k for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k)]
        if keys:
            found.append("generation settings differ: " + ", ".join(
                f"{k} {mine.get(k)!r} here, {theirs.get(k)!r} recorded" for k in keys[:4]))
    if prompt_options is not None and prompt_options != manifest.prompt_options.model_dump():
        found.append(f"prompt options differ ({prompt_options} here, {manifest.prompt_options.model_dump()} recorded)")
    if dtype is not None and dtype != manifest.dtype:
        found.append(f"dtype differs ({dtype} here, {manifest.dtype} recorded)")
    return found


def _short(value: str | None) -> str:
    return value[:12] if value else "none"


def refuse_differences(record: ReferenceRecord, found: list[str]) -> None:
    if found:
        raise ReferenceMismatchError(f"--against {record.path}: this run is not the recorded one: " + "; ".join(found))


def prepare_against(
    options: Any, choices: dict[str, Any]
) -> tuple[Path, Any, GenerationSpec, dict[str, list[PreparedRequest]], RecordedReferenceInfo]:
    """``parity.run._prepare`` for a run against a record: the model, tokenizer, the record's settings and
    each side's prompts, after refusing a run that is not the recorded one.

    The reference's prompts are the recorded ids; the candidate's are built from the recorded requests with
    its own prompt options (the defaults give the recorded ids back; a deliberate difference shows as a cause).
    """
    from hf2vllm.models import resolve_model
    from hf2vllm.parity.run import load_tokenizer, model_context_length, side_spec
    from hf2vllm.reference.fingerprint import model_fingerprint, prompts_fingerprint
    from hf2vllm.requests import prepare_requests

    record = ReferenceRecord.open(options.against)
    manifest = record.manifest
    model = options.model
    if model is None and Path(manifest.model.path).is_dir():
        model = manifest.model.path
    model_path = resolve_model(model)
    tokenizer = load_tokenizer(model_path)
    found = describe_differences(
        manifest, model_fingerprint(model_path, tokenizer), _prompts_here(options, manifest, prompts_fingerprint),
        options.spec, None, None,
    )
    if options.spec is None and options.max_new_tokens != record.spec().max_new_tokens and "max_new_tokens" in options.model_fields_set:
        found.append(f"generation settings differ: max_new_tokens {options.max_new_tokens} here, "
                     f"{record.spec().max_new_tokens} recorded")
    if options.limit and options.limit > len(record.requests):
        found.append(f"--limit {options.limit} asks for more requests than the record holds ({len(record.requests)})")
    declared = choices["candidate"].options.get("model") if "candidate" in choices else None
    differs = None
    if declared is not None:
        candidate_path = resolve_model(declared)
        candidate_tokenizer = load_tokenizer(candidate_path)
        theirs = model_fingerprint(candidate_path, candidate_tokenizer)
        found += [f"--vllm-model {declared}: {d}" for d in describe_differences(
            manifest, theirs, None, None, None, None, model_may_differ=True)]
        if (theirs.config_sha256, theirs.weights_sha256) != (manifest.model.config_sha256, manifest.model.weights_sha256):
            differs = (f"the candidate runs another model than the reference: {candidate_path} "
                       f"(weights {_short(theirs.weights_sha256)}) against the record's {manifest.model.path} "
                       f"(weights {_short(manifest.model.weights_sha256)}); differences may come from the model itself")
    refuse_differences(record, found)
    spec = record.spec()
    ids = [rid for rid in record.requests][: options.limit] if options.limit else list(record.requests)
    recorded = [record.requests[rid] for rid in ids]
    reference = [PreparedRequest(id=r.id, prompt_token_ids=r.prompt_token_ids, prompt_text=r.prompt_text, source=r.source)
                 for r in recorded]
    context = options.max_model_len or model_context_length(model_path)
    prepared: dict[str, list[PreparedRequest]] = {"reference": reference}
    if "candidate" in choices:
        prepared["candidate"] = prepare_requests(
            [r.source for r in recorded], tokenizer, max_model_len=context,
            max_new_tokens=side_spec(spec, choices["candidate"]).max_new_tokens, options=choices["candidate"].prompt,
        )
    info = RecordedReferenceInfo(
        path=str(record.path), format_version=manifest.format_version, created_at=manifest.created_at,
        model=manifest.model, prompts=manifest.prompts, dtype=manifest.dtype,
        device=str(manifest.backend_options.get("device")) if manifest.backend_options.get("device") else None,
        packages=manifest.environment.packages, record_seconds=manifest.record_seconds,
        ray_workers=manifest.backend_options.get("ray_workers"), candidate_model_differs=differs,
    )
    return model_path, tokenizer, spec, prepared, info


def _prompts_here(options: Any, manifest: ReferenceManifest, fingerprint: Any) -> PromptsFingerprint | None:
    """The prompt file given for this run, if any (none: the record's own requests are used)."""
    if options.prompts is None:
        return None
    return fingerprint(Path(options.prompts), str(options.prompts), manifest.prompts.requests, options.limit)
