"""LoRA adapters built here with PEFT (random non-zero B): applied on both sides, matching outputs."""

from __future__ import annotations

import pytest

from hf2vllm.pooling.run import LoadedSides, PoolingOptions, run_pooling_compare


@pytest.fixture(scope="session")
def sides(hf_model, tokenizer, vllm_pooler) -> LoadedSides:  # type: ignore[no-untyped-def]
    return LoadedSides(hf_model=hf_model, tokenizer=tokenizer, vllm_pooler=vllm_pooler)


def test_adapter_is_applied_on_both_sides_and_hidden_states_match(sides, adapters) -> None:  # type: ignore[no-untyped-def]
    report = run_pooling_compare(PoolingOptions(task="hidden-states", lora=adapters.causal, limit=8), sides=sides)
    lora = report.lora
    assert report.passed, report.failures
    assert lora.inspection.layout == "causal-lm"
    for side in lora.sides:
        assert side.applied
        assert side.base_vs_adapter.relative_l2_error > 10 * lora.min_effect  # far from the threshold
    assert lora.adapter_parity.cosine_min >= 0.999
    # Base parity still holds on the same engine: the adapter is per request.
    assert report.overall.cosine_min >= 0.999


def test_inner_model_prefix_adapter_is_applied_by_this_vllm_pooling_runner(sides, adapters) -> None:  # type: ignore[no-untyped-def]
    """The layout of vLLM issue #12808: keys 'base_model.model.layers.N'. The HF side attaches it to
    the inner model it was trained on; vLLM 0.32's pooling runner retries without 'model.'. The
    report still warns (the generate runner would skip it)."""
    report = run_pooling_compare(PoolingOptions(task="hidden-states", lora=adapters.inner, limit=4), sides=sides)
    lora = report.lora
    assert lora.inspection.layout == "inner-model"
    assert [f.severity for f in lora.inspection.findings] == ["warning"]
    assert all(side.applied for side in lora.sides)
    assert lora.adapter_parity.cosine_min >= 0.999 and report.passed
