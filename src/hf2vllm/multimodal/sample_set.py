"""The bundled VL prompt set: images drawn with Pillow (deterministic) and chat requests using them.

``write_vl_prompt_set(dir)`` regenerates ``src/hf2vllm/data/vl/`` byte for byte; a test checks that
the shipped files are exactly what this code writes. Cases (``case`` metadata key):

- ``single-image``: one image + text (Qwen-style path part);
- ``multi-image``: three images in one request (OpenAI-style part with an inline data: URL too);
- ``multi-turn``: a long history with images in earlier turns only;
- ``text-only``: requests without images, so the set is a mixed batch;
- ``min-pixels`` / ``max-pixels``: images at the tiny Qwen2-VL builder's ``min_pixels`` (56x56) and
  ``max_pixels`` (224x224), and one whose longest edge equals tiny Idefics3's ``size.longest_edge``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

VL_DIR = "vl"
PROMPTS_FILE = "prompts.jsonl"

# name -> (width, height, drawing seed)
IMAGES: dict[str, tuple[int, int, int]] = {
    "shapes-160x96.png": (160, 96, 1),
    "tall-72x128.png": (72, 128, 2),
    "square-128.png": (128, 128, 3),
    "strip-192x40.png": (192, 40, 4),
    "min-pixels-56.png": (56, 56, 5),
    "max-pixels-224.png": (224, 224, 6),
    "longest-edge-192.png": (192, 192, 7),
}
INLINE_IMAGE = (64, 48, 8)


def bundled_vl_dir() -> Path:
    return Path(str(resources.files("hf2vllm.data").joinpath(VL_DIR)))


def bundled_vl_prompts_path() -> Path:
    """The bundled VL prompt set (``hf2vllm compare --prompts`` takes this path)."""
    return bundled_vl_dir() / PROMPTS_FILE


def draw_image(width: int, height: int, seed: int) -> Any:
    """A deterministic picture: a gradient background with a few coloured shapes."""
    import random

    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    img = Image.new("RGB", (width, height))
    pixels = img.load()
    base = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
    for y in range(height):
        for x in range(width):
            pixels[x, y] = ((base[0] + 2 * x) % 256, (base[1] + 3 * y) % 256, (base[2] + x + y) % 256)
    draw = ImageDraw.Draw(img)
    for _ in range(4):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1, y1 = min(width, x0 + rng.randrange(4, max(5, width // 2))), min(height, y0 + rng.randrange(4, max(5, height // 2)))
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        if rng.random() < 0.5:
            draw.rectangle([x0, y0, x1, y1], fill=colour)
        else:
            draw.ellipse([x0, y0, x1, y1], fill=colour)
    return img


def _image(name: str) -> dict[str, Any]:
    return {"type": "image", "image": f"images/{name}"}


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def vl_requests(inline_data_url: str) -> list[dict[str, Any]]:
    user, assistant = "user", "assistant"
    return [
        {"id": "single-image", "case": "single-image",
         "messages": [{"role": user, "content": [_image("shapes-160x96.png"), _text("What shapes do you see?")]}]},
        {"id": "text-only-capital", "case": "text-only",
         "messages": [{"role": user, "content": "What is the capital of France?"}]},
        {"id": "multi-image", "case": "multi-image",
         "messages": [{"role": user, "content": [
             _text("Compare these pictures."), _image("tall-72x128.png"), _image("square-128.png"),
             {"type": "image_url", "image_url": {"url": inline_data_url}},
             _text("Which one is the brightest?")]}]},
        {"id": "multi-turn-history", "case": "multi-turn",
         "messages": [
             {"role": user, "content": [_image("strip-192x40.png"), _text("Describe this strip.")]},
             {"role": assistant, "content": "It is a long coloured strip with a few blobs."},
             {"role": user, "content": [_text("And this one?"), _image("square-128.png")]},
             {"role": assistant, "content": "A square picture with shapes on a gradient."},
             {"role": user, "content": "Which of the two had more colours?"},
             {"role": assistant, "content": "The square one."},
             {"role": user, "content": "Summarise our conversation in one sentence."}]},
        {"id": "text-only-story", "case": "text-only",
         "messages": [{"role": user, "content": "Write one sentence about a red kite."}]},
        {"id": "min-pixels", "case": "min-pixels",
         "messages": [{"role": user, "content": [_image("min-pixels-56.png"), _text("Tiny picture: what is in it?")]}]},
        {"id": "max-pixels", "case": "max-pixels",
         "messages": [{"role": user, "content": [_image("max-pixels-224.png"), _text("Large picture: describe it.")]}]},
        {"id": "longest-edge", "case": "max-pixels",
         "messages": [{"role": user, "content": [_image("longest-edge-192.png"), _text("Describe the colours.")]}]},
    ]


def write_vl_prompt_set(out_dir: Path) -> Path:
    """Write images and ``prompts.jsonl`` into ``out_dir``; return the prompts file path."""
    from hf2vllm.multimodal.images import png_data_url

    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    for name, (w, h, seed) in IMAGES.items():
        draw_image(w, h, seed).save(images_dir / name, format="PNG", optimize=False)
    inline = png_data_url(draw_image(*INLINE_IMAGE))
    prompts = out_dir / PROMPTS_FILE
    with prompts.open("w", encoding="utf-8") as fh:
        for request in vl_requests(inline):
            fh.write(json.dumps(request) + "\n")
    return prompts


if __name__ == "__main__":
    print(write_vl_prompt_set(Path(__file__).resolve().parents[1] / "data" / VL_DIR))
