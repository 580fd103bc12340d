"""The ``record`` backend: a reference that answers from a recorded directory (``hf2vllm record``).

It loads nothing but the record: ``generate`` returns the recorded answers (ids, text, finish reason,
per-step logprobs with top logits) for the requested ids, after checking each request's prompt ids are
the recorded ones. It cannot score other tokens (no model); the run takes the reference's noise from the
record instead (``calibration``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hf2vllm.backends.base import Backend, GenerationResult, ProgressCallback, register_backend
from hf2vllm.errors import InputError
from hf2vllm.requests import PreparedRequest
from hf2vllm.spec import GenerationSpec


@register_backend("record")
class RecordedBackend(Backend):
    """A recorded reference (see the module docstring). ``path`` is the reference directory."""

    def __init__(self, path: str | Path, **_load_options: Any) -> None:
        from hf2vllm.reference.against import ReferenceRecord

        start = time.perf_counter()
        self.record = ReferenceRecord.open(path)
        self.load_seconds = time.perf_counter() - start

    @property
    def calibration(self) -> Any:
        """The noise the reference measured on itself when recorded (``NoiseCalibration`` or None)."""
        return self.record.manifest.noise

    def describe(self) -> dict[str, Any]:
        manifest = self.record.manifest
        return {**manifest.backend_options, "dtype": manifest.dtype, "max_model_len": manifest.max_model_len,
                "record": str(self.record.path), "recorded_at": manifest.created_at}

    def generate(
        self,
        requests: Sequence[PreparedRequest],
        spec: GenerationSpec,
        *,
        progress: ProgressCallback | None = None,
    ) -> list[GenerationResult]:
        mine, recorded = spec.model_dump(), self.record.spec().model_dump()
        if mine != recorded:
            changed = [k for k, v in mine.items() if recorded.get(k) != v]
            raise InputError(
                f"the recorded reference ran other settings ({', '.join(changed)}); a record answers only its own "
                "settings: record again, or set the difference on the candidate side (--vllm-option)"
            )
        results = []
        for req in requests:
            entry = self.record.requests.get(req.id)
            if entry is None:
                raise InputError(f"request {req.id!r} is not in the reference {self.record.path}")
            if list(req.prompt_token_ids) != entry.prompt_token_ids:
                raise InputError(f"request {req.id!r}: its prompt ids are not the recorded ones ({self.record.path})")
            results.append(entry.result)
        if progress and results:
            progress(len(results))
        return results
