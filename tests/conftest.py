"""Session-wide fixtures: the bundled model, ONE HF backend, ONE vLLM engine and ONE `vllm serve`.

Every test that needs an engine uses these (never its own), so a test session starts each at most
once. Engines run float32 and eager on CPU (DESIGN §2: fast start, fastest dtype on 2 cores) with an
explicit KV cache size so they start regardless of what else the machine is doing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# hf2vllm never downloads: any accidental hub access must fail loudly in tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TEST_KV_CACHE_GIB = 1.0
"""KV cache of each test engine/server: ~23k tokens of the bundled model in float32."""


@pytest.fixture(scope="session")
def bundled_model() -> Path:
    from hf2vllm.models import bundled_model_path

    return bundled_model_path()


@pytest.fixture(scope="session")
def tokenizer(bundled_model: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(bundled_model)


@pytest.fixture(scope="session")
def hf_backend(bundled_model: Path):  # type: ignore[no-untyped-def]
    from hf2vllm.backends.hf import HFBackend

    backend = HFBackend(bundled_model, dtype="float32", batch_size=8)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def vllm_backend(bundled_model: Path):  # type: ignore[no-untyped-def]
    from hf2vllm.backends.vllm_offline import VLLMBackend

    backend = VLLMBackend(bundled_model, dtype="float32", enforce_eager=True, kv_cache_gib=TEST_KV_CACHE_GIB)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def bundled_report(hf_backend, vllm_backend):  # type: ignore[no-untyped-def]
    """The main job, once per session: greedy parity on the full bundled prompt set (64 new tokens)."""
    from hf2vllm.parity.run import CompareOptions, run_compare

    return run_compare(
        CompareOptions(max_new_tokens=64), backends={"reference": hf_backend, "candidate": vllm_backend}
    )


@pytest.fixture(scope="session")
def vllm_server(bundled_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator:  # type: ignore[type-arg]
    """A real `vllm serve` of the bundled model on a free loopback port; yields the running server
    (``.base_url`` = http://127.0.0.1:PORT/v1, ``.model_name``, ``.log_path``)."""
    from hf2vllm.server.launch import ServerConfig, VLLMServer, small_cpu_server_args

    log = tmp_path_factory.mktemp("vllm-serve") / "server.log"
    config = ServerConfig(
        model=bundled_model,
        served_model_name="smollm2-135m",
        extra_args=small_cpu_server_args(TEST_KV_CACHE_GIB),
        log_path=log,
    )
    with VLLMServer(config) as server:
        yield server
