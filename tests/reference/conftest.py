"""The recorded reference of the bundled set, once per session (recorded with the session's HF model)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def bundled_record(hf_backend, bundled_max_new_tokens: int, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    """`hf2vllm record` of the full bundled set with the compare job's settings (HF generates every request)."""
    from hf2vllm.reference.record import record

    out = tmp_path_factory.mktemp("reference") / "bundled"
    record(out, max_new_tokens=bundled_max_new_tokens, backend=hf_backend)
    return out
