"""Session fixtures of the pooling tests: test LoRA adapters (built locally with PEFT), a 4-bit GPTQ
and a W8A8 int8 copy of the bundled model (round-to-nearest), and ONE vLLM pooling engine (per-token task,
normalisation explicitly off, LoRA enabled) shared by the hidden-state, probe and LoRA tests. The
embed and quantised engines are module fixtures of their own test files (freed when those finish).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

LORA_RANK = 8
TEST_KV_CACHE_GIB = 1.0
"""Same small KV cache as the shared engines (tests/conftest.py)."""


class Adapters:
    """Paths of the locally built adapters."""

    def __init__(self, root: Path) -> None:
        self.causal = root / "causal-lm"  # keys base_model.model.model.layers.N... (matches vLLM)
        self.inner = root / "inner-model"  # keys base_model.model.layers.N... (trained on AutoModel)
        self.unmatched = root / "unmatched"  # keys of another architecture: can never apply
        self.dora = root / "dora"  # config vLLM refuses


@pytest.fixture(scope="session")
def adapters(bundled_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Adapters:
    from safetensors.torch import load_file, save_file

    from hf2vllm.pooling.lora import build_test_adapter

    found = Adapters(tmp_path_factory.mktemp("lora"))
    # scale=4 makes the effect large enough to change greedy generations of a 135M model.
    build_test_adapter(bundled_model, found.causal, layout="causal-lm", rank=LORA_RANK, seed=0, scale=4.0)
    build_test_adapter(bundled_model, found.inner, layout="inner-model", rank=LORA_RANK, seed=1, scale=4.0)
    # Same tensors under GPT-2 style names: the layout of an adapter trained on another model.
    tensors = load_file(str(found.causal / "adapter_model.safetensors"))
    renamed = {
        k.replace("model.model.layers.", "model.transformer.h.").replace("self_attn.q_proj", "attn.c_attn").replace(
            "self_attn.v_proj", "attn.c_proj"
        ): v
        for k, v in tensors.items()
    }
    for target, config_edit in ((found.unmatched, {}), (found.dora, {"use_dora": True})):
        target.mkdir()
        save_file(renamed if target is found.unmatched else tensors, str(target / "adapter_model.safetensors"))
        config = json.loads((found.causal / "adapter_config.json").read_text())
        config.update(config_edit)
        (target / "adapter_config.json").write_text(json.dumps(config))
    return found


@pytest.fixture(scope="session")
def pooling_api():  # type: ignore[no-untyped-def]
    from hf2vllm.pooling.vllm_compat import detect_pooling_api

    return detect_pooling_api()


@pytest.fixture(scope="session")
def vllm_pooler(bundled_model: Path, pooling_api, area_release):  # type: ignore[no-untyped-def]
    """vLLM pooling runner: token_embed, normalisation OFF in the pooler config, LoRA enabled."""
    from hf2vllm.backends.vllm_offline import VLLMBackend
    from hf2vllm.pooling.vllm_compat import pooling_engine_kwargs

    kwargs = pooling_engine_kwargs(pooling_api, "token", normalise=False)
    backend = VLLMBackend(
        bundled_model, dtype="float32", enforce_eager=True, kv_cache_gib=TEST_KV_CACHE_GIB,
        enable_lora=True, max_lora_rank=LORA_RANK, max_loras=2, **kwargs,
    )
    area_release("pooling", backend.close)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def hf_model(hf_backend):  # type: ignore[no-untyped-def]
    """The shared HF backend's model (never mutated: adapters are applied to copies)."""
    return hf_backend.model


@pytest.fixture(scope="session")
def vllm_lora_generate(bundled_model: Path, area_release):  # type: ignore[no-untyped-def]
    """A generate engine with LoRA enabled (the shared `vllm_backend` is started without it)."""
    from hf2vllm.backends.vllm_offline import VLLMBackend

    backend = VLLMBackend(
        bundled_model, dtype="float32", enforce_eager=True, kv_cache_gib=TEST_KV_CACHE_GIB,
        enable_lora=True, max_lora_rank=LORA_RANK, max_loras=1,
    )
    area_release("pooling", backend.close)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def gptq_copy(bundled_model: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A 4-bit GPTQ-layout copy of the bundled model (round-to-nearest, group 64), built once."""
    from hf2vllm.pooling.quantise import build_rtn_gptq

    return build_rtn_gptq(bundled_model, tmp_path_factory.mktemp("gptq") / "smollm2-gptq-rtn-w4g64", bits=4, group_size=64)


@pytest.fixture(scope="session")
def w8a8_copy(bundled_model: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A W8A8 int8 (compressed-tensors) copy of the bundled model: the quantised format vLLM-CPU runs on AVX2."""
    from hf2vllm.pooling.quantise import build_rtn_w8a8

    return build_rtn_w8a8(bundled_model, tmp_path_factory.mktemp("w8a8") / "smollm2-w8a8-int8-rtn")
