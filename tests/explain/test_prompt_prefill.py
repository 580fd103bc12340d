"""The reference's head start (parity/head_start.py): prompts prefilled ahead, on the real HF model.

Teacher forcing over a prefilled prompt must give what one full pass gives (the same greedy picks, the
same logprobs within float32 noise), whether the prefill finished, stopped half-way, shared a start with
another prompt, or was refused by its memory budget.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from hf2vllm.backends.hf import PREFILL_CHUNK_TOKENS, HFBackend, PromptPrefix
from hf2vllm.requests import PreparedRequest, bundled_prompts_path, load_requests, prepare_requests
from hf2vllm.spec import GenerationSpec

SPEC = GenerationSpec(max_new_tokens=16, logprobs=5)


@pytest.fixture(scope="module")
def requests(hf_backend: HFBackend) -> list[PreparedRequest]:
    """Three chat prompts sharing the template's system prompt, and the longest of the set (> 1 chunk)."""
    prepared = prepare_requests(load_requests(bundled_prompts_path()), hf_backend.tokenizer, max_new_tokens=16)
    longest = max(prepared, key=lambda r: len(r.prompt_token_ids))
    assert len(longest.prompt_token_ids) > 2 * PREFILL_CHUNK_TOKENS
    return [*prepared[:3], longest]


@pytest.fixture(scope="module")
def answers(requests: list[PreparedRequest]) -> list[list[int]]:
    # Any token ids can be scored; these are the next request's prompt tokens, a plausible text.
    return [list(requests[(i + 1) % len(requests)].prompt_token_ids[5:21]) for i in range(len(requests))]


@pytest.fixture(scope="module")
def full_pass(hf_backend: HFBackend, requests: list[PreparedRequest], answers: list[list[int]]) -> list[Any]:
    return hf_backend.teacher_force(requests, answers, top_k=5, spec=SPEC, alone=True)


def assert_same_scores(got: list[Any], want: list[Any]) -> None:
    for a, b in zip(got, want, strict=True):
        assert a.greedy_token_ids == b.greedy_token_ids
        assert [s.token_id for s in a.steps] == [s.token_id for s in b.steps]
        assert max(abs(x.logprob - y.logprob) for x, y in zip(a.steps, b.steps, strict=True)) < 1e-4


def forwarded_tokens(backend: HFBackend, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many tokens each prefill step feeds the model (the real forward still runs)."""
    fed: list[int] = []
    real = backend._forward

    def counting(ids: Any, cache: Any, keep: int | None) -> Any:
        fed.append(int(ids.shape[1]))
        return real(ids, cache, keep)

    monkeypatch.setattr(backend, "_forward", counting)
    return fed


def test_scoring_over_prefilled_prompts_equals_one_full_pass(
    hf_backend: HFBackend, requests: list[PreparedRequest], answers: list[list[int]], full_pass: list[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    threads = torch.get_num_threads()
    fed = forwarded_tokens(hf_backend, monkeypatch)
    prefixes = hf_backend.prefill_prompts(requests, stop=threading.Event(), threads=1)
    assert torch.get_num_threads() == threads  # restored after the prefill's own count
    assert {r.id: p.length for r, p in ((r, prefixes[r.id]) for r in requests)} == {
        r.id: len(r.prompt_token_ids) - 1 for r in requests
    }
    # The three chat prompts share the system prompt: computed once, not three times.
    shared = sum(len(r.prompt_token_ids) - 1 for r in requests) - sum(fed)
    assert shared >= 2 * 20
    assert max(fed) <= PREFILL_CHUNK_TOKENS
    shapes: list[tuple[int, ...]] = []
    hook = hf_backend.model.register_forward_pre_hook(
        lambda _module, _args, kwargs: shapes.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True
    )
    try:
        got = hf_backend.teacher_force(requests, answers, top_k=5, spec=SPEC, prefixes=prefixes)
    finally:
        hook.remove()
    # Only the rest of each sequence ran (its last prompt token and the answer), in padded batches (the long
    # prompt's cache is not padded to the short ones' batch: at least half of a batch's positions are real).
    assert sum(rows for rows, _ in shapes) == len(requests) and len(shapes) < len(requests)
    assert {width for _, width in shapes} == {1 + max(len(a) for a in answers)}
    assert_same_scores(got, full_pass)
    assert all(p.cache is None for p in prefixes.values())  # used up: the memory is released


def test_a_stopped_prefill_keeps_what_it_did_and_scoring_finishes_the_rest(
    hf_backend: HFBackend, requests: list[PreparedRequest], answers: list[list[int]], full_pass: list[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stop = threading.Event()
    real = hf_backend._forward

    def stop_after_first_chunk(ids: Any, cache: Any, keep: int | None) -> Any:
        stop.set()  # as the engine's load ending would, during the first step
        return real(ids, cache, keep)

    monkeypatch.setattr(hf_backend, "_forward", stop_after_first_chunk)
    prefixes = hf_backend.prefill_prompts(requests, stop=stop, threads=1)
    assert len(prefixes) == 1
    (prefix,) = prefixes.values()
    assert 0 < prefix.length <= PREFILL_CHUNK_TOKENS
    monkeypatch.setattr(hf_backend, "_forward", real)
    assert_same_scores(hf_backend.teacher_force(requests, answers, top_k=5, spec=SPEC, prefixes=prefixes), full_pass)


def test_stop_before_the_start_and_a_tiny_budget_prefill_nothing(
    hf_backend: HFBackend, requests: list[PreparedRequest]
) -> None:
    stopped = threading.Event()
    stopped.set()
    assert hf_backend.prefill_prompts(requests, stop=stopped, threads=1) == {}
    per_token = hf_backend.kv_bytes_per_token()
    # SmolLM2-135M: 30 layers x 3 KV heads x 64 dims x keys and values x 4 bytes.
    assert per_token == 30 * 3 * 64 * 2 * 4
    shortest = min(len(r.prompt_token_ids) - 1 for r in requests)
    only_short = hf_backend.prefill_prompts(requests, stop=threading.Event(), threads=1,
                                            budget_bytes=per_token * shortest)
    assert [p.length for p in only_short.values()] == [shortest]


def test_prompts_over_the_context_are_left_to_the_full_pass(
    hf_backend: HFBackend, requests: list[PreparedRequest]
) -> None:
    limit = min(len(r.prompt_token_ids) for r in requests) + 1
    prefixes = hf_backend.prefill_prompts(requests, stop=threading.Event(), threads=1, max_model_len=limit)
    assert all(isinstance(p, PromptPrefix) and p.length < limit for p in prefixes.values())
    assert len(prefixes) == sum(1 for r in requests if len(r.prompt_token_ids) - 1 < limit)
