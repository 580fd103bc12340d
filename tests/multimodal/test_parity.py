"""HF Transformers vs vLLM on the tiny VL model: same expanded inputs, same greedy tokens, every case.

Random weights (fixed seed) are enough: the pipeline under test is template -> processor ->
placeholder expansion -> vision tower -> feature merge -> decoder, and both sides run the same
weights. float32 on CPU.
"""

from __future__ import annotations

import json

import pytest

from hf2vllm.errors import ContextLengthError, InputError
from hf2vllm.multimodal.identity import InputMismatchError, check_input_identity
from hf2vllm.multimodal.prepare import engine_prompt
from hf2vllm.parity.run import BackendChoice, CompareOptions, run_compare
from hf2vllm.spec import GenerationSpec

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def greedy(vl_processor, vl_limits) -> GenerationSpec:
    return GenerationSpec.greedy(vl_limits["max_new_tokens"], stop_token_ids=[vl_processor.tokenizer.eos_token_id])


@pytest.fixture(scope="module")
def compare_report(tiny_vl_path, vl_prompts_path, tiny_vl_hf, tiny_vl_vllm, vl_limits):
    options = CompareOptions(
        model=str(tiny_vl_path), prompts=vl_prompts_path, **vl_limits,
        reference=BackendChoice(kind="hf"), candidate=BackendChoice(kind="vllm"),
    )
    return run_compare(options, backends={"reference": tiny_vl_hf, "candidate": tiny_vl_vllm})


def test_compare_gives_exact_greedy_matches_on_every_vl_case(compare_report, vl_requests):
    rows = {r.id: r for r in compare_report.requests}
    assert set(rows) == {r.id for r in vl_requests}
    for request in vl_requests:
        row = rows[request.id]
        assert row.exact_match, f"{request.metadata['case']} {request.id}: diverged at {row.first_divergence}"
        assert len(row.reference_token_ids) > 0
    assert compare_report.summary.exact_match_rate == 1.0


def test_both_sides_see_identical_expanded_tokens_placeholders_and_pixel_grids(tiny_vl_vllm, vl_processor, vl_prepared):
    prepared, _ = vl_prepared
    report = check_input_identity(tiny_vl_vllm.llm, vl_processor, prepared)
    assert report.identical
    for req, entry in zip(prepared, report.requests, strict=True):
        assert entry.hf_prompt_tokens == entry.vllm_prompt_tokens == len(req.prompt_token_ids)
        if req.multimodal:
            assert [img.vllm.placeholder_tokens for img in entry.images] == req.multimodal.placeholder_tokens
            assert all(img.pixel_max_abs_diff == 0.0 and img.hf.grid["pixel_values"] for img in entry.images)
    assert report.hf_image_settings == report.vllm_image_settings


def test_mixed_batch_equals_the_same_requests_run_separately(tiny_vl_vllm, vl_prepared, greedy):
    prepared, _ = vl_prepared
    assert {r.multimodal is None for r in prepared} == {True, False}, "the set mixes image and text-only requests"
    together = tiny_vl_vllm.generate(prepared, greedy)
    alone = [tiny_vl_vllm.generate([req], greedy)[0] for req in prepared]
    for req, a, b in zip(prepared, together, alone, strict=True):
        assert a.output_token_ids == b.output_token_ids, req.id
    # vLLM reports the prompt it really ran: the HF processor's expanded ids, token for token.
    from vllm import SamplingParams

    outputs = tiny_vl_vllm.llm.generate([engine_prompt(r) for r in prepared], SamplingParams(max_tokens=1), use_tqdm=False)
    for req, out in zip(prepared, outputs, strict=True):
        assert list(out.prompt_token_ids) == req.prompt_token_ids, req.id


def test_different_image_size_limits_on_the_two_sides_are_detected_with_the_cause(tiny_vl_vllm, vl_processor, vl_prepared):
    prepared, _ = vl_prepared
    # The vLLM side of a migrated script passing its own (smaller) limit, on the real engine.
    report = check_input_identity(tiny_vl_vllm.llm, vl_processor, prepared,
                                  vllm_prompt_overrides={"size": {"longest_edge": 128}})
    assert not report.identical
    text_only = [e for e, r in zip(report.requests, prepared, strict=True) if r.multimodal is None]
    assert all(e.same for e in text_only), "text-only requests are unaffected"
    with pytest.raises(InputMismatchError) as err:
        report.raise_on_mismatch()
    message = str(err.value)
    assert message.startswith("request 'single-image' image 0 (")
    assert "HF processor expanded it to 129 tokens, pixel grid 7x3x64x64; vLLM to 93 tokens, pixel grid 5x3x64x64" in message
    assert "different size limits (HF: {'size': {'longest_edge': 192}" in message
    assert "vLLM mm_processor_kwargs: {'size': {'longest_edge': 128}" in message


def test_backend_refuses_to_generate_when_vllm_would_see_other_inputs(tiny_vl_vllm, vl_processor, vl_prompts_path, vl_requests, greedy):
    from hf2vllm.multimodal.prepare import prepare_vl_requests

    single = [r for r in vl_requests if r.id == "single-image"]
    # HF side prepared with a different tile size than the engine was started with.
    other, _ = prepare_vl_requests(single, vl_processor, base_dir=vl_prompts_path.parent,
                                   image_overrides={"size": {"longest_edge": 128}})
    with pytest.raises(InputMismatchError, match=r"HF processor expanded it to 93 tokens.*vLLM to 129 tokens"):
        tiny_vl_vllm.generate(other, greedy)


def test_compare_refuses_a_hand_typed_placeholder_before_running(tmp_path, tiny_vl_path, tiny_vl_hf, tiny_vl_vllm):
    prompts = tmp_path / "typed.jsonl"
    prompts.write_text(json.dumps({"id": "typed", "messages": [
        {"role": "user", "content": "<fake_token_around_image><image><fake_token_around_image>What is this?"}]}) + "\n")
    options = CompareOptions(model=str(tiny_vl_path), prompts=prompts, max_new_tokens=4)
    with pytest.raises(InputError, match=r"request 'typed' messages\[0\]\.content: the text contains '<fake_token_around_image>', '<image>'"):
        run_compare(options, backends={"reference": tiny_vl_hf, "candidate": tiny_vl_vllm})


def test_compare_refuses_a_request_whose_images_overflow_the_context(vl_prompts_path, tiny_vl_path, tiny_vl_hf, tiny_vl_vllm):
    options = CompareOptions(model=str(tiny_vl_path), prompts=vl_prompts_path, max_new_tokens=16, max_model_len=400)
    with pytest.raises(ContextLengthError, match=r"request 'multi-image' expands to \d+ prompt tokens \(498 of them image placeholders\)"):
        run_compare(options, backends={"reference": tiny_vl_hf, "candidate": tiny_vl_vllm})
