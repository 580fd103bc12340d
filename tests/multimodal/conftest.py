"""Session fixtures for the multimodal tests: the tiny VL checkpoints, their processors, the bundled
VL prompt set prepared once, and ONE tiny-VL vLLM engine shared by every engine test.

The checkpoints have random weights (fixed seed). Parity of the input pipeline — chat template,
image preprocessing, placeholder expansion, vision encoder, feature merge — does not need trained
weights: both backends run the same weights, so any token difference is a pipeline difference.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# Small on purpose: the tiny model needs a few MB of KV cache; the shared machine has little to spare.
TINY_VL_KV_CACHE_GIB = 0.25
TINY_VL_MAX_MODEL_LEN = 2048
TEST_MAX_NEW_TOKENS = 24


@pytest.fixture(scope="session")
def vl_limits() -> dict[str, int]:
    """Generation length and context used by every engine test here."""
    return {"max_new_tokens": TEST_MAX_NEW_TOKENS, "max_model_len": TINY_VL_MAX_MODEL_LEN}


@pytest.fixture(scope="session")
def tiny_vl_path() -> Path:
    from hf2vllm.multimodal.tiny_vl import ensure_tiny_vl

    return ensure_tiny_vl("idefics3")


@pytest.fixture(scope="session")
def tiny_qwen2_vl_path() -> Path:
    from hf2vllm.multimodal.tiny_vl import ensure_tiny_vl

    return ensure_tiny_vl("qwen2-vl")


@pytest.fixture(scope="session")
def vl_processor(tiny_vl_path: Path):
    from hf2vllm.multimodal.prepare import load_processor

    return load_processor(tiny_vl_path)


@pytest.fixture(scope="session")
def qwen_processor(tiny_qwen2_vl_path: Path):
    from hf2vllm.multimodal.prepare import load_processor

    return load_processor(tiny_qwen2_vl_path)


@pytest.fixture(scope="session")
def vl_prompts_path() -> Path:
    from hf2vllm.multimodal.sample_set import bundled_vl_prompts_path

    return bundled_vl_prompts_path()


@pytest.fixture(scope="session")
def vl_requests(vl_prompts_path: Path):
    from hf2vllm.requests import load_requests

    return load_requests(vl_prompts_path)


@pytest.fixture(scope="session")
def vl_prepared(vl_requests, vl_processor, vl_prompts_path: Path):
    """(prepared requests, shared image settings) for the bundled VL set."""
    from hf2vllm.multimodal.prepare import prepare_vl_requests

    return prepare_vl_requests(
        vl_requests, vl_processor, base_dir=vl_prompts_path.parent,
        max_model_len=TINY_VL_MAX_MODEL_LEN, max_new_tokens=TEST_MAX_NEW_TOKENS,
    )


@pytest.fixture(scope="session")
def tiny_vl_vllm(tiny_vl_path: Path, vl_prepared, area_release):
    """The one vLLM engine of this test area: float32, eager, small KV cache, image limits as HF's."""
    from hf2vllm.backends.base import create_backend

    _, settings = vl_prepared
    backend = create_backend(
        "vllm",
        model=tiny_vl_path,
        dtype="float32",
        enforce_eager=True,
        max_model_len=TINY_VL_MAX_MODEL_LEN,
        kv_cache_gib=TINY_VL_KV_CACHE_GIB,
        max_num_seqs=8,
        **settings.vllm_engine_kwargs(),
    )
    area_release("multimodal", backend.close)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def tiny_vl_hf(tiny_vl_path: Path, area_release):
    from hf2vllm.backends.base import create_backend

    backend = create_backend("hf", model=tiny_vl_path, dtype="float32")
    area_release("multimodal", backend.close)
    yield backend
    backend.close()
