"""Image-token cost: how many prompt tokens an image of a given size becomes, from processor settings.

Hand-written per family (the maths each image processor does), so the number is explained, not just
measured; ``tests/multimodal`` proves it equals the processor's real placeholder count.

- Idefics3 / SmolVLM: the image is resized so its longest edge is ``size.longest_edge`` (up or down),
  rounded up to whole tiles of ``max_image_size.longest_edge``, cut into ``rows x cols`` tiles plus
  one global tile; each tile is ``image_seq_len`` ``<image>`` tokens, wrapped in
  ``<fake_token_around_image>``/``<row_r_col_c>``/``<global-img>`` markers and newlines.
- Qwen2-VL family: ``smart_resize`` to multiples of ``patch_size * merge_size`` within
  ``[min_pixels, max_pixels]``; tokens = (h/patch) * (w/patch) / merge_size**2 ``<|image_pad|>``.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, Field

from hf2vllm.errors import InputError


class ImageCost(BaseModel):
    """Prompt tokens one image costs under given processor settings."""

    width: int
    height: int
    family: str
    placeholder_tokens: int = Field(description="Tokens the image's placeholder expands into (whole span).")
    image_tokens: int = Field(description="Of those, the tokens replaced by vision features.")
    detail: str = Field(description="How the number came about, e.g. '2x3 tiles + global, 16 each'.")


def _get(settings: Any, key: str, default: Any = None) -> Any:
    if isinstance(settings, dict):
        return settings.get(key, default)
    return getattr(settings, key, default)


def idefics3_cost(
    width: int,
    height: int,
    *,
    longest_edge: int,
    tile: int,
    image_seq_len: int,
    do_image_splitting: bool = True,
    newline_pair_tokens: int = 1,
) -> ImageCost:
    """Cost of one image for Idefics3/SmolVLM. ``newline_pair_tokens``: tokens the tokenizer makes of "\\n\\n"."""
    rows = cols = 0
    if do_image_splitting:
        # Step 1: longest edge to ``longest_edge``, the other keeping the aspect ratio, rounded up to even.
        if width >= height:
            w, h = longest_edge, int(longest_edge / (width / height))
            h += h % 2
        else:
            h, w = longest_edge, int(longest_edge * (width / height))
            w += w % 2
        h, w = max(h, 1), max(w, 1)
        # Step 2: round both sides up to whole tiles.
        rh, rw = math.ceil(h / tile) * tile, math.ceil(w / tile) * tile
        if rh > tile or rw > tile:
            rows, cols = math.ceil(rh / tile), math.ceil(rw / tile)
    global_span = image_seq_len + 3  # <fake><global-img><image>*n<fake>
    if rows == 0:
        return ImageCost(width=width, height=height, family="idefics3", placeholder_tokens=global_span,
                         image_tokens=image_seq_len, detail=f"global tile only, {image_seq_len} tokens")
    row_span = (image_seq_len + 2) * cols + 1  # (<fake><row_r_col_c><image>*n) per tile, then "\n"
    # The last row's "\n" and the "\n" before the global tile form "\n\n": one token or two.
    span = rows * row_span + global_span + (newline_pair_tokens - 1)
    return ImageCost(
        width=width, height=height, family="idefics3", placeholder_tokens=span,
        image_tokens=(rows * cols + 1) * image_seq_len,
        detail=f"{rows}x{cols} tiles + global, {image_seq_len} tokens each",
    )


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Qwen2-VL's resize rule: sides multiple of ``factor``, area within [min_pixels, max_pixels]."""
    if max(height, width) / min(height, width) > 200:
        raise InputError(f"image {width}x{height}: aspect ratio above 200 is refused by Qwen2-VL processors")
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


def qwen2_vl_cost(
    width: int, height: int, *, patch_size: int, merge_size: int, min_pixels: int, max_pixels: int
) -> ImageCost:
    h, w = smart_resize(height, width, patch_size * merge_size, min_pixels, max_pixels)
    grid_h, grid_w = h // patch_size, w // patch_size
    tokens = grid_h * grid_w // merge_size**2
    return ImageCost(
        width=width, height=height, family="qwen2-vl", placeholder_tokens=tokens, image_tokens=tokens,
        detail=f"resized to {w}x{h}, grid {grid_h}x{grid_w} patches of {patch_size}, merged {merge_size}x{merge_size}",
    )


def image_cost(processor: Any, width: int, height: int, image_kwargs: dict[str, Any] | None = None) -> ImageCost:
    """Cost of one ``width x height`` image for ``processor`` with the given image-size overrides."""
    kwargs = dict(image_kwargs or {})
    ip = processor.image_processor
    name = type(processor).__name__
    if name in {"Idefics3Processor", "SmolVLMProcessor"}:
        size = kwargs.get("size", ip.size)
        tile = kwargs.get("max_image_size", ip.max_image_size)
        newline_pair = len(processor.tokenizer("\n\n", add_special_tokens=False)["input_ids"])
        return idefics3_cost(
            width, height,
            longest_edge=int(_get(size, "longest_edge")),
            tile=int(_get(tile, "longest_edge")),
            image_seq_len=int(kwargs.get("image_seq_len", processor.image_seq_len)),
            do_image_splitting=bool(kwargs.get("do_image_splitting", ip.do_image_splitting)),
            newline_pair_tokens=newline_pair,
        )
    if hasattr(ip, "merge_size") and hasattr(ip, "patch_size"):
        size = kwargs.get("size", ip.size)
        min_pixels = kwargs.get("min_pixels", _get(size, "shortest_edge"))
        max_pixels = kwargs.get("max_pixels", _get(size, "longest_edge"))
        return qwen2_vl_cost(
            width, height,
            patch_size=int(kwargs.get("patch_size", ip.patch_size)),
            merge_size=int(kwargs.get("merge_size", ip.merge_size)),
            min_pixels=int(min_pixels), max_pixels=int(max_pixels),
        )
    raise InputError(
        f"no image-token formula for {name} yet (known: Idefics3/SmolVLM, Qwen2-VL family); "
        "the identity check still measures it on real inputs"
    )


class RequestBudget(BaseModel):
    """Token budget of one request: template text, image placeholders, and what generation adds."""

    request_id: str
    text_tokens: int = Field(description="Prompt tokens that are not image placeholders.")
    images: list[ImageCost] = Field(default_factory=list)
    max_new_tokens: int
    max_model_len: int | None

    @property
    def image_placeholder_tokens(self) -> int:
        return sum(img.placeholder_tokens for img in self.images)

    @property
    def prompt_tokens(self) -> int:
        return self.text_tokens + self.image_placeholder_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.max_new_tokens

    @property
    def fits(self) -> bool:
        return self.max_model_len is None or self.total_tokens <= self.max_model_len


def request_budgets(
    requests: Any,
    processor: Any,
    *,
    image_overrides: dict[str, Any] | None = None,
    base_dir: Any = None,
    max_new_tokens: int = 0,
    max_model_len: int | None = None,
) -> list[RequestBudget]:
    """Budget every request from settings and image sizes alone (no pixels are processed).

    The chat template is rendered exactly as ``prepare`` renders it; each image placeholder the
    template wrote counts as the formula's span instead of its single token.
    """
    from PIL import Image

    from hf2vllm.multimodal.placeholders import image_markers
    from hf2vllm.multimodal.prepare import resolve_settings, split_messages

    markers = image_markers(processor)
    settings = resolve_settings(processor, image_overrides)
    tokenizer = processor.tokenizer
    marker_ids = len(tokenizer(markers.image_token, add_special_tokens=False)["input_ids"])
    budgets = []
    for req in requests:
        if req.messages is None:
            text, refs, add_special = req.prompt or "", [], True
        else:
            messages, refs = split_messages(req, markers, base_dir)
            text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            add_special = False
        n_ids = len(tokenizer(text, add_special_tokens=add_special)["input_ids"])
        costs = []
        for ref in refs:
            if ref.path is not None:
                with Image.open(ref.path) as img:  # reads the header only
                    width, height = img.size
            else:
                width, height = ref.load().size
            costs.append(image_cost(processor, width, height, settings))
        budgets.append(
            RequestBudget(
                request_id=req.id,
                text_tokens=n_ids - marker_ids * len(refs),
                images=costs,
                max_new_tokens=max_new_tokens,
                max_model_len=max_model_len,
            )
        )
    return budgets
