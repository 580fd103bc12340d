"""The doctor's parameter tables agree with the installed vLLM and Transformers (read from their source)."""

from __future__ import annotations

from hf2vllm.doctor.knowledge import (
    FIX_ADVICE,
    HF_ONLY_SAMPLING_KWARGS,
    VLLM_SAMPLING_FIELDS_FALLBACK,
    installed_sampling_params_source,
    vllm_sampling_fields,
)
from hf2vllm.generation_params import HF_RULES


def test_sampling_fields_are_read_from_the_installed_vllm() -> None:
    source = installed_sampling_params_source()
    assert source is not None and source.name == "sampling_params.py"
    fields = vllm_sampling_fields()
    assert {"max_tokens", "min_tokens", "n", "temperature", "top_k", "stop_token_ids", "logprobs"} <= fields


def test_fallback_table_matches_the_pinned_vllm() -> None:
    assert vllm_sampling_fields() <= VLLM_SAMPLING_FIELDS_FALLBACK


def test_hf_only_kwargs_are_not_sampling_params_fields() -> None:
    assert not set(HF_ONLY_SAMPLING_KWARGS) & vllm_sampling_fields()


def test_hf_only_kwargs_are_every_translator_parameter_that_sampling_params_lacks() -> None:
    """The translator's table is checked against the installed Transformers (tests/translation); the
    doctor knows exactly its parameters, so a new HF parameter reaches both or neither."""
    assert set(HF_ONLY_SAMPLING_KWARGS) == set(HF_RULES) - vllm_sampling_fields()
    assert {"max_time", "force_words_ids", "assistant_model", "dola_layers"} <= set(HF_ONLY_SAMPLING_KWARGS)
    assert set(FIX_ADVICE) <= set(HF_ONLY_SAMPLING_KWARGS), "fix advice for a parameter the translator does not know"


def test_renames_agree_with_the_translation_table() -> None:
    for name, entry in HF_ONLY_SAMPLING_KWARGS.items():
        if entry.rename_to is not None:
            assert HF_RULES[name].target == entry.rename_to, name


def test_renames_offered_by_fix_exist_in_vllm() -> None:
    for name, entry in HF_ONLY_SAMPLING_KWARGS.items():
        if entry.rename_to is not None:
            assert entry.rename_to in vllm_sampling_fields(), name
