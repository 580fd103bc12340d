"""The ONE path that turns chat requests with images into inputs for both backends.

For a vision-language model every request (text-only ones too, so a mixed batch shares one
template) goes through ``processor.apply_chat_template(messages, add_generation_prompt=True)``:

- the **HF side** gets the processor's outputs for that text and the request's images
  (``processor_inputs``); its ``input_ids`` are the expanded sequence, stored as
  ``PreparedRequest.prompt_token_ids``;
- the **vLLM side** gets ``{"prompt_token_ids": <template text tokenised, one placeholder per
  image>, "multi_modal_data": {"image": [...]}}`` (``engine_prompt``); vLLM expands each placeholder
  itself, with ``mm_processor_kwargs`` equal to the image settings the HF processor used
  (``VLSettings``). ``hf2vllm.multimodal.identity`` then proves both expansions are equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from hf2vllm.errors import ContextLengthError, InputError
from hf2vllm.multimodal.images import ImageRef, image_ref_from_part, is_image_part
from hf2vllm.multimodal.placeholders import ImageMarkers, check_no_typed_placeholders, image_markers
from hf2vllm.requests import ChatRequest, PreparedRequest

# Image-processor settings that decide the pixel grid and the placeholder count; both sides get
# exactly these values (the HF processor as call kwargs, vLLM as ``mm_processor_kwargs``).
IMAGE_SIZE_KEYS = (
    "size", "max_image_size", "do_image_splitting", "min_pixels", "max_pixels", "patch_size", "merge_size",
)


class VLSettings(BaseModel):
    """Image settings shared by both backends, resolved from the processor plus user overrides."""

    mm_processor_kwargs: dict[str, Any] = Field(default_factory=dict)
    max_images_per_prompt: int = 1

    @property
    def limit_mm_per_prompt(self) -> dict[str, int]:
        return {"image": max(self.max_images_per_prompt, 1)}

    def vllm_engine_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``vllm.LLM`` that make its processor match the HF one."""
        return {"mm_processor_kwargs": dict(self.mm_processor_kwargs), "limit_mm_per_prompt": self.limit_mm_per_prompt}


class VLInputs(BaseModel):
    """The multimodal part of a prepared request."""

    images: list[ImageRef]
    image_sizes: list[tuple[int, int]] = Field(description="(width, height) of each image as loaded.")
    engine_prompt_token_ids: list[int] = Field(
        description="Template text tokenised with one placeholder per image: what vLLM expands."
    )
    placeholder_tokens: list[int] = Field(description="Tokens each image's placeholder became (HF processor).")
    image_kwargs: dict[str, Any] = Field(description="Image settings the HF processor was called with.")


class VLPreparedRequest(PreparedRequest):
    """A prepared request of a vision-language model; ``multimodal`` is None for a text-only one."""

    multimodal: VLInputs | None = None


def is_vision_language(model_path: str | Path) -> bool:
    """True when the checkpoint's config has a vision tower (Idefics3, Qwen2-VL, LLaVA, ...)."""
    import json

    config_file = Path(model_path) / "config.json"
    if not config_file.is_file():
        return False
    config = json.loads(config_file.read_text())
    return "vision_config" in config


def load_processor(model_path: str | Path, *, trust_remote_code: bool = False) -> Any:
    """The checkpoint's processor; on a machine without video support, the same class minus video.

    Qwen2-VL-family processors carry a video processor that needs torchvision; without it (CPU here)
    ``AutoProcessor`` cannot load them at all, although images never use that part.
    """
    import json

    import transformers
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

    try:
        return AutoProcessor.from_pretrained(str(model_path), trust_remote_code=trust_remote_code)
    except (OSError, ImportError, AttributeError) as err:
        config_file = Path(model_path) / "processor_config.json"
        name = json.loads(config_file.read_text()).get("processor_class") if config_file.is_file() else None
        processor_class = getattr(transformers, name, None) if name else None
        if processor_class is None or "video_processor" not in processor_class.get_attributes():
            raise InputError(f"cannot load the processor of {model_path}: {err}") from None
    from hf2vllm.multimodal.tiny_vl import without_video_processor

    template_file = Path(model_path) / "chat_template.jinja"
    return without_video_processor(processor_class)(
        image_processor=AutoImageProcessor.from_pretrained(str(model_path)),
        tokenizer=AutoTokenizer.from_pretrained(str(model_path)),
        chat_template=template_file.read_text() if template_file.is_file() else None,
    )


def resolve_settings(processor: Any, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The image-size settings in force: the processor's own values, then ``overrides`` on top."""
    ip = processor.image_processor
    resolved: dict[str, Any] = {}
    for key in IMAGE_SIZE_KEYS:
        value = getattr(ip, key, None)
        if value is None:
            continue
        resolved[key] = _plain(value)
    # min/max_pixels duplicate size.shortest_edge/longest_edge on Qwen processors; ``size`` is the truth.
    if "size" in resolved and isinstance(resolved["size"], dict) and "shortest_edge" in resolved["size"]:
        resolved.pop("min_pixels", None)
        resolved.pop("max_pixels", None)
    resolved.update(overrides or {})
    return resolved


# hf2vllm sets these in its own processor call; a second value would be a duplicate keyword argument.
_SET_BY_HF2VLLM = {"return_tensors", "images", "text"}


def processor_kwarg_names(processor: Any) -> set[str]:
    """The image settings the installed processor accepts (its image processor's own list); empty when
    it does not publish one."""
    image_processor = getattr(processor, "image_processor", processor)
    names = getattr(image_processor, "_valid_kwargs_names", None)
    if names is None:
        names = list(getattr(getattr(image_processor, "valid_kwargs", None), "__annotations__", {}))
    return set(names) - _SET_BY_HF2VLLM


def check_processor_kwargs(processor: Any, kwargs: dict[str, Any] | None, option: str) -> None:
    """Refuse a key the processor does not take (a typo would otherwise be ignored on one side or both)."""
    if not kwargs:
        return
    from hf2vllm.checks import known_keys

    for key in kwargs:
        if key in _SET_BY_HF2VLLM:
            raise InputError(f"{option}: {key!r} is set by hf2vllm itself; leave it out")
    known = processor_kwarg_names(processor)
    if known:
        known_keys(kwargs, option, known, what="image-processor setting")


def load_image_processor(model_path: str | Path, *, trust_remote_code: bool = False) -> Any:
    """The checkpoint's image processor alone (no tokenizer): enough to check image settings."""
    from transformers import AutoImageProcessor

    try:
        return AutoImageProcessor.from_pretrained(str(model_path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError, ImportError) as err:
        raise InputError(f"cannot load the image processor of {model_path}: {str(err).splitlines()[0]}") from None


def _plain(value: Any) -> Any:
    """A processor setting as plain JSON-able data (Transformers keeps sizes in a ``SizeDict``)."""
    if hasattr(value, "__dataclass_fields__"):
        return {k: getattr(value, k) for k in value.__dataclass_fields__ if getattr(value, k) is not None}
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if v is not None}
    return value


def split_messages(
    request: ChatRequest, markers: ImageMarkers, base_dir: Path | None
) -> tuple[list[dict[str, Any]], list[ImageRef]]:
    """Messages in the processor's template format (content as typed parts) and the images in order.

    Image parts become ``{"type": "image"}`` (every VL chat template emits one placeholder for it);
    text in any part is checked for hand-typed placeholders.
    """
    assert request.messages is not None
    messages: list[dict[str, Any]] = []
    images: list[ImageRef] = []
    for i, msg in enumerate(request.messages):
        content = msg["content"]
        parts: list[dict[str, Any]] = []
        if isinstance(content, str):
            check_no_typed_placeholders(content, f"request {request.id!r} messages[{i}].content", markers)
            parts.append({"type": "text", "text": content})
        elif isinstance(content, list):
            for j, part in enumerate(content):
                where = f"request {request.id!r} messages[{i}].content[{j}]"
                if is_image_part(part):
                    images.append(image_ref_from_part(part, where, base_dir))
                    parts.append({"type": "image"})
                elif isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                    check_no_typed_placeholders(part["text"], where, markers)
                    parts.append({"type": "text", "text": part["text"]})
                else:
                    kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                    raise InputError(f"{where}: unsupported content part {kind!r} (use text, image_url or image)")
        else:
            raise InputError(f"request {request.id!r} messages[{i}].content must be a string or a list of parts")
        messages.append({"role": msg["role"], "content": parts})
    return messages, images


def processor_inputs(
    processor: Any, text: str, images: Sequence[Any], image_kwargs: dict[str, Any], *, add_special: bool = False
) -> Any:
    """The HF processor's outputs (``return_tensors="pt"``) for one prompt: the HF side's model inputs.

    ``add_special`` is False for chat-template text (the template already holds BOS).
    """
    if images:
        return processor(
            text=[text], images=[list(images)], return_tensors="pt", add_special_tokens=add_special, **image_kwargs
        )
    return processor(text=[text], return_tensors="pt", add_special_tokens=add_special)


def prepare_vl_requests(
    requests: Sequence[ChatRequest],
    processor: Any,
    *,
    image_overrides: dict[str, Any] | None = None,
    base_dir: Path | None = None,
    max_model_len: int | None = None,
    max_new_tokens: int = 0,
) -> tuple[list[VLPreparedRequest], VLSettings]:
    """Prepare every request of a VL model once; refuse one whose expanded prompt cannot fit."""
    check_processor_kwargs(processor, image_overrides, "mm_processor_kwargs")
    markers = image_markers(processor)
    image_kwargs = resolve_settings(processor, image_overrides)
    tokenizer = processor.tokenizer
    prepared: list[VLPreparedRequest] = []
    max_images = 0
    for req in requests:
        if req.messages is None:
            check_no_typed_placeholders(req.prompt or "", f"request {req.id!r} prompt", markers)
            text, refs = req.prompt or "", []
        else:
            messages, refs = split_messages(req, markers, base_dir)
            text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        loaded = [ref.load() for ref in refs]
        # A chat template adds BOS itself; a raw prompt relies on the tokenizer, as in requests.py.
        add_special = req.messages is None
        engine_ids = list(tokenizer(text, add_special_tokens=add_special)["input_ids"])
        try:
            out = processor_inputs(processor, text, loaded, image_kwargs, add_special=add_special)
        except (ValueError, TypeError) as err:
            if not image_overrides:
                raise
            raise InputError(f"mm_processor_kwargs {image_overrides}: the processor refused them for request "
                             f"{req.id!r} ({str(err).splitlines()[0] if str(err) else type(err).__name__})") from None
        expanded = [int(t) for t in out["input_ids"][0]]
        vl = None
        if refs:
            counts = _placeholder_counts(processor, loaded, image_kwargs)
            vl = VLInputs(
                images=refs,
                image_sizes=[img.size for img in loaded],
                engine_prompt_token_ids=engine_ids,
                placeholder_tokens=counts,
                image_kwargs=image_kwargs,
            )
        if max_model_len is not None and len(expanded) + max_new_tokens > max_model_len:
            image_part = f" ({sum(vl.placeholder_tokens)} of them image placeholders)" if vl else ""
            raise ContextLengthError(
                f"request {req.id!r} expands to {len(expanded)} prompt tokens{image_part}; with "
                f"max_new_tokens={max_new_tokens} it needs {len(expanded) + max_new_tokens} > max_model_len "
                f"{max_model_len}; vLLM would refuse or truncate it (see `hf2vllm budget`)"
            )
        max_images = max(max_images, len(refs))
        prepared.append(
            VLPreparedRequest(id=req.id, prompt_token_ids=expanded, prompt_text=text, source=req, multimodal=vl)
        )
    return prepared, VLSettings(mm_processor_kwargs=image_kwargs, max_images_per_prompt=max_images)


def _placeholder_counts(processor: Any, images: Sequence[Any], image_kwargs: dict[str, Any]) -> list[int]:
    """Tokens each image expands into, as the processor computes it (its own per-image accounting)."""
    sizes = [(img.size[1], img.size[0]) for img in images]
    counter = getattr(processor, "_get_num_multimodal_tokens", None)
    if counter is not None:
        data = counter(image_sizes=sizes, **image_kwargs)
        counts = getattr(data, "num_image_tokens", None)
        if counts:
            return [int(c) for c in counts]
    # Fallback: run the processor on each image alone and count the growth of the prompt.
    marker = processor.image_token
    base = len(processor.tokenizer(marker, add_special_tokens=False)["input_ids"])
    counts = []
    for img in images:
        out = processor(text=[marker], images=[[img]], add_special_tokens=False, **image_kwargs)
        counts.append(len(out["input_ids"][0]) - base + 1)
    return counts


def engine_prompt(request: PreparedRequest) -> dict[str, Any]:
    """The vLLM prompt dict for a prepared request (multimodal or not)."""
    vl = getattr(request, "multimodal", None)
    if vl is None:
        return {"prompt_token_ids": list(request.prompt_token_ids)}
    return {
        "prompt_token_ids": list(vl.engine_prompt_token_ids),
        "multi_modal_data": {"image": [ref.load() for ref in vl.images]},
    }
