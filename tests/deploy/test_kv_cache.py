"""KV bytes per token, to the byte, against vLLM's own KV cache spec classes.

Every layer of every public config is rebuilt as the spec vLLM's attention layer would create
(``FullAttentionSpec``, ``SlidingWindowSpec``, ``MLAAttentionSpec``, ``MambaSpec`` from
``MambaStateShapeCalculator``) and its ``page_size_bytes / block_size`` must equal the planner's
figure. The hand-derived totals below are the same numbers written out, one derivation per model.
"""

from __future__ import annotations

import pytest
import torch
from vllm.model_executor.layers.mamba.mamba_utils import MambaStateShapeCalculator
from vllm.v1.kv_cache_interface import FullAttentionSpec, MambaSpec, MLAAttentionSpec, SlidingWindowSpec

from hf2vllm.deploy.architecture import LayerKind, load_architecture
from hf2vllm.deploy.kv_cache import kv_bytes_per_token, kv_capacity, layer_caches

# name -> (KV bytes per token in bf16, derivation)
HAND_DERIVED = {
    "llama-3-8b": (131072, "32 layers x 2 (K,V) x 8 KV heads x 128 head_dim x 2 B"),
    "llama-2-7b-chat": (524288, "32 x 2 x 32 KV heads (no GQA) x 128 x 2 B"),
    "mistral-7b-v0.1": (131072, "32 sliding-window layers x 2 x 8 x 128 x 2 B"),
    "qwen2.5-0.5b": (12288, "24 x 2 x 2 KV heads x 64 (896/14) x 2 B"),
    "qwen2-7b-instruct": (57344, "28 x 2 x 4 x 128 (3584/28) x 2 B"),
    "qwen3-8b-base": (147456, "36 x 2 x 8 x 128 x 2 B"),
    "gemma-2-2b-it": (106496, "26 (13 sliding + 13 full) x 2 x 4 x 256 x 2 B"),
    "gemma-3-12b": (393216, "48 (40 sliding + 8 full) x 2 x 8 x 256 x 2 B"),
    "mixtral-8x7b-v0.1": (131072, "32 x 2 x 8 x 128 x 2 B (experts do not touch the KV cache)"),
    "deepseek-r1": (70272, "61 MLA layers x 1 latent x (kv_lora_rank 512 + qk_rope_head_dim 64) x 2 B"),
    "deepseek-v2.5": (69120, "60 MLA layers x (512 + 64) x 2 B"),
    "jamba-1.5-mini": (16384, "4 attention layers (every 8th from 4) x 2 x 8 x 128 x 2 B; 28 Mamba layers add none"),
}

TORCH_DTYPES = {2: torch.bfloat16, 4: torch.float32, 1: torch.float8_e4m3fn}


def vllm_spec(cache, block_size: int, arch, tp: int):
    """The spec vLLM's layer would build for this layer (attention.py / mla_attention.py / jamba.py)."""
    dtype = TORCH_DTYPES[cache.element_bytes] if cache.kind is not LayerKind.MAMBA else torch.bfloat16
    if cache.kind is LayerKind.MLA:
        return MLAAttentionSpec(block_size=block_size, num_kv_heads=1, head_size=arch.kv_lora_rank + arch.qk_rope_head_dim, dtype=dtype)
    if cache.kind is LayerKind.SLIDING:
        return SlidingWindowSpec(block_size=block_size, num_kv_heads=max(1, arch.num_key_value_heads // tp),
                                 head_size=arch.head_dim, dtype=dtype, sliding_window=arch.sliding_window)
    if cache.kind is LayerKind.MAMBA:
        shapes = MambaStateShapeCalculator.mamba1_state_shape(
            tp_world_size=tp, intermediate_size=arch.mamba.d_inner, state_size=arch.mamba.d_state,
            conv_kernel=arch.mamba.d_conv)
        return MambaSpec(block_size=block_size, shapes=shapes, dtypes=(torch.bfloat16, torch.bfloat16))
    return FullAttentionSpec(block_size=block_size, num_kv_heads=max(1, arch.num_key_value_heads // tp),
                             head_size=arch.head_dim, dtype=dtype)


@pytest.mark.parametrize("name", sorted(HAND_DERIVED))
@pytest.mark.parametrize("tp", [1, 2])
def test_kv_bytes_per_token_equal_vllm_page_size_per_token(name, tp, configs_dir):
    arch = load_architecture(configs_dir / f"{name}.json")
    caches = layer_caches(arch, tensor_parallel_size=tp)
    block_size = 16
    vllm_total = 0
    for cache in caches:
        spec = vllm_spec(cache, block_size, arch, tp)
        if cache.kind is LayerKind.MAMBA:
            assert cache.state_bytes == spec.page_size_bytes, "Mamba state per sequence"
            continue
        assert spec.page_size_bytes % block_size == 0
        assert cache.page_bytes(block_size) == spec.page_size_bytes
        vllm_total += spec.page_size_bytes // block_size
    assert kv_bytes_per_token(caches) == vllm_total
    if tp == 1:
        expected, derivation = HAND_DERIVED[name]
        assert vllm_total == expected, derivation


def test_fp8_kv_cache_halves_bytes_per_token(configs_dir):
    arch = load_architecture(configs_dir / "llama-3-8b.json")
    bf16 = kv_bytes_per_token(layer_caches(arch))
    fp8 = kv_bytes_per_token(layer_caches(arch, kv_cache_dtype="fp8"))
    spec = FullAttentionSpec(block_size=16, num_kv_heads=8, head_size=128, dtype=torch.float8_e4m3fn)
    assert fp8 * 2 == bf16
    assert fp8 == 32 * spec.page_size_bytes // 16


def test_mla_cache_is_replicated_not_split_by_tensor_parallel(configs_dir):
    arch = load_architecture(configs_dir / "deepseek-r1.json")
    assert kv_bytes_per_token(layer_caches(arch, tensor_parallel_size=8)) == kv_bytes_per_token(layer_caches(arch))


def test_layer_classification_follows_vllm_rules(configs_dir):
    gemma2 = load_architecture(configs_dir / "gemma-2-2b-it.json")
    assert gemma2.layer_kinds[:2] == [LayerKind.SLIDING, LayerKind.FULL]  # Transformers' layer_types
    gemma3 = load_architecture(configs_dir / "gemma-3-12b.json")
    assert [i for i, k in enumerate(gemma3.layer_kinds) if k is LayerKind.FULL] == [5, 11, 17, 23, 29, 35, 41, 47]
    mistral = load_architecture(configs_dir / "mistral-7b-v0.1.json")
    assert set(mistral.layer_kinds) == {LayerKind.SLIDING} and mistral.sliding_window == 4096
    qwen2 = load_architecture(configs_dir / "qwen2-7b-instruct.json")
    assert set(qwen2.layer_kinds) == {LayerKind.FULL}  # use_sliding_window: false
    jamba = load_architecture(configs_dir / "jamba-1.5-mini.json")
    assert [i for i, k in enumerate(jamba.layer_kinds) if k is LayerKind.FULL] == [4, 12, 20, 28]


def test_capacity_of_uniform_model_is_blocks_over_blocks_per_request(configs_dir):
    """Llama-3-8B, bf16, 16-token blocks, 10 GiB: 32 layers x 16 x 131072/32 B = 2 MiB per block ->
    5120 blocks; a 8192-token request needs 512 blocks -> 10.00x and 81,920 tokens."""
    caches = layer_caches(load_architecture(configs_dir / "llama-3-8b.json"))
    cap = kv_capacity(caches, available_bytes=10 * 1024**3, block_size=16, max_model_len=8192, max_num_batched_tokens=8192)
    assert cap.bytes_per_block == 2 * 1024**2
    assert cap.num_blocks == 5120
    assert cap.max_concurrency == 10.0
    assert cap.kv_cache_tokens == 81920


def test_capacity_of_sliding_window_hybrid_counts_window_blocks(configs_dir):
    """Gemma-2-2B (13 sliding + 13 full layers, 4 KV heads x 256, bf16), 16-token blocks, 1 GiB,
    max_model_len 8192, 2048 batched tokens, one batch in flight. vLLM makes two groups of 13
    layers (``_get_kv_cache_groups_uniform_page_size``); a block holds 13 pages of 16 x 4096 B =
    851,968 B -> 1260 blocks. Per request: full group cdiv(8192,16) = 512 blocks; sliding group
    cdiv(min(4096-1+2048, 8192), 16) + 1 = 385 blocks; 897 in all -> 1.4047x, 11,507 tokens."""
    caches = layer_caches(load_architecture(configs_dir / "gemma-2-2b-it.json"))
    cap = kv_capacity(caches, available_bytes=1024**3, block_size=16, max_model_len=8192, max_num_batched_tokens=2048)
    assert [g.num_layers for g in cap.groups] == [13, 13]
    assert cap.bytes_per_block == 851968
    assert cap.num_blocks == 1260
    assert cap.blocks_per_request == 897
    assert cap.kv_cache_tokens == int(1260 / 897 * 8192) == 11507


def test_capacity_of_mamba_hybrid_pads_state_to_attention_page(configs_dir):
    """Jamba-1.5-Mini at TP 1, bf16: attention 4096 B/token/layer; Mamba state (3 x 8192 + 8192 x 16)
    x 2 B = 311,296 B. Block size rises to 16 x cdiv(311296, 16 x 4096) = 80 tokens (page 327,680 B,
    the Mamba page padded to it). Groups: 1 attention group of 4 layers + 7 Mamba groups of 4
    (group size = the smaller bucket); block = 4 pages = 1,310,720 B. Per request at 8192 tokens:
    cdiv(8192, 80) = 103 attention blocks + 7 Mamba blocks = 110."""
    caches = layer_caches(load_architecture(configs_dir / "jamba-1.5-mini.json"))
    cap = kv_capacity(caches, available_bytes=20 * 1024**3, block_size=16, max_model_len=8192, max_num_batched_tokens=8192)
    assert cap.block_size == 80
    assert cap.bytes_per_block == 4 * 327680
    assert len(cap.groups) == 8
    assert cap.blocks_per_request == 110
    assert cap.num_blocks == 20 * 1024**3 // (4 * 327680)
