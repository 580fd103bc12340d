"""Prompt sets in the OpenAI batch format (what `vllm run-batch` reads): parsing, refusals, the run's settings,
and one real HF-vs-vLLM comparison of a batch file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hf2vllm.errors import InputError, UnsupportedParameterError
from hf2vllm.parity.run import CompareOptions, resolve_spec, run_compare
from hf2vllm.requests import bundled_prompts_path, load_requests
from hf2vllm.requests_openai_batch import BODY_KEYS, read_openai_batch
from hf2vllm.translation import spec_for_compare

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"


def line(custom_id: str, url: str = CHAT, **body: Any) -> str:
    if "messages" not in body and "prompt" not in body:
        body = {("messages" if url == CHAT else "prompt"): (
            [{"role": "user", "content": f"Say {custom_id}."}] if url == CHAT else f"Say {custom_id}."), **body}
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": {"model": "served", **body}})


def write(tmp_path: Path, lines: list[str], name: str = "batch.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def refusal(path: Path) -> str:
    with pytest.raises(InputError) as err:
        load_requests(path)
    return str(err.value)


# ---------------------------------------------------------------------------------------------- parsing
def test_batch_lines_become_requests_named_by_custom_id(tmp_path: Path) -> None:
    path = write(tmp_path, [
        line("q1", max_tokens=16, temperature=0, stop="\n\n"),
        "",
        line("q2", max_completion_tokens=16, temperature=0, stop=["\n\n"], logprobs=True, top_logprobs=3),
    ])
    first, second = load_requests(path)
    assert (first.id, second.id) == ("q1", "q2")
    assert first.messages == [{"role": "user", "content": "Say q1."}] and first.prompt is None
    assert first.metadata == {"url": CHAT, "model": "served"}  # a served model name: kept, never checked
    batch = read_openai_batch(path)
    assert batch is not None and batch.url == CHAT
    # max_completion_tokens is max_tokens, a stop string is a one-string list, logprobs change no token
    assert batch.settings == {"max_tokens": 16, "temperature": 0, "stop": ["\n\n"]}
    assert [r.line for r in batch.requests] == [1, 3]


def test_completions_lines_take_a_prompt_and_openais_default_of_16_tokens(tmp_path: Path) -> None:
    path = write(tmp_path, [line("c1", COMPLETIONS, temperature=0), line("c2", COMPLETIONS, temperature=0)])
    (req, _) = load_requests(path)
    assert req.prompt == "Say c1." and req.messages is None
    batch = read_openai_batch(path)
    assert batch is not None and batch.settings == {"max_tokens": 16, "temperature": 0}


def test_a_plain_prompt_file_is_not_a_batch(tmp_path: Path) -> None:
    assert read_openai_batch(write(tmp_path, ['{"id": "a", "prompt": "x"}'])) is None
    assert read_openai_batch(bundled_prompts_path()) is None


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('{"custom_id": "x", "body": {', "not valid JSON"),
        (json.dumps({"method": "POST", "url": CHAT, "body": {"messages": []}}), "missing 'custom_id'"),
        (json.dumps({"custom_id": "x", "method": "POST", "url": CHAT}), "missing 'body'"),
        (json.dumps({"custom_id": "x", "method": "POST", "body": {}}), "missing 'url'"),
        (json.dumps({"custom_id": "x", "method": "GET", "url": CHAT, "body": {}}), "method 'GET'"),
        (json.dumps({"custom_id": 7, "method": "POST", "url": CHAT, "body": {}}),
         "custom_id must be a non-empty string"),
        (json.dumps({"custom_idd": "x", "custom_id": "x", "method": "POST", "url": CHAT, "body": {}}),
         "unknown batch line key 'custom_idd'; did you mean 'custom_id'?"),
        (line("x", "/v1/embeddings", input="a"), "url: unknown value '/v1/embeddings'; choose one of"),
        (json.dumps({"custom_id": "x", "method": "POST", "url": CHAT, "body": "hi"}), "body must be a JSON object"),
        (line("x", messages=[{"role": "user", "content": "a"}], prompt="b"),
         "give exactly one of body.messages (/v1/chat/completions) or body.prompt (/v1/completions)"),
        (json.dumps({"custom_id": "x", "method": "POST", "url": CHAT, "body": {"model": "m"}}),
         "give exactly one of body.messages"),
        (line("x", prompt="b"), "url /v1/chat/completions takes body.messages"),
        (line("x", messages=[{"role": "usr", "content": "a"}]), "did you mean 'user'?"),
        (line("x", messages="hello"), "(at body.messages)"),
        (line("x", max_token=16), "body: unknown key 'max_token'; did you mean 'max_tokens'?"),
        (line("x", temprature=0), "did you mean 'temperature'?"),
        (line("x", suffix="!"), "body.suffix is a /v1/completions key; this line's url is /v1/chat/completions"),
        (line("x", echo=True), "body.echo=true: compare cannot reproduce it"),
        (line("x", chat_template_kwargs={"enable_thinking": True}), "body.chat_template_kwargs="),
        (line("x", max_tokens=16, max_completion_tokens=32), "body.max_tokens=16 and body.max_completion_tokens=32"),
        ('{"id": "plain", "prompt": "x"}', 'not an OpenAI batch line (no "custom_id" or "body"), but line 1 is one'),
    ],
)
def test_malformed_batch_line_is_named_by_file_and_line(tmp_path: Path, bad_line: str, message: str) -> None:
    path = write(tmp_path, [line("ok"), "", bad_line])
    text = refusal(path)
    assert text.startswith(f"{path}:3: "), text
    assert message in text, text


def test_completions_keys_are_refused_on_chat_lines_and_back(tmp_path: Path) -> None:
    path = write(tmp_path, [line("ok", COMPLETIONS, max_completion_tokens=8)])
    text = refusal(path)
    assert "body.max_completion_tokens is a /v1/chat/completions key; this line's url is /v1/completions" in text
    text = refusal(write(tmp_path, [line("ok", COMPLETIONS, prompt=["a", "b"])]))
    assert "body.prompt must be one string" in text


def test_duplicate_custom_ids_are_refused_with_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, [line("a"), line("b"), line("a")])
    assert refusal(path) == f"{path}:3: duplicate custom_id 'a' (first on line 1)"


def test_a_plain_file_with_a_batch_line_is_refused_naming_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, ['{"id": "a", "prompt": "x"}', line("b")])
    text = refusal(path)
    assert text.startswith(f"{path}:2: an OpenAI batch line"), text
    assert "line 1 is a plain request; one format per file" in text


def test_one_endpoint_per_file(tmp_path: Path) -> None:
    path = write(tmp_path, [line("a"), line("b", COMPLETIONS)])
    assert refusal(path).startswith(f"{path}:2: url '/v1/completions', but line 1 has '/v1/chat/completions'")


def test_requests_with_different_settings_are_refused_naming_both_and_the_setting(tmp_path: Path) -> None:
    path = write(tmp_path, [
        line("a", max_tokens=16, temperature=0),
        line("b", max_completion_tokens=16, temperature=0, logprobs=True),  # same settings, other spelling
        line("c", max_tokens=32, temperature=0),
    ])
    assert refusal(path) == (
        f"{path}: requests 'a' (line 1) and 'c' (line 3) have different settings: max_tokens 16 vs 32; compare runs "
        "one setting for every request, so split the file by settings and compare each part"
    )
    path = write(tmp_path, [line("a", temperature=0), line("b", temperature=0, seed=3)])
    assert "requests 'a' (line 1) and 'b' (line 2) have different settings: seed not set vs 3" in refusal(path)


def test_body_keys_are_the_request_fields_of_the_installed_vllm() -> None:
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.entrypoints.openai.completion.protocol import CompletionRequest

    from hf2vllm.generation_params import VLLM_RULES

    fields = set(ChatCompletionRequest.model_fields) | set(CompletionRequest.model_fields)
    assert set(BODY_KEYS) == fields  # a new vLLM field must be classified before it is accepted
    for name, key in BODY_KEYS.items():
        if key.kind == "setting":
            assert (key.field or name) in VLLM_RULES, name


# ---------------------------------------------------------------------------------------------- settings
def spec_of(path: Path, bundled_model: Path, tokenizer: Any, **options: Any):  # type: ignore[no-untyped-def]
    return resolve_spec(CompareOptions(prompts=path, **options), bundled_model, tokenizer)


def test_batch_settings_give_the_same_spec_as_the_equivalent_hf_kwargs(
    tmp_path: Path, bundled_model: Path, tokenizer: Any
) -> None:
    body = {"max_tokens": 24, "temperature": 0, "repetition_penalty": 1.2, "min_tokens": 2, "seed": 7,
            "stop": ["\n\n"], "stop_token_ids": [13], "logprobs": True, "top_logprobs": 2}
    path = write(tmp_path, [line("a", **body), line("b", **body)])
    hf_kwargs = {"max_new_tokens": 24, "repetition_penalty": 1.2, "min_new_tokens": 2, "seed": 7,
                 "stop_strings": ["\n\n"], "eos_token_id": [2, 13]}
    from_file = spec_of(path, bundled_model, tokenizer)
    from_kwargs = resolve_spec(CompareOptions(spec=spec_for_compare(hf_kwargs, None, bundled_model)), bundled_model,
                               tokenizer)
    assert from_file == from_kwargs
    assert from_file.max_new_tokens == 24 and from_file.logprobs == 5  # compare's --logprobs, not top_logprobs


def test_file_settings_replace_the_default_and_max_new_tokens_fills_only_what_the_bodies_leave_out(
    tmp_path: Path, bundled_model: Path, tokenizer: Any
) -> None:
    stated = write(tmp_path, [line("a", max_tokens=16, temperature=0)], "stated.jsonl")
    assert spec_of(stated, bundled_model, tokenizer, max_new_tokens=40).max_new_tokens == 16
    unstated = write(tmp_path, [line("a", temperature=0)], "unstated.jsonl")
    assert spec_of(unstated, bundled_model, tokenizer, max_new_tokens=40).max_new_tokens == 40
    completions = write(tmp_path, [line("a", COMPLETIONS, temperature=0)], "completions.jsonl")
    assert spec_of(completions, bundled_model, tokenizer, max_new_tokens=40).max_new_tokens == 16


def test_a_typed_max_new_tokens_must_agree_with_the_bodies_max_tokens(tmp_path: Path, bundled_model: Path, tokenizer: Any) -> None:
    import hf2vllm

    stated = write(tmp_path, [line("a", max_tokens=16, temperature=0)], "stated.jsonl")
    assert spec_of(stated, bundled_model, tokenizer, max_new_tokens=16, max_new_tokens_given=True).max_new_tokens == 16
    unstated = write(tmp_path, [line("a", temperature=0)], "unstated.jsonl")
    assert spec_of(unstated, bundled_model, tokenizer, max_new_tokens=40, max_new_tokens_given=True).max_new_tokens == 40
    expected = (f"{stated}: the bodies set max_tokens=16, --max-new-tokens gives 40; a run has one length: leave "
                "--max-new-tokens out (the file's is used) or make them agree")
    with pytest.raises(InputError) as err:
        hf2vllm.compare(prompts=stated, max_new_tokens=40)  # refused while preparing prompts, before any model loads
    assert str(err.value) == expected


def test_explicit_hf_kwargs_must_agree_with_the_file(tmp_path: Path, bundled_model: Path, tokenizer: Any) -> None:
    path = write(tmp_path, [line("a", max_tokens=16, temperature=0, repetition_penalty=1.1)])
    agreeing = spec_for_compare({"max_new_tokens": 16, "repetition_penalty": 1.1}, None, bundled_model)
    assert spec_of(path, bundled_model, tokenizer, spec=agreeing).repetition_penalty == 1.1
    differing = spec_for_compare({"max_new_tokens": 32, "repetition_penalty": 1.1}, None, bundled_model)
    with pytest.raises(InputError) as err:
        spec_of(path, bundled_model, tokenizer, spec=differing)
    assert str(err.value) == (
        f"{path}: the bodies' settings give max_new_tokens=16, --hf-kwargs/--generation-config give "
        "max_new_tokens=32; a run has one setting: leave --hf-kwargs/--generation-config out (the file's settings "
        "are used) or make them agree"
    )


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"temperature": 0.7}, 'the bodies set "temperature": 0.7'),
        ({"max_tokens": 16}, "the bodies do not set \"temperature\", and OpenAI's default is 1"),
    ],
)
def test_sampling_bodies_are_refused_with_the_fix_for_a_batch_file(
    tmp_path: Path, bundled_model: Path, tokenizer: Any, body: dict[str, Any], why: str
) -> None:
    path = write(tmp_path, [line("a", **body)])
    with pytest.raises(InputError) as err:
        spec_of(path, bundled_model, tokenizer)
    assert str(err.value).startswith(f"{path}: {why}, so vLLM samples; compare checks token-by-token parity")
    assert 'set "temperature": 0 in every body' in str(err.value)


def test_top_k_1_keeps_only_the_top_token_so_it_runs_greedy(
    tmp_path: Path, bundled_model: Path, tokenizer: Any
) -> None:
    path = write(tmp_path, [line("a", max_tokens=16, temperature=0.8, top_k=1)])
    greedy = write(tmp_path, [line("a", max_tokens=16, temperature=0)], "greedy.jsonl")
    assert spec_of(path, bundled_model, tokenizer) == spec_of(greedy, bundled_model, tokenizer)


def test_the_models_generation_config_fills_what_the_bodies_leave_out_as_a_server_does(
    tmp_path: Path, bundled_model: Path, tokenizer: Any
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    for item in bundled_model.iterdir():
        if item.name != "generation_config.json":
            (model / item.name).symlink_to(item)
    config = json.loads((bundled_model / "generation_config.json").read_text())
    (model / "generation_config.json").write_text(json.dumps(
        {**config, "do_sample": True, "temperature": 0.6, "repetition_penalty": 1.05}))
    sampling = write(tmp_path, [line("a", max_tokens=16)], "sampling.jsonl")
    with pytest.raises(InputError, match="the model's generation_config.json gives temperature=0.6, so vLLM samples"):
        spec_of(sampling, model, tokenizer)
    greedy = write(tmp_path, [line("a", max_tokens=16, temperature=0)], "greedy.jsonl")
    assert spec_of(greedy, model, tokenizer).repetition_penalty == 1.05


def test_settings_without_a_generate_equivalent_are_refused_as_translate_refuses_them(
    tmp_path: Path, bundled_model: Path, tokenizer: Any
) -> None:
    path = write(tmp_path, [line("q7", temperature=0, presence_penalty=0.5)])
    with pytest.raises(UnsupportedParameterError) as err:
        spec_of(path, bundled_model, tokenizer)
    assert str(err.value).startswith(f"{path}:1 (custom_id 'q7'): body settings: presence_penalty=0.5 (SamplingParams) "
                                     "has no exact Transformers translation")
    path = write(tmp_path, [line("q7", temperature=5)], "hot.jsonl")
    with pytest.raises(InputError, match=r":1 \(custom_id 'q7'\): body settings: temperature=5: vLLM expects"):
        spec_of(path, bundled_model, tokenizer)


# ---------------------------------------------------------------------------------------------- the command
BIN = Path(sys.executable).parent / "hf2vllm"


def hf2vllm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=600, env=dict(os.environ))


def test_compare_refuses_a_bad_or_sampling_batch_file_with_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = write(tmp_path, [line("a", temperature=0), line("b", temprature=0)], "bad.jsonl")
    done = hf2vllm("compare", "--prompts", str(bad))
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == f"error: {bad}:2: body: unknown key 'temprature'; did you mean 'temperature'?"
    sampling = write(tmp_path, [line("a", max_tokens=8)], "sampling.jsonl")
    done = hf2vllm("compare", "--prompts", str(sampling))
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().startswith(f"error: {sampling}: the bodies do not set \"temperature\"")


# ---------------------------------------------------------------------------------------------- real engines
def bundled_as_batch(tmp_path: Path, count: int, **settings: Any) -> tuple[Path, Path]:
    """The first ``count`` bundled prompts, as an OpenAI batch file and as the plain file they came from."""
    plain = [json.loads(text) for text in bundled_prompts_path().read_text().splitlines()[:count]]
    batch = write(tmp_path, [line(r["id"], messages=r["messages"], **settings) for r in plain], "bundled-batch.jsonl")
    return batch, write(tmp_path, [json.dumps(r) for r in plain], "bundled-plain.jsonl")


def test_a_batch_file_compares_exactly_like_the_same_prompts_with_max_new_tokens(
    tmp_path: Path, hf_backend: Any, vllm_backend: Any
) -> None:
    batch, plain = bundled_as_batch(tmp_path, 4, max_tokens=16, temperature=0)
    backends = {"reference": hf_backend, "candidate": vllm_backend}
    from_batch = run_compare(CompareOptions(prompts=batch), backends=backends)
    from_plain = run_compare(CompareOptions(prompts=plain, max_new_tokens=16), backends=backends)
    assert from_batch.generation == from_plain.generation
    assert from_batch.generation["max_new_tokens"] == 16 and not from_batch.generation["do_sample"]
    assert [r.id for r in from_batch.requests] == [r.id for r in from_plain.requests]
    for ours, theirs in zip(from_batch.requests, from_plain.requests, strict=True):
        assert 1 <= len(ours.candidate_token_ids) <= 16
        assert (ours.reference_token_ids, ours.candidate_token_ids) == (theirs.reference_token_ids,
                                                                        theirs.candidate_token_ids), ours.id
    assert from_batch.summary.exact_match_rate == from_plain.summary.exact_match_rate >= 0.75
