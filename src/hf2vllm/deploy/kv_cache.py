"""KV-cache bytes and token capacity, counted the way vLLM's v1 KV cache manager counts them.

Pure arithmetic; no vLLM import. Each rule names the vLLM code it mirrors (vllm 0.32,
``vllm/v1/kv_cache_interface.py`` and ``vllm/v1/core/kv_cache_utils.py``):

* page bytes of one layer for ``block_size`` tokens
  - full / sliding attention (``AttentionSpec``): ``block_size * num_kv_heads * (head_size + head_size_v) * dtype``
  - MLA (``MLAAttentionSpec``): ``block_size * 1 * (kv_lora_rank + qk_rope_head_dim) * dtype``
    (one latent, no separate V, replicated on every TP rank)
  - Mamba (``MambaSpec``): the conv + SSM state of one sequence, independent of the block size,
    padded to the attention page (``Platform._align_hybrid_block_size``)
* layers are grouped (``get_kv_cache_groups``): one group when every layer has the same spec or
  the same type; otherwise buckets by spec, split into groups of equal layer count
  (``_get_kv_cache_groups_uniform_page_size``)
* ``num_blocks = available_bytes // bytes_per_block`` with ``bytes_per_block`` the largest group's
  page sum (``get_kv_cache_config_from_groups``)
* a request at ``max_model_len`` needs ``cdiv(max_memory_usage_bytes, page)`` blocks per group:
  ``cdiv(L, block)`` for full attention, ``cdiv(min(window - 1 + in_flight, L), block) + 1`` for a
  sliding window, one block for a Mamba state (``*.max_memory_usage_bytes``)
* ``max_concurrency = num_blocks / blocks_per_request`` and ``KV cache size = int(max_concurrency * L)``
  tokens (``get_kv_cache_capacity``) — the two figures vLLM logs at start-up.
"""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel

from hf2vllm.deploy.architecture import LayerKind, ModelArchitecture
from hf2vllm.errors import InputError

# Bytes per element of a KV cache dtype as vLLM stores it (``STR_DTYPE_TO_TORCH_DTYPE``).
KV_DTYPE_BYTES = {
    "float32": 4,
    "float": 4,
    "bfloat16": 2,
    "float16": 2,
    "half": 2,
    "fp8": 1,
    "fp8_e4m3": 1,
    "fp8_e5m2": 1,
    "int8": 1,
}


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def dtype_bytes(kv_cache_dtype: str, model_dtype: str) -> int:
    """Element size of the KV cache: ``auto`` follows the model dtype."""
    name = model_dtype if kv_cache_dtype in ("auto", "", None) else kv_cache_dtype
    try:
        return KV_DTYPE_BYTES[name]
    except KeyError:
        # With "auto" the element is the model's dtype: blame the option that set it, not the KV cache.
        where = f"--dtype {model_dtype!r}" if kv_cache_dtype in ("auto", "", None) else f"--kv-cache-dtype {kv_cache_dtype!r}"
        raise InputError(
            f"{where}: hf2vllm does not know the KV element size of this dtype (sized: auto, "
            f"{', '.join(sorted(KV_DTYPE_BYTES))})"
        ) from None


class LayerCache(BaseModel, frozen=True):
    """The cache one decoder layer keeps on one rank."""

    kind: LayerKind
    num_kv_heads: int = 0
    head_size: int = 0
    head_size_v: int = 0
    element_bytes: int = 0
    sliding_window: int | None = None
    state_bytes: int = 0

    @property
    def bytes_per_token(self) -> int:
        """Page bytes for one token (``spec.page_size_bytes`` at ``block_size=1``); 0 for Mamba."""
        if self.kind is LayerKind.MAMBA:
            return 0
        return self.num_kv_heads * (self.head_size + self.head_size_v) * self.element_bytes

    def page_bytes(self, block_size: int) -> int:
        if self.kind is LayerKind.MAMBA:
            return self.state_bytes
        return block_size * self.bytes_per_token


def mamba1_state_bytes(arch: ModelArchitecture, tp: int, element_bytes: int) -> int:
    """Conv state ``(d_conv - 1, d_inner/tp)`` + SSM state ``(d_inner/tp, d_state)`` of one sequence.

    Mirrors ``MambaStateShapeCalculator.mamba1_state_shape``; both states use the model dtype
    (``mamba_ssm_cache_dtype=auto``).
    """
    assert arch.mamba is not None
    d_inner = arch.mamba.d_inner // tp
    conv = (arch.mamba.d_conv - 1) * d_inner
    ssm = d_inner * arch.mamba.d_state
    return (conv + ssm) * element_bytes


def layer_caches(
    arch: ModelArchitecture,
    *,
    kv_cache_dtype: str = "auto",
    model_dtype: str | None = None,
    tensor_parallel_size: int = 1,
) -> list[LayerCache]:
    """One ``LayerCache`` per decoder layer, as rank 0 of a TP group holds it."""
    dtype = model_dtype or arch.torch_dtype
    element = dtype_bytes(kv_cache_dtype, dtype)
    state_element = dtype_bytes("auto", dtype)
    tp = tensor_parallel_size
    # vLLM replicates KV heads when TP exceeds them (``get_num_kv_heads``).
    kv_heads = max(1, arch.num_key_value_heads // tp)
    caches = []
    for kind in arch.layer_kinds:
        if kind is LayerKind.MLA:
            caches.append(LayerCache(kind=kind, num_kv_heads=1, head_size=arch.kv_head_size, element_bytes=element))
        elif kind is LayerKind.MAMBA:
            caches.append(LayerCache(kind=kind, state_bytes=mamba1_state_bytes(arch, tp, state_element)))
        else:
            caches.append(
                LayerCache(
                    kind=kind,
                    num_kv_heads=kv_heads,
                    head_size=arch.head_dim,
                    head_size_v=arch.head_dim,
                    element_bytes=element,
                    sliding_window=arch.sliding_window if kind is LayerKind.SLIDING else None,
                )
            )
    return caches


def kv_bytes_per_token(caches: list[LayerCache]) -> int:
    """Bytes one token occupies across every attention layer (what grows with context)."""
    return sum(cache.bytes_per_token for cache in caches)


class CacheGroup(BaseModel):
    """A set of layers sharing one block table (``KVCacheGroupSpec``)."""

    kind: LayerKind
    num_layers: int
    page_bytes: int
    blocks_per_request: int


class KVCapacity(BaseModel):
    """What vLLM will log at start-up for a given amount of KV memory."""

    block_size: int
    bytes_per_block: int
    num_blocks: int
    groups: list[CacheGroup]
    blocks_per_request: int
    max_concurrency: float
    kv_cache_tokens: int


def hybrid_block_size(caches: list[LayerCache], block_size: int, kernel_alignment: int) -> int:
    """Attention block size raised until one attention page holds a Mamba state.

    ``Platform._align_hybrid_block_size``: ``alignment * cdiv(mamba_page, alignment * attn_page_1)``.
    """
    mamba_page = max((c.state_bytes for c in caches if c.kind is LayerKind.MAMBA), default=0)
    attention = [c for c in caches if c.kind is not LayerKind.MAMBA]
    if not mamba_page or not attention:
        return block_size
    alignment = max(kernel_alignment, block_size)
    needed = alignment * cdiv(mamba_page, alignment * attention[0].bytes_per_token)
    return max(block_size, needed)


def _blocks_for(cache: LayerCache, block_size: int, max_model_len: int, in_flight: int) -> int:
    if cache.kind is LayerKind.MAMBA:
        return 1
    if cache.kind is LayerKind.SLIDING:
        assert cache.sliding_window is not None
        tokens = min(cache.sliding_window - 1 + in_flight, max_model_len)
        return cdiv(tokens, block_size) + 1
    return cdiv(max_model_len, block_size)


def _group_key(cache: LayerCache) -> tuple:
    return (cache.kind, cache.num_kv_heads, cache.head_size, cache.element_bytes, cache.sliding_window, cache.state_bytes)


def kv_capacity(
    caches: list[LayerCache],
    *,
    available_bytes: int,
    block_size: int,
    max_model_len: int,
    max_num_batched_tokens: int,
    max_concurrent_batches: int = 1,
    pipeline_parallel_size: int = 1,
    kernel_alignment: int | None = None,
) -> KVCapacity:
    """The KV cache size and maximum concurrency vLLM logs for ``available_bytes`` per rank."""
    if not caches:
        raise InputError("this model has no KV cache layers to size")
    if any(c.kind is LayerKind.MAMBA for c in caches):
        block_size = hybrid_block_size(caches, block_size, kernel_alignment or block_size)
    in_flight = max_concurrent_batches * max_num_batched_tokens
    pages = {c: (c.page_bytes(block_size)) for c in caches}
    attention_pages = {pages[c] for c in caches if c.kind is not LayerKind.MAMBA}
    # Mamba pages are padded to the attention page (``mamba_page_size_padded``).
    common_page = max(attention_pages) if attention_pages else None

    def page_of(cache: LayerCache) -> int:
        if cache.kind is LayerKind.MAMBA and common_page is not None:
            return common_page
        return pages[cache]

    buckets: Counter[tuple] = Counter(_group_key(c) for c in caches)
    representative = {_group_key(c): c for c in caches}
    kinds = {c.kind for c in caches}
    windows = {c.sliding_window for c in caches}
    # ``UniformTypeKVCacheSpecs``: all full attention (any head sizes), or all MLA, or all sliding
    # with one window: a single group whose block holds every layer's page.
    uniform_type = len(kinds) == 1 and (kinds <= {LayerKind.FULL, LayerKind.MLA} or len(windows) == 1)
    pp = pipeline_parallel_size
    groups: list[CacheGroup] = []
    if len(buckets) == 1 or uniform_type:
        first = caches[0]
        # With pipeline parallelism the stage with the most layers bounds the block count.
        stage_layers = caches[: cdiv(len(caches), pp)]
        bytes_per_block = sum(page_of(c) for c in stage_layers)
        blocks = _blocks_for(first, block_size, max_model_len, in_flight)
        groups.append(CacheGroup(kind=first.kind, num_layers=len(caches), page_bytes=page_of(first), blocks_per_request=blocks))
    else:
        if len({page_of(c) for c in caches}) != 1:
            raise InputError(
                "layers of this model have different page sizes that vLLM would pack with a "
                "backend-specific layout; hf2vllm cannot size it exactly"
            )
        counts = list(buckets.values())
        group_size = min(counts)
        if max(counts) < group_size * 1.5:
            group_size = max(counts)
        for key, count in buckets.items():
            cache = representative[key]
            for _ in range(cdiv(count, group_size)):
                groups.append(
                    CacheGroup(
                        kind=cache.kind,
                        num_layers=group_size,
                        page_bytes=page_of(cache),
                        blocks_per_request=_blocks_for(cache, block_size, max_model_len, in_flight),
                    )
                )
        # Each rank holds its share of every group's layers (``_project_kv_cache_groups_to_worker``).
        bytes_per_block = cdiv(group_size, pp) * page_of(caches[0])
    num_blocks = available_bytes // bytes_per_block
    blocks_per_request = sum(g.blocks_per_request for g in groups)
    concurrency = num_blocks / blocks_per_request
    return KVCapacity(
        block_size=block_size,
        bytes_per_block=bytes_per_block,
        num_blocks=num_blocks,
        groups=groups,
        blocks_per_request=blocks_per_request,
        max_concurrency=concurrency,
        kv_cache_tokens=int(concurrency * max_model_len),
    )
