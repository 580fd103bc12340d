"""LoRA on greedy generation: the adapter changes outputs on both sides, and both sides agree with it."""

from __future__ import annotations

from pathlib import Path

from hf2vllm.pooling.lora_generation import run_lora_generation_compare


def test_adapter_changes_generations_on_both_sides_and_they_match(hf_backend, vllm_lora_generate, adapters, bundled_model: Path) -> None:  # type: ignore[no-untyped-def]
    report = run_lora_generation_compare(
        adapters.causal, limit=6, max_new_tokens=16, hf_backend=hf_backend, vllm_backend=vllm_lora_generate
    )
    lora = report.lora
    assert report.passed, report.failures
    assert {s.backend: s.applied for s in lora.sides} == {"hf": True, "vllm": True}
    assert all(s.changed_generations >= 3 for s in lora.sides)
    assert lora.adapter_generation_exact_match_rate == 1.0
    # The shared HF backend is left as it was: no adapter layers injected into its model.
    assert not any("lora" in name for name, _ in hf_backend.model.named_modules())
