"""GPU: print the input identity check of a tiny VL model (what ``compare`` checks silently before vLLM
generates): per request the expanded prompt length on each side and the first differing position, per
image the placeholder tokens, pixel grids and the largest absolute pixel difference.

    python3 scripts/gpu/gpu_vl_identity.py --model tiny-vl-qwen2-vl [--out FILE.json]

One vLLM engine, float32, enforce_eager, started with the engine options ``compare`` gives it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--kv-cache-gib", type=float, default=0.25)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from hf2vllm.backends.base import create_backend
    from hf2vllm.commands.quiet import quiet_model_libraries

    quiet_model_libraries()
    from hf2vllm.models import resolve_model
    from hf2vllm.multimodal.identity import check_input_identity
    from hf2vllm.multimodal.integration import vllm_engine_options
    from hf2vllm.multimodal.prepare import load_processor, prepare_vl_requests
    from hf2vllm.multimodal.sample_set import bundled_vl_prompts_path
    from hf2vllm.requests import load_requests

    model_path = resolve_model(args.model)
    prompts = bundled_vl_prompts_path()
    processor = load_processor(model_path)
    prepared, _ = prepare_vl_requests(load_requests(prompts), processor, base_dir=prompts.parent)
    backend = create_backend(
        "vllm", model=model_path, dtype="float32", kv_cache_gib=args.kv_cache_gib,
        **vllm_engine_options("vllm", prepared),
    )
    try:
        report = check_input_identity(backend.llm, processor, prepared)
    finally:
        backend.close()
    print(f"processor: {type(processor).__name__} / {type(processor.image_processor).__name__}")
    print(f"HF image settings: {report.hf_image_settings}")
    print(f"vLLM mm_processor_kwargs: {report.vllm_image_settings}")
    for req in report.requests:
        verdict = "same" if req.same else "DIFFERENT"
        print(f"{req.request_id:<20} prompt tokens HF {req.hf_prompt_tokens:>4} vLLM {req.vllm_prompt_tokens:>4}  "
              f"first diff {req.first_divergence if req.first_divergence is not None else '-':>4}  {verdict}")
        for img in req.images:
            grids = "; ".join(f"{k} {v}" for k, v in img.hf.grid.items())
            print(f"    image {img.index}: placeholders HF {img.hf.placeholder_tokens} vLLM {img.vllm.placeholder_tokens}"
                  f"  grid HF [{grids}] vLLM same={img.hf.grid == img.vllm.grid}  max|dpixel| {img.pixel_max_abs_diff}")
    print(f"identical: {report.identical}")
    if args.out:
        args.out.write_text(json.dumps({**report.model_dump(), "identical": report.identical}, indent=2) + "\n")


if __name__ == "__main__":
    main()
