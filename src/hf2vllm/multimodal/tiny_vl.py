"""Tiny random-weight vision-language checkpoints, built locally with their REAL processor classes.

No VL model can be downloaded here, and parity of the input pipeline (chat template, image
preprocessing, placeholder expansion, vision encoder, merging image features into the text stream)
does not need trained weights: both backends run the same weights, so any difference in their
greedy tokens is a pipeline or numerics difference, never a "the model is bad" one.

Two families:

- ``idefics3`` (SmolVLM-style): runs on the CPU build of vLLM here; ``Idefics3Processor`` with a
  locally configured ``Idefics3ImageProcessor`` (the PIL backend, no torchvision) and SmolVLM's chat
  template. The text tokenizer is the bundled SmolLM2 one plus SmolVLM's added image tokens.
- ``qwen2-vl``: ``Qwen2VLProcessor`` + ``Qwen2VLImageProcessor`` and Qwen2-VL's chat template. It
  builds on CPU, but vLLM's Qwen2-VL module needs torchvision, which has no CPU build here: it runs
  on the GPU machine only.

Checkpoints are cached like the bundled model: ``<cache>/models/tiny-vl-<family>``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from hf2vllm.errors import InputError

Family = Literal["idefics3", "qwen2-vl"]
FAMILIES: tuple[Family, ...] = ("idefics3", "qwen2-vl")
SEED = 1234

# SmolVLM's chat template (HuggingFaceTB/SmolVLM-*-Instruct chat_template.json).
SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

# Qwen2-VL-Instruct's chat template (images only; videos kept for fidelity).
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class TinyVLSpec:
    """The knobs of a tiny VL checkpoint, recorded in ``hf2vllm-tiny-vl.json`` next to it."""

    family: Family
    seed: int = SEED
    text_layers: int = 2
    # vLLM's CPU attention supports head_dim >= 32 only: 128 hidden / 4 heads.
    text_hidden: int = 128
    vision_layers: int = 2
    vision_hidden: int = 32
    # Idefics3: one tile is ``tile`` px square; images are resized so the longest edge is
    # ``longest_edge`` and cut into tiles (3x3 at most here), plus one global tile.
    tile: int = 64
    patch: int = 8
    longest_edge: int = 192
    # Qwen2-VL: pixel limits of the image processor.
    min_pixels: int = 28 * 28 * 4
    max_pixels: int = 28 * 28 * 64
    max_position_embeddings: int = 4096


def tiny_vl_name(family: Family) -> str:
    return f"tiny-vl-{family}"


def tiny_vl_path(family: Family = "idefics3") -> Path:
    """Cached location of the tiny checkpoint (built or not)."""
    from hf2vllm.models import models_dir

    return models_dir() / tiny_vl_name(family)


def ensure_tiny_vl(family: Family = "idefics3") -> Path:
    """Path of the tiny checkpoint, building it on first use."""
    path = tiny_vl_path(family)
    if (path / "config.json").is_file():
        return path
    return build_tiny_vl(family)


def build_tiny_vl(family: Family = "idefics3", *, force: bool = False) -> Path:
    """Build (or rebuild with ``force``) the tiny checkpoint and return its directory.

    Written to a staging directory and renamed into place, so a crash never leaves a half model.
    """
    from hf2vllm.models import _cache_lock, bundled_model_path, staged_build

    if family not in FAMILIES:
        raise InputError(f"--family {family!r} is not supported; choose one of: {', '.join(FAMILIES)}")
    target = tiny_vl_path(family)
    # The bundled text checkpoint takes the same lock: resolve it before taking ours.
    text_source = bundled_model_path()
    with _cache_lock():
        if (target / "config.json").is_file() and not force:
            return target
        spec = TinyVLSpec(family=family)
        with staged_build(target) as staging:
            if family == "idefics3":
                _build_idefics3(spec, text_source, staging)
            else:
                _build_qwen2_vl(spec, text_source, staging)
            (staging / "hf2vllm-tiny-vl.json").write_text(
                json.dumps({**asdict(spec), "tokenizer_from": str(text_source)}, indent=2) + "\n"
            )
    return target


def _text_tokenizer(text_source: Path, extra_special: list[str]):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(text_source)
    tokenizer.add_special_tokens({"additional_special_tokens": extra_special})
    return tokenizer


def _padded_vocab(n: int, multiple: int = 64) -> int:
    return (n + multiple - 1) // multiple * multiple


def _build_idefics3(spec: TinyVLSpec, text_source: Path, out: Path) -> None:
    import torch
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
    )

    # SmolVLM's added tokens: the processor looks up <global-img> and <row_i_col_j> by name and
    # adds <fake_token_around_image>, <image>, <end_of_utterance> itself if missing.
    grid_tokens = [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    tokenizer = _text_tokenizer(
        text_source,
        ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>", *grid_tokens],
    )
    tokenizer.eos_token = "<end_of_utterance>"
    tokenizer.pad_token = "<|im_end|>"
    tokenizer.chat_template = SMOLVLM_CHAT_TEMPLATE
    image_processor = Idefics3ImageProcessor(
        size={"longest_edge": spec.longest_edge},
        max_image_size={"longest_edge": spec.tile},
        do_image_splitting=True,
    )
    scale_factor = 2
    image_seq_len = (spec.tile // spec.patch) ** 2 // scale_factor**2
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=image_seq_len,
        chat_template=SMOLVLM_CHAT_TEMPLATE,
    )
    vocab = _padded_vocab(len(tokenizer))
    config = Idefics3Config(
        vision_config={
            "hidden_size": spec.vision_hidden,
            "intermediate_size": spec.vision_hidden * 2,
            "num_hidden_layers": spec.vision_layers,
            "num_attention_heads": 2,
            "image_size": spec.tile,
            "patch_size": spec.patch,
        },
        text_config={
            "model_type": "llama",
            "vocab_size": vocab,
            "hidden_size": spec.text_hidden,
            "intermediate_size": spec.text_hidden * 2,
            "num_hidden_layers": spec.text_layers,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": spec.max_position_embeddings,
            "rms_norm_eps": 1e-5,
            "tie_word_embeddings": False,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        },
        scale_factor=scale_factor,
        image_token_id=processor.image_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    config.bos_token_id = tokenizer.bos_token_id
    config.eos_token_id = tokenizer.eos_token_id
    torch.manual_seed(spec.seed)
    model = Idefics3ForConditionalGeneration(config)
    _save(model, processor, out, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)


def _build_qwen2_vl(spec: TinyVLSpec, text_source: Path, out: Path) -> None:
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor, Qwen2VLProcessor

    tokenizer = _text_tokenizer(
        text_source, ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    )
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.chat_template = QWEN2_VL_CHAT_TEMPLATE
    image_processor = Qwen2VLImageProcessor(
        min_pixels=spec.min_pixels, max_pixels=spec.max_pixels, patch_size=14, merge_size=2, temporal_patch_size=2
    )
    video_processor = video_processor_or_none("Qwen2VLVideoProcessor")
    processor_class = Qwen2VLProcessor if video_processor is not None else without_video_processor(Qwen2VLProcessor)
    processor = processor_class(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
    )
    vocab = _padded_vocab(len(tokenizer))
    head_dim = spec.text_hidden // 4
    text_config = {
        "vocab_size": vocab,
        "hidden_size": spec.text_hidden,
        "intermediate_size": spec.text_hidden * 2,
        "num_hidden_layers": spec.text_layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": spec.max_position_embeddings,
        # M-RoPE sections (temporal, height, width) must add up to head_dim / 2.
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0,
                            "mrope_section": [head_dim // 4, head_dim // 8, head_dim // 8]},
        "tie_word_embeddings": False,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    config = Qwen2VLConfig(
        text_config=text_config,
        vision_config={
            "depth": spec.vision_layers,
            "embed_dim": spec.vision_hidden,
            "hidden_size": spec.text_hidden,
            "num_heads": 2,
            "mlp_ratio": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        image_token_id=processor.image_token_id,
        video_token_id=processor.video_token_id,
        vision_start_token_id=tokenizer.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tokenizer.convert_tokens_to_ids("<|vision_end|>"),
        tie_word_embeddings=False,
    )
    torch.manual_seed(spec.seed)
    model = Qwen2VLForConditionalGeneration(config)
    _save(model, processor, out, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)


def without_video_processor(processor_class: type) -> type:
    """``processor_class`` without its video sub-processor, for machines where Transformers has none.

    Without torchvision (CPU here) Transformers' video-processor registry is a dummy and a
    ``Qwen2VLProcessor`` cannot even be constructed or loaded. Images never touch the video processor,
    so this subclass drops that one attribute. It keeps the original class name, so the saved
    ``processor_config.json`` names the real class and loads normally where torchvision exists.
    """

    @classmethod  # type: ignore[misc]
    def get_attributes(cls: type) -> list[str]:
        return [a for a in processor_class.get_attributes() if a != "video_processor"]

    return type(
        processor_class.__name__,
        (processor_class,),
        {"get_attributes": get_attributes, "__module__": processor_class.__module__},
    )


def video_processor_or_none(class_name: str) -> Any:
    """An instance of Transformers' video processor ``class_name``, or None where it needs torchvision."""
    import transformers

    try:
        return getattr(transformers, class_name)()
    except (ImportError, AttributeError):
        return None


def _save(model, processor, out: Path, *, eos_token_id: int, pad_token_id: int | None) -> None:
    import torch
    from transformers import GenerationConfig

    model.to(torch.float32).eval()
    model.generation_config = GenerationConfig(
        eos_token_id=eos_token_id, pad_token_id=pad_token_id, do_sample=False
    )
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
