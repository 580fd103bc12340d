"""Weight counts from config.json within 2% of the published parameter counts, and exact bytes
from safetensors headers on the bundled checkpoint."""

from __future__ import annotations

import pytest
from safetensors import safe_open

from hf2vllm.deploy.architecture import load_architecture
from hf2vllm.deploy.weights import count_parameters, estimate_weights, weights_from_safetensors

# name -> (published total parameters, where it is published)
PUBLISHED = {
    "llama-3-8b": (8.03e9, "Hugging Face model page meta-llama/Meta-Llama-3-8B: 8.03B params"),
    "llama-2-7b-chat": (6.74e9, "Hugging Face model page meta-llama/Llama-2-7b-chat-hf: 6.74B params"),
    "mistral-7b-v0.1": (7.24e9, "Hugging Face model page mistralai/Mistral-7B-v0.1: 7.24B params"),
    "qwen2.5-0.5b": (0.49e9, "Qwen2.5-0.5B model card: 'Number of Parameters: 0.49B'"),
    "qwen2-7b-instruct": (7.62e9, "Hugging Face model page Qwen/Qwen2-7B-Instruct: 7.62B params"),
    "qwen3-8b-base": (8.2e9, "Qwen3-8B-Base model card: 'Number of Parameters: 8.2B'"),
    "gemma-2-2b-it": (590_118_912 + 2_024_517_888, "Gemma 2 report, Table 1: 2B embedding + non-embedding parameters"),
    "gemma-3-12b": (417e6 + 1_012e6 + 10_759e6, "Gemma 3 report, Table 1: 12B vision encoder + embedding + non-embedding"),
    "mixtral-8x7b-v0.1": (46.7e9, "Mixtral of Experts announcement / model card: 46.7B total parameters"),
    "deepseek-r1": (671e9, "DeepSeek-V3 technical report: 671B total parameters (MTP module excluded)"),
    "deepseek-v2.5": (236e9, "DeepSeek-V2 paper / V2.5 model card: 236B total parameters"),
    "jamba-1.5-mini": (52e9, "Jamba-1.5 paper: Jamba-1.5-Mini, 12B active / 52B total parameters"),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_count_within_two_percent_of_published(name, configs_dir):
    published, source = PUBLISHED[name]
    counted = count_parameters(load_architecture(configs_dir / f"{name}.json"))
    assert abs(counted - published) / published < 0.02, f"{counted:,} vs {published:,.0f} ({source})"


def test_bf16_weights_are_two_bytes_per_parameter_and_fp8_checkpoint_one(configs_dir):
    llama = load_architecture(configs_dir / "llama-3-8b.json")
    assert estimate_weights(llama, None).weights_bytes == 2 * count_parameters(llama)
    r1 = load_architecture(configs_dir / "deepseek-r1.json")  # quantization_config: fp8
    assert estimate_weights(r1, None).weights_bytes == count_parameters(r1)


def test_safetensors_headers_give_exact_bytes_without_loading(bundled_model_path):
    found = weights_from_safetensors(bundled_model_path)
    assert found is not None and found.exact
    params = 0
    size = 0
    with safe_open(str(bundled_model_path / "model.safetensors"), framework="pt") as handle:
        for key in handle.keys():
            tensor = handle.get_tensor(key)
            params += tensor.numel()
            size += tensor.numel() * tensor.element_size()
    assert (found.parameters, found.weights_bytes) == (params, size)
    # The architecture count agrees with the real tensors for this tied Llama.
    assert count_parameters(load_architecture(bundled_model_path)) == params
