"""Fixtures of the explain tests: planted-fault comparisons made through the user-facing options.

Faults that change only prompts, stop sets or sampling settings reuse the session ``vllm_backend``;
the two faults that need a different engine load (bf16 and a short ``max_model_len``) share ONE
extra engine, started once for the session.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from planted_faults import SHORT_MAX_MODEL_LEN, run_faulted


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread_when_oversubscribed() -> None:
    # On a shared 2-core machine with many busy processes, two spinning OpenMP threads per
    # forward pass make HF generation ~10x slower than one thread (measured: 24 s vs 1.9 s).
    import torch

    if os.getloadavg()[0] > (os.cpu_count() or 1):
        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def template_fault_report(hf_backend, vllm_backend):  # type: ignore[no-untyped-def]
    """`compare --no-chat-template vllm` on the fault prompts."""
    return run_faulted(hf_backend, vllm_backend, no_chat_template="vllm")


@pytest.fixture(scope="session")
def bf16_short_context_vllm(bundled_model: Path, area_release):  # type: ignore[no-untyped-def]
    """The one extra engine: bfloat16 weights and max_model_len 96 (two planted faults at once),
    freed when the explain tests are done."""
    from hf2vllm.backends.vllm_offline import VLLMBackend

    backend = VLLMBackend(
        bundled_model, dtype="bfloat16", max_model_len=SHORT_MAX_MODEL_LEN, enforce_eager=True, kv_cache_gib=0.25
    )
    area_release("explain", backend.close)
    yield backend
    backend.close()
