"""Prompt files and the one tokenisation path (real bundled tokenizer, no engine needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hf2vllm.errors import ContextLengthError, InputError
from hf2vllm.requests import ChatRequest, bundled_prompts_path, load_requests, prepare_requests


def write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('{"messages": [', "not valid JSON"),
        ('["a list"]', "expected a JSON object, got list"),
        ('{"id": "x"}', 'give exactly one of "messages" or "prompt"'),
        ('{"prompt": "a", "messages": [{"role": "user", "content": "b"}]}', 'give exactly one of "messages" or "prompt"'),
        ('{"messages": [{"content": "no role"}]}', 'messages[0] needs "role" and "content"'),
        ('{"messages": []}', '"messages" is empty'),
    ],
)
def test_malformed_prompt_line_is_named_by_file_and_line(tmp_path: Path, bad_line: str, message: str) -> None:
    path = write(tmp_path, ['{"prompt": "fine"}', "", bad_line])
    with pytest.raises(InputError) as err:
        load_requests(path)
    assert str(err.value).startswith(f"{path}:3: ")
    assert message in str(err.value)


def test_duplicate_ids_are_refused_with_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, ['{"id": "a", "prompt": "x"}', '{"id": "a", "prompt": "y"}'])
    with pytest.raises(InputError, match=r":2: duplicate id 'a' \(first on line 1\)"):
        load_requests(path)


def test_missing_and_empty_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="prompts file not found"):
        load_requests(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="no requests in file"):
        load_requests(write(tmp_path, [""]))


def test_ids_default_to_line_numbers_and_extra_keys_are_kept(tmp_path: Path) -> None:
    path = write(tmp_path, ['{"prompt": "x", "label": 3}'])
    (req,) = load_requests(path)
    assert req.id == "line-1"
    assert req.metadata == {"label": 3}


def test_bundled_prompt_set_has_the_promised_variety(tokenizer) -> None:  # type: ignore[no-untyped-def]
    requests = load_requests(bundled_prompts_path())
    assert len(requests) >= 48
    prepared = prepare_requests(requests, tokenizer)
    lengths = {p.id: len(p.prompt_token_ids) for p in prepared}
    assert sum(n >= 1500 for n in lengths.values()) >= 3, "needs a few long contexts of 1,500+ tokens"
    text = "".join(json.dumps(r.messages or r.prompt, ensure_ascii=False) for r in requests)
    for needle in ("日本", "ما", "🌞", '"system"', '"assistant"', "Python", "JSON"):
        assert needle in text
    assert any(r.prompt is not None for r in requests)


def test_chat_template_is_applied_once_without_a_doubled_bos(tokenizer) -> None:  # type: ignore[no-untyped-def]
    req = ChatRequest(id="a", messages=[{"role": "user", "content": "Hi"}])
    (prepared,) = prepare_requests([req], tokenizer)
    expected = tokenizer.apply_chat_template(req.messages, add_generation_prompt=True, tokenize=False)
    assert prepared.prompt_text == expected
    assert prepared.prompt_text.endswith("<|im_start|>assistant\n")
    start = tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert prepared.prompt_token_ids[0] == start and prepared.prompt_token_ids[1] != start
    assert prepared.prompt_token_ids == tokenizer(expected, add_special_tokens=False)["input_ids"]


def test_request_over_the_context_names_the_request_and_its_length(tokenizer) -> None:  # type: ignore[no-untyped-def]
    long = ChatRequest(id="too-long", messages=[{"role": "user", "content": "word " * 300}])
    n = len(prepare_requests([long], tokenizer)[0].prompt_token_ids)
    with pytest.raises(ContextLengthError) as err:
        prepare_requests([long], tokenizer, max_model_len=256, max_new_tokens=16)
    assert str(err.value) == (
        f"request 'too-long' has {n} prompt tokens; with max_new_tokens=16 it needs {n + 16} > "
        "the model's context of 256 tokens"
    )
