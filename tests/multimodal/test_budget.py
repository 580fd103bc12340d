"""Image-token budget: the hand-written formulas equal what the processors really produce."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from hf2vllm.errors import ContextLengthError
from hf2vllm.multimodal.budget import image_cost, request_budgets
from hf2vllm.multimodal.prepare import prepare_vl_requests, resolve_settings
from hf2vllm.multimodal.sample_set import IMAGES, bundled_vl_dir


def _bundled_images():
    return [Image.open(bundled_vl_dir() / "images" / name).convert("RGB") for name in IMAGES]


def _processor_placeholder_tokens(processor, image, settings) -> int:
    """How many tokens the processor really turns one image's placeholder into (prompt growth)."""
    marker = processor.image_token
    alone = len(processor.tokenizer(marker, add_special_tokens=False)["input_ids"])
    out = processor(text=[marker], images=[[image]], add_special_tokens=False, **settings)
    return len(out["input_ids"][0]) - alone + 1


@pytest.mark.parametrize("family", ["idefics3", "qwen2-vl"])
def test_budget_equals_processor_placeholder_count_on_every_test_image(family, vl_processor, qwen_processor):
    processor = vl_processor if family == "idefics3" else qwen_processor
    settings = resolve_settings(processor)
    seen = set()
    for image in _bundled_images():
        cost = image_cost(processor, *image.size, settings)
        assert cost.family == family
        assert cost.placeholder_tokens == _processor_placeholder_tokens(processor, image, settings), image.size
        ids = processor(text=[processor.image_token], images=[[image]], add_special_tokens=False, **settings)["input_ids"][0]
        image_token_id = processor.tokenizer.convert_tokens_to_ids(processor.image_token)
        assert cost.image_tokens == sum(1 for t in ids if t == image_token_id)
        seen.add(cost.placeholder_tokens)
    assert len(seen) >= 3, "the test images must exercise several grid sizes"


def test_qwen_budget_follows_min_and_max_pixels(qwen_processor):
    settings = resolve_settings(qwen_processor)
    tiny = image_cost(qwen_processor, 56, 56, settings)
    huge = image_cost(qwen_processor, 448, 448, settings)
    limit = image_cost(qwen_processor, 224, 224, settings)
    assert tiny.placeholder_tokens == settings["size"]["shortest_edge"] // (28 * 28)
    assert huge.placeholder_tokens == limit.placeholder_tokens == settings["size"]["longest_edge"] // (28 * 28)
    smaller = image_cost(qwen_processor, 448, 448, {**settings, "size": {"shortest_edge": 3136, "longest_edge": 28 * 28 * 16}})
    assert smaller.placeholder_tokens == 16


def test_request_budget_equals_the_expanded_prompt_length(vl_requests, vl_processor, vl_prompts_path, vl_prepared):
    prepared, _ = vl_prepared
    budgets = request_budgets(vl_requests, vl_processor, base_dir=vl_prompts_path.parent, max_new_tokens=24)
    for budget, req in zip(budgets, prepared, strict=True):
        assert budget.prompt_tokens == len(req.prompt_token_ids), req.id
        if req.multimodal:
            assert [c.placeholder_tokens for c in budget.images] == req.multimodal.placeholder_tokens


def test_compare_path_refuses_a_request_that_cannot_fit(vl_requests, vl_processor, vl_prompts_path):
    multi = [r for r in vl_requests if r.id == "multi-image"]
    expanded = prepare_vl_requests(multi, vl_processor, base_dir=vl_prompts_path.parent)[0][0]
    limit = len(expanded.prompt_token_ids) + 10
    with pytest.raises(ContextLengthError) as err:
        prepare_vl_requests(multi, vl_processor, base_dir=vl_prompts_path.parent, max_model_len=limit, max_new_tokens=11)
    assert f"request 'multi-image' expands to {len(expanded.prompt_token_ids)} prompt tokens" in str(err.value)
    assert f"({sum(expanded.multimodal.placeholder_tokens)} of them image placeholders)" in str(err.value)
    assert f"> max_model_len {limit}" in str(err.value)


def test_budget_command_warns_when_images_overflow_the_context(tiny_vl_path, vl_prompts_path):
    from typer.testing import CliRunner

    from hf2vllm.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["budget", "--model", str(tiny_vl_path), "--prompts", str(vl_prompts_path),
                                 "--max-new-tokens", "16", "--max-model-len", "300", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    over = {r["request_id"] for r in rows if not r["fits"]}
    assert over == {r["request_id"] for r in rows if r["total_tokens"] > 300} and "multi-image" in over
    assert "warning: request 'multi-image' needs" in result.stderr
    assert "> max_model_len 300; `hf2vllm compare` refuses it" in result.stderr
