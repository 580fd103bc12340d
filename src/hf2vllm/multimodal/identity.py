"""Input identity: prove that HF and vLLM see the same expanded tokens and the same pixels.

vLLM expands each image placeholder with its own multimodal processor, under its own
``mm_processor_kwargs``. If those differ from the HF processor's settings (a different
``max_pixels``, ``size.longest_edge``, tiling switch), the model still answers — about a
different picture, with a different number of image tokens. This check runs vLLM's real input
pipeline (``LLM.renderer``, the same code ``generate()`` uses, without generating) and compares,
request by request:

- the whole expanded token sequence with the HF processor's ``input_ids``;
- per image: the placeholder span length and the number of vision-feature tokens;
- per image: the pixel tensors' shapes (the "grid") and their largest absolute difference.

The comparison itself (``compare_inputs``) is a pure function over plain lists and shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from hf2vllm.errors import InputError
from hf2vllm.multimodal.prepare import VLPreparedRequest, engine_prompt


class InputMismatchError(InputError):
    """The two backends would not see the same inputs; the message names the request and the cause."""


class ImageSide(BaseModel):
    """What one backend made of one image."""

    placeholder_tokens: int
    grid: dict[str, list[int]] = Field(description="tensor name -> shape, e.g. pixel_values: [7, 3, 64, 64]")


class ImageIdentity(BaseModel):
    index: int
    source: str
    hf: ImageSide
    vllm: ImageSide
    pixel_max_abs_diff: float | None = None

    @property
    def same(self) -> bool:
        return (
            self.hf.placeholder_tokens == self.vllm.placeholder_tokens
            and self.hf.grid == self.vllm.grid
            and not self.pixel_max_abs_diff
        )


class RequestIdentity(BaseModel):
    request_id: str
    hf_prompt_tokens: int
    vllm_prompt_tokens: int
    first_divergence: int | None = Field(None, description="First position where the token ids differ.")
    images: list[ImageIdentity] = Field(default_factory=list)

    @property
    def same(self) -> bool:
        return self.first_divergence is None and all(img.same for img in self.images)


class IdentityReport(BaseModel):
    """Per-request verdict of the input identity check."""

    requests: list[RequestIdentity]
    hf_image_settings: dict[str, Any]
    vllm_image_settings: dict[str, Any]

    @property
    def identical(self) -> bool:
        return all(r.same for r in self.requests)

    def raise_on_mismatch(self) -> None:
        for req in self.requests:
            if not req.same:
                raise InputMismatchError(explain(req, self.hf_image_settings, self.vllm_image_settings))


def first_divergence(a: Sequence[int], b: Sequence[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def explain(req: RequestIdentity, hf_settings: dict[str, Any], vllm_settings: dict[str, Any]) -> str:
    """One line naming the request, the first differing image (or position) and the likely cause."""
    for img in req.images:
        if img.same:
            continue
        what = (
            f"request {req.request_id!r} image {img.index} ({img.source}): HF processor expanded it to "
            f"{img.hf.placeholder_tokens} tokens, pixel grid {_grid(img.hf)}; vLLM to "
            f"{img.vllm.placeholder_tokens} tokens, pixel grid {_grid(img.vllm)}"
        )
        if img.hf.grid == img.vllm.grid and img.hf.placeholder_tokens == img.vllm.placeholder_tokens:
            return f"{what}; same grid but pixels differ by up to {img.pixel_max_abs_diff:.3g} (resampling/normalisation differ)"
        if hf_settings != vllm_settings:
            return (
                f"{what}: the two sides preprocess images with different size limits "
                f"(HF: {hf_settings}; vLLM mm_processor_kwargs: {vllm_settings}); pass the same values to both"
            )
        return f"{what}: the processors differ although the settings match (check processor versions)"
    return (
        f"request {req.request_id!r}: expanded prompts differ at token {req.first_divergence} "
        f"(HF {req.hf_prompt_tokens} tokens, vLLM {req.vllm_prompt_tokens}); the placeholder was not expanded "
        "the same way on both sides"
    )


def _grid(side: ImageSide) -> str:
    shape = side.grid.get("pixel_values")
    return "x".join(str(d) for d in shape) if shape else str(side.grid)


def _squeeze_leading(shape: Sequence[int]) -> list[int]:
    dims = list(shape)
    while len(dims) > 1 and dims[0] == 1:
        dims.pop(0)
    return dims


def _tensor_shapes(data: dict[str, Any]) -> dict[str, Any]:
    """Tensor-valued entries, leading batch dims of 1 removed (HF batches, vLLM slices per item)."""
    import torch

    out = {}
    for key, value in data.items():
        if isinstance(value, torch.Tensor) and value.dtype.is_floating_point:
            out[key] = value.reshape(_squeeze_leading(value.shape))
    return out


def hf_image_tensors(processor: Any, image: Any, image_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Pixel tensors the HF image processor makes of one image under ``image_kwargs``."""
    ip = processor.image_processor
    allowed = {k: v for k, v in image_kwargs.items() if k not in {"image_seq_len"}}
    out = ip([image], return_tensors="pt", **allowed)
    return _tensor_shapes(dict(out))


def vllm_engine_inputs(llm: Any, prompts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run vLLM's real input pipeline (tokenise, multimodal processor, expansion) without generating."""
    return list(llm.renderer.render_cmpl(prompts, skip_mm_cache=True))


def vllm_image_settings(llm: Any, prompt_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    mm_config = llm.llm_engine.model_config.multimodal_config
    settings = dict(getattr(mm_config, "mm_processor_kwargs", None) or {})
    settings.update(prompt_overrides or {})
    return settings


def check_input_identity(
    llm: Any,
    processor: Any,
    requests: Sequence[VLPreparedRequest],
    *,
    vllm_prompt_overrides: dict[str, Any] | None = None,
) -> IdentityReport:
    """Compare what the HF processor and vLLM's engine make of every request.

    ``vllm_prompt_overrides`` adds per-prompt ``mm_processor_kwargs`` on the vLLM side only, the way a
    migrated script might pass them; it exists to reproduce a user's mismatch.
    """
    import torch

    prompts = []
    for req in requests:
        prompt = engine_prompt(req)
        if vllm_prompt_overrides and getattr(req, "multimodal", None) is not None:
            prompt["mm_processor_kwargs"] = dict(vllm_prompt_overrides)
        prompts.append(prompt)
    engine_inputs = vllm_engine_inputs(llm, prompts)
    hf_settings = next((r.multimodal.image_kwargs for r in requests if getattr(r, "multimodal", None)), {})
    results = []
    for req, prompt, engine_input in zip(requests, prompts, engine_inputs, strict=True):
        vllm_ids = [int(t) for t in engine_input["prompt_token_ids"]]
        entry = RequestIdentity(
            request_id=req.id,
            hf_prompt_tokens=len(req.prompt_token_ids),
            vllm_prompt_tokens=len(vllm_ids),
            first_divergence=first_divergence(req.prompt_token_ids, vllm_ids),
        )
        vl = getattr(req, "multimodal", None)
        if vl is not None:
            placeholders = (engine_input.get("mm_placeholders") or {}).get("image", [])
            items = (engine_input.get("mm_kwargs") or {}).get("image", [])
            for i, (ref, image) in enumerate(zip(vl.images, prompt["multi_modal_data"]["image"], strict=True)):
                hf_tensors = hf_image_tensors(processor, image, vl.image_kwargs)
                v_tensors = _tensor_shapes(items[i].get_data()) if i < len(items) else {}
                common = sorted(set(hf_tensors) & set(v_tensors))
                diff = None
                for key in common:
                    if hf_tensors[key].shape == v_tensors[key].shape:
                        d = float(torch.max(torch.abs(hf_tensors[key].float() - v_tensors[key].float())))
                        diff = max(diff or 0.0, d)
                entry.images.append(
                    ImageIdentity(
                        index=i,
                        source=ref.describe(),
                        hf=ImageSide(
                            placeholder_tokens=vl.placeholder_tokens[i],
                            grid={k: list(hf_tensors[k].shape) for k in common or hf_tensors},
                        ),
                        vllm=ImageSide(
                            placeholder_tokens=int(placeholders[i].length) if i < len(placeholders) else 0,
                            grid={k: list(v_tensors[k].shape) for k in common or v_tensors},
                        ),
                        pixel_max_abs_diff=diff,
                    )
                )
        results.append(entry)
    return IdentityReport(
        requests=results,
        hf_image_settings=hf_settings,
        vllm_image_settings=vllm_image_settings(llm, vllm_prompt_overrides),
    )
