"""A ~1B-parameter Llama with random weights (fixed seed) and the bundled model's tokenizer, for speed
runs only: its outputs are meaningless, but the benchmark generates a fixed number of tokens, so the
work per request is what a trained model of this shape would do. Shape: Llama-3.2-1B's layer sizes
with SmolLM2's 49,152-token vocabulary.

    python3 scripts/gpu/build_random_llama.py OUTDIR
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> None:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from hf2vllm.models import bundled_model_path

    out = Path(sys.argv[1])
    if (out / "config.json").is_file():
        print(f"{out} exists")
        return
    base = bundled_model_path()
    tokenizer = AutoTokenizer.from_pretrained(base)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
        num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192, rope_theta=500000.0,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        torch_dtype="bfloat16",
    )
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    n = sum(p.numel() for p in model.parameters())
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    gen = base / "generation_config.json"
    if gen.is_file():
        (out / "generation_config.json").write_text(gen.read_text())
    print(f"random Llama with {n / 1e9:.2f}B parameters at {out}")


if __name__ == "__main__":
    main()
