"""The bundled set recorded once by one process, the answer every scaled-out run must reproduce.

Scaled runs (Ray workers at one core each, a model split by a memory cap) are compared with a record made
in this process at the same torch thread count: CPU kernels split their sums by thread count, so equal
threads is what makes "the same numbers" exact rather than within float32 rounding (tokens agreed either
way; measured on the first 6 bundled requests: logprobs within 6.4e-6 at 2 threads vs 1)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SCALE_RECORD: dict[str, Any] = {"max_new_tokens": 4, "hf_batch_size": 8, "calibration_requests": 2}
"""The bundled set (all 50 requests, its three 1.5-1.9k-token prompts included) at 4 new tokens in batches
of 8 (several batches per worker); CI time is budgeted, and the prefill of the long prompts dominates."""


@pytest.fixture(scope="session")
def scale_record() -> dict[str, Any]:
    return dict(SCALE_RECORD)


@pytest.fixture(scope="session")
def one_process_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``record`` of the bundled set in this process, with one torch thread (what one Ray worker gets)."""
    from hf2vllm.backends.hf import torch_threads
    from hf2vllm.reference.record import record

    out = tmp_path_factory.mktemp("one-process") / "ref"
    with torch_threads(1):
        record(out, **SCALE_RECORD)
    return out


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """A local cluster of two one-core workers in this process; record joins it (and leaves it running)."""
    ray = pytest.importorskip("ray", reason="the ray extra (pip install -e '.[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
