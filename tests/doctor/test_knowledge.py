"""The doctor's parameter tables agree with the installed vLLM and Transformers (read from their source)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hf2vllm.doctor.knowledge import (
    HF_ONLY_SAMPLING_KWARGS,
    VLLM_SAMPLING_FIELDS_FALLBACK,
    installed_sampling_params_source,
    vllm_sampling_fields,
)

# generate() arguments that are not GenerationConfig fields (they configure the call, not decoding).
GENERATE_CALL_ARGUMENTS = {"streamer", "generation_config", "stopping_criteria", "logits_processor"}


def test_sampling_fields_are_read_from_the_installed_vllm() -> None:
    source = installed_sampling_params_source()
    assert source is not None and source.name == "sampling_params.py"
    fields = vllm_sampling_fields()
    assert {"max_tokens", "min_tokens", "n", "temperature", "top_k", "stop_token_ids", "logprobs"} <= fields


def test_fallback_table_matches_the_pinned_vllm() -> None:
    assert vllm_sampling_fields() <= VLLM_SAMPLING_FIELDS_FALLBACK


def test_hf_only_kwargs_are_not_sampling_params_fields() -> None:
    assert not set(HF_ONLY_SAMPLING_KWARGS) & vllm_sampling_fields()


def test_hf_only_kwargs_are_real_transformers_generation_parameters() -> None:
    spec = importlib.util.find_spec("transformers")
    assert spec is not None and spec.origin is not None
    config_source = (Path(spec.origin).parent / "generation" / "configuration_utils.py").read_text(encoding="utf-8")
    for name in set(HF_ONLY_SAMPLING_KWARGS) - GENERATE_CALL_ARGUMENTS:
        assert f'"{name}"' in config_source, f"{name} is not a GenerationConfig field in the installed transformers"


def test_renames_offered_by_fix_exist_in_vllm() -> None:
    for name, entry in HF_ONLY_SAMPLING_KWARGS.items():
        if entry.rename_to is not None:
            assert entry.rename_to in vllm_sampling_fields(), name
