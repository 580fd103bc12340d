"""Transformers generation for vision-language models, fed by the shared prompt path.

One request at a time: image tensors of different requests have different tile/patch counts, and
batching them would pad pixels and prompts in ways vLLM never does; a single-row ``generate()`` is
the reference a migration is compared against. The processor is called through
``prepare.processor_inputs`` — the same call that produced ``prompt_token_ids`` — and its
``input_ids`` are checked against them before generating.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hf2vllm.backends.base import GenerationResult
from hf2vllm.errors import InputError
from hf2vllm.multimodal.prepare import processor_inputs
from hf2vllm.requests import PreparedRequest
from hf2vllm.spec import GenerationSpec


def load_vl_model(
    model_path: str | Path, *, dtype: Any, device: str, trust_remote_code: bool = False,
    placement: dict[str, Any] | None = None,
) -> Any:
    """The image-text-to-text model class of a VL checkpoint (e.g. ``Idefics3ForConditionalGeneration``);
    ``placement``: Accelerate's ``device_map`` keywords (backends/placement.py) instead of one ``device``."""
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(
        str(model_path), dtype=dtype, trust_remote_code=trust_remote_code, **(placement or {})
    )
    return (model if placement else model.to(device)).eval()


def generate_vl(
    model: Any,
    processor: Any,
    requests: Sequence[PreparedRequest],
    spec: GenerationSpec,
    *,
    pad_token_id: int,
    device: str = "cpu",
    finish: Callable[[PreparedRequest, list[int], Any], GenerationResult],
    progress: Callable[[int], None] | None = None,
) -> list[GenerationResult]:
    """Greedy/sampled generation per request.

    ``finish(request, new_token_ids, generate_output)`` turns one row into a result (the backend owns
    trimming, decoding and logprobs, identical to its text path).
    """
    import torch

    gen_kwargs = spec.to_hf_generate_kwargs()
    if spec.stop_strings:
        gen_kwargs["tokenizer"] = processor.tokenizer
    results = []
    for req in requests:
        vl = getattr(req, "multimodal", None)
        if vl is not None:
            images = [ref.load() for ref in vl.images]
            add_special = req.source.messages is None
            inputs = dict(processor_inputs(processor, req.prompt_text, images, vl.image_kwargs, add_special=add_special))
            ids = [int(t) for t in inputs["input_ids"][0]]
            if ids != list(req.prompt_token_ids):
                raise InputError(
                    f"request {req.id!r}: the processor's input_ids changed between preparation and generation "
                    f"({len(req.prompt_token_ids)} vs {len(ids)} tokens)"
                )
        else:
            ids_tensor = torch.tensor([list(req.prompt_token_ids)], dtype=torch.long)
            inputs = {"input_ids": ids_tensor, "attention_mask": torch.ones_like(ids_tensor)}
        inputs = {k: (v.to(device) if hasattr(v, "to") else v) for k, v in inputs.items()}
        if spec.seed is not None:
            torch.manual_seed(spec.seed)
        with torch.no_grad():
            out = model.generate(
                **inputs,
                pad_token_id=pad_token_id,
                return_dict_in_generate=True,
                output_logits=spec.logprobs is not None,
                **gen_kwargs,
            )
        width = inputs["input_ids"].shape[1]
        results.append(finish(req, out.sequences[0, width:].tolist(), out))
        if progress:
            progress(1)
    return results
