"""Hooks that put the VL path into ``compare`` and the backends with a few lines on their side.

- ``prepare_vl_prompt_set``: ``parity.run.prepare_prompt_set`` calls it for a VL checkpoint.
- ``vllm_engine_options``: the ``mm_processor_kwargs``/``limit_mm_per_prompt`` a vLLM engine needs to
  preprocess images exactly as the HF processor did for these requests.
- ``has_images``: teacher-forced scoring feeds token ids only (no pixels), so it is skipped for
  requests with images.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hf2vllm.requests import ChatRequest, PreparedRequest


def prepare_vl_prompt_set(
    requests: Sequence[ChatRequest],
    model_path: Path,
    *,
    prompts_path: Path,
    overrides: dict[str, Any] | None,
    max_model_len: int | None,
    max_new_tokens: int,
) -> list[PreparedRequest]:
    from hf2vllm.multimodal.prepare import load_processor, prepare_vl_requests

    prepared, _ = prepare_vl_requests(
        requests,
        load_processor(model_path),
        image_overrides=overrides,
        base_dir=Path(prompts_path).parent,
        max_model_len=max_model_len,
        max_new_tokens=max_new_tokens,
    )
    return list(prepared)


def has_images(requests: Sequence[PreparedRequest]) -> bool:
    return any(getattr(r, "multimodal", None) is not None for r in requests)


def vllm_engine_options(kind: str, requests: Sequence[PreparedRequest]) -> dict[str, Any]:
    """Engine kwargs for a vLLM-based backend; empty for other kinds or text-only request sets."""
    if kind != "vllm" or not has_images(requests):
        return {}
    from hf2vllm.multimodal.prepare import VLSettings

    with_images = [r.multimodal for r in requests if getattr(r, "multimodal", None) is not None]
    settings = VLSettings(
        mm_processor_kwargs=with_images[0].image_kwargs,
        max_images_per_prompt=max(len(vl.images) for vl in with_images),
    )
    return settings.vllm_engine_kwargs()
