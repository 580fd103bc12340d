"""The processor's own image tokens, and the hand-typed placeholder check.

Family-agnostic: the markers come from the processor's and tokenizer's attributes (Idefics3's
``image_token``/``fake_image_token``/``global_image_tag``, Qwen2-VL's ``image_token``) plus every
added special token of the tokenizer whose name mentions image/vision/img (Qwen's
``<|vision_start|>``). A user prompt that contains one of them was built by hand: the processor
would either refuse it or expand it without pixels, and the model answers wrongly either way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hf2vllm.errors import InputError

_NAME_HINT = re.compile(r"image|vision|img|video", re.IGNORECASE)


@dataclass(frozen=True)
class ImageMarkers:
    """Strings that only a processor may put into a prompt, and the one that stands for an image."""

    image_token: str
    markers: tuple[str, ...]
    processor_class: str


def image_markers(processor: Any) -> ImageMarkers:
    """Collect the processor's image placeholder strings (longest first, so matches are specific)."""
    tokenizer = getattr(processor, "tokenizer", processor)
    found: set[str] = set()
    for owner in (processor, tokenizer):
        for name in dir(owner):
            if name.startswith("_") or not _NAME_HINT.search(name) or not name.endswith(("_token", "_tag")):
                continue
            try:
                value = getattr(owner, name)
            except Exception:  # noqa: BLE001 - some tokenizer properties raise when unset
                continue
            if isinstance(value, str) and value.strip():
                found.add(value)
    for token in _added_special_tokens(tokenizer):
        if _NAME_HINT.search(token):
            found.add(token)
    image_token = getattr(processor, "image_token", None)
    if not isinstance(image_token, str) or not image_token:
        raise InputError(
            f"{type(processor).__name__} has no image_token attribute: not a vision-language processor"
        )
    found.add(image_token)
    return ImageMarkers(
        image_token=image_token,
        markers=tuple(sorted(found, key=lambda s: (-len(s), s))),
        processor_class=type(processor).__name__,
    )


def _added_special_tokens(tokenizer: Any) -> Iterable[str]:
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    for added in decoder.values():
        content = getattr(added, "content", None)
        if isinstance(content, str) and getattr(added, "special", True):
            yield content


def typed_markers(text: str, markers: ImageMarkers) -> list[str]:
    """Markers that occur in ``text``, in order of appearance; a marker inside a longer one is not counted."""
    hits: dict[str, int] = {}
    remaining = text
    for marker in markers.markers:  # longest first
        pos = remaining.find(marker)
        if pos >= 0:
            hits[marker] = pos
            remaining = remaining.replace(marker, "\0" * len(marker))
    return sorted(hits, key=hits.__getitem__)


def check_no_typed_placeholders(text: str, where: str, markers: ImageMarkers) -> None:
    """Raise ``InputError`` when user text contains an image placeholder typed by hand."""
    hits = typed_markers(text, markers)
    if hits:
        shown = ", ".join(repr(h) for h in hits)
        raise InputError(
            f"{where}: the text contains {shown}, {markers.processor_class}'s image placeholder typed by hand; "
            f"only the processor may write it (it expands each image into the right number of tokens and "
            f"pairs them with pixels). Give the image as an image part instead, e.g. "
            f'{{"type": "image", "image": "cat.png"}}, and remove the placeholder from the text'
        )
