"""Every translated setting that changes greedy output gives the same tokens on HF and vLLM.

Each test derives its setting from the unset run (a token or word the model really produced), runs both
real backends on the bundled model, and asserts (1) identical tokens and (2) a different output than
the unset run, so a setting that silently did nothing on both sides would fail too.
"""

from __future__ import annotations

from typing import Any

import pytest

from hf2vllm.backends.base import GenerationResult
from hf2vllm.requests import PreparedRequest, bundled_prompts_path, load_requests, prepare_requests
from hf2vllm.spec import GenerationSpec

pytestmark = pytest.mark.engine

MAX_NEW = 24
PROMPT_IDS = ["fact-capital", "fact-dna", "fact-photosynthesis", "fact-moon", "reason-compare", "code-explain"]


def _run(backend: Any, requests: list[PreparedRequest], spec: GenerationSpec) -> list[GenerationResult]:
    return backend.generate(requests, spec)


@pytest.fixture(scope="module")
def prompts(tokenizer) -> list[PreparedRequest]:  # type: ignore[no-untyped-def]
    chosen = [r for r in load_requests(bundled_prompts_path()) if r.id in PROMPT_IDS]
    return prepare_requests(chosen, tokenizer)


@pytest.fixture(scope="module")
def unset_runs(prompts, hf_backend, vllm_backend, bundled_model):  # type: ignore[no-untyped-def]
    """Greedy, nothing else set: both backends agree on every prompt (the baseline of each test)."""
    spec = GenerationSpec.from_hf({"max_new_tokens": MAX_NEW, "do_sample": False}, model=bundled_model)
    hf = _run(hf_backend, prompts, spec)
    vllm = _run(vllm_backend, prompts, spec)
    for h, v in zip(hf, vllm, strict=True):
        assert h.output_token_ids == v.output_token_ids, h.request_id
    return {r.id: (r, h.output_token_ids) for r, h in zip(prompts, hf, strict=True)}


@pytest.fixture(scope="module")
def long_answer(unset_runs):  # type: ignore[no-untyped-def]
    """A prompt whose unset answer runs to the length limit (room for settings to act on)."""
    for request, tokens in unset_runs.values():
        if len(tokens) == MAX_NEW:
            return request, tokens
    raise AssertionError("no bundled prompt produced a full-length greedy answer")


def assert_same_and_changed(
    hf_backend, vllm_backend, request: PreparedRequest, spec: GenerationSpec, unset: list[int]  # type: ignore[no-untyped-def]
) -> list[int]:
    spec = spec.for_prompt(len(request.prompt_token_ids))
    hf = _run(hf_backend, [request], spec)[0].output_token_ids
    vllm = _run(vllm_backend, [request], spec)[0].output_token_ids
    assert hf == vllm, f"HF {hf} != vLLM {vllm}"
    assert hf != unset, "the setting did not change the output: this test would not catch a broken translation"
    return hf


def _spec(bundled_model, **kwargs: Any) -> GenerationSpec:  # type: ignore[no-untyped-def]
    return GenerationSpec.from_hf({"max_new_tokens": MAX_NEW, "do_sample": False, **kwargs}, model=bundled_model)


def test_repetition_penalty_matches_on_both_backends(hf_backend, vllm_backend, long_answer, bundled_model):
    request, unset = long_answer
    assert_same_and_changed(hf_backend, vllm_backend, request, _spec(bundled_model, repetition_penalty=1.5), unset)


def test_min_new_tokens_matches_on_both_backends(hf_backend, vllm_backend, unset_runs, bundled_model):
    stopped = [(r, t) for r, t in unset_runs.values() if len(t) < MAX_NEW]
    assert stopped, "no bundled prompt stopped on eos within the limit"
    request, unset = stopped[0]
    spec = GenerationSpec.from_hf(
        {"max_new_tokens": len(unset) + 8, "min_new_tokens": len(unset) + 4, "do_sample": False}, model=bundled_model
    )
    out = assert_same_and_changed(hf_backend, vllm_backend, request, spec, unset)
    assert len(out) >= len(unset) + 4


def test_eos_token_list_matches_on_both_backends(hf_backend, vllm_backend, long_answer, bundled_model):
    request, unset = long_answer
    extra_eos = unset[6]
    spec = _spec(bundled_model, eos_token_id=[2, extra_eos])
    out = assert_same_and_changed(hf_backend, vllm_backend, request, spec, unset)
    assert out == unset[: unset.index(extra_eos) + 1]


def test_stop_strings_match_on_both_backends(hf_backend, vllm_backend, long_answer, bundled_model, tokenizer):
    request, unset = long_answer
    words = tokenizer.decode(unset[8:], skip_special_tokens=True).split()
    stop = next(w for w in words if len(w) >= 4)
    out = assert_same_and_changed(hf_backend, vllm_backend, request, _spec(bundled_model, stop_strings=[stop]), unset)
    assert stop in tokenizer.decode(out) and len(out) < len(unset)


def test_bad_words_ids_match_on_both_backends(hf_backend, vllm_backend, long_answer, bundled_model):
    request, unset = long_answer
    banned = unset[0]
    out = assert_same_and_changed(hf_backend, vllm_backend, request, _spec(bundled_model, bad_words_ids=[[banned]]), unset)
    assert banned not in out


def test_suppress_tokens_match_on_both_backends(hf_backend, vllm_backend, long_answer, bundled_model):
    request, unset = long_answer
    banned = unset[3]
    out = assert_same_and_changed(hf_backend, vllm_backend, request, _spec(bundled_model, suppress_tokens=[banned]), unset)
    assert banned not in out


def test_max_new_tokens_matches_on_both_backends(hf_backend, vllm_backend, long_answer, bundled_model):
    request, unset = long_answer
    out = assert_same_and_changed(hf_backend, vllm_backend, request, _spec(bundled_model, max_new_tokens=5), unset)
    assert out == unset[:5]


def test_max_length_counts_the_prompt_on_both_backends(hf_backend, vllm_backend, long_answer, bundled_model):
    request, unset = long_answer
    spec = GenerationSpec.from_hf({"max_length": len(request.prompt_token_ids) + 7}, model=bundled_model)
    out = assert_same_and_changed(hf_backend, vllm_backend, request, spec, unset)
    assert out == unset[:7]
