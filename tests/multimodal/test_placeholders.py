"""A placeholder typed by hand into a prompt is detected before anything runs, for any VL family."""

from __future__ import annotations

import pytest

from hf2vllm.errors import InputError
from hf2vllm.multimodal.placeholders import image_markers
from hf2vllm.multimodal.prepare import prepare_vl_requests
from hf2vllm.requests import ChatRequest


def _request(text: str) -> ChatRequest:
    return ChatRequest(id="typed", messages=[{"role": "user", "content": [{"type": "text", "text": text}]}])


def test_markers_come_from_the_processors_own_attributes(vl_processor, qwen_processor):
    idefics = image_markers(vl_processor)
    assert idefics.image_token == vl_processor.image_token == "<image>"
    assert {vl_processor.fake_image_token, vl_processor.global_image_tag} <= set(idefics.markers)
    qwen = image_markers(qwen_processor)
    assert qwen.image_token == qwen_processor.image_token == "<|image_pad|>"
    assert {"<|vision_start|>", "<|vision_end|>"} <= set(qwen.markers)


def test_idefics3_image_token_typed_by_hand_is_explained(vl_processor):
    with pytest.raises(InputError) as err:
        prepare_vl_requests([_request("Look: <image> what is it?")], vl_processor)
    message = str(err.value)
    assert "request 'typed' messages[0].content[0]" in message
    assert "'<image>', Idefics3Processor's image placeholder typed by hand" in message
    assert '{"type": "image", "image": "cat.png"}' in message


def test_qwen_vision_placeholder_typed_by_hand_is_explained(qwen_processor):
    typed = "<|vision_start|><|image_pad|><|vision_end|>Describe the picture."
    with pytest.raises(InputError, match=r"contains '<\|vision_start\|>', '<\|image_pad\|>', '<\|vision_end\|>', Qwen2VLProcessor's image placeholder typed by hand"):
        prepare_vl_requests([_request(typed)], qwen_processor)


def test_raw_prompt_string_with_a_placeholder_is_detected_too(vl_processor):
    with pytest.raises(InputError, match=r"request 'raw' prompt: the text contains '<fake_token_around_image>'"):
        prepare_vl_requests([ChatRequest(id="raw", prompt="<fake_token_around_image>hi")], vl_processor)


def test_plain_text_that_merely_mentions_images_passes(vl_processor):
    prepared, _ = prepare_vl_requests([_request("An image of a cat, in an <img> tag.")], vl_processor)
    assert prepared[0].multimodal is None
