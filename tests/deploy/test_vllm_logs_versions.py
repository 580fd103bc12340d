"""The log parser reads both vLLM versions we support: 0.32 (CPU build) and 0.26 (CUDA build).

The 0.26 excerpts are real start-up lines from the H100 run of docs/gpu-validation.md.
"""

from __future__ import annotations

from pathlib import Path

from hf2vllm.deploy.vllm_logs import parse_startup

GPU_LOGS = Path(__file__).parents[2] / "docs" / "gpu"


def test_vllm_026_two_line_capacity_and_available_memory_are_parsed() -> None:
    figures = parse_startup((GPU_LOGS / "calibrate-bfloat16-gpu_memory_utilization.excerpt.txt").read_text())
    assert (figures.kv_cache_tokens, figures.max_model_len, figures.max_concurrency) == (3_292_640, 2048, 1607.73)
    assert (figures.kv_memory_gib, figures.kv_memory_source, figures.device) == (70.65, "available", "GPU")


def test_vllm_026_explicit_kv_size_line_is_parsed() -> None:
    figures = parse_startup((GPU_LOGS / "calibrate-bfloat16-kv_cache_memory_bytes.excerpt.txt").read_text())
    assert figures.kv_cache_tokens == 3_256_368
    assert (figures.kv_memory_gib, figures.kv_memory_source) == (69.87, "explicit")
    assert figures.complete


def test_vllm_032_one_line_capacity_is_still_parsed() -> None:
    text = (
        "(EngineCore pid=1) INFO [cpu_worker.py:260] Auto set (2.0/8.21) GiB for KV cache on node 0\n"
        "(EngineCore pid=1) INFO [kv_cache_utils.py:1] CPU KV cache size: 46,592 tokens, "
        "Maximum concurrency for 2,048 tokens per request: 22.75x\n"
    )
    figures = parse_startup(text)
    assert (figures.kv_cache_tokens, figures.max_concurrency, figures.device) == (46_592, 22.75, "CPU")
    assert (figures.kv_memory_gib, figures.kv_memory_source) == (2.0, "auto")
