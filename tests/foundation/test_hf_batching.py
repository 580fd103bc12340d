"""How the HF backend cuts a length-sorted request list into batches (pure; no model)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hf2vllm.backends.hf import length_batches

# Prompt lengths of the bundled set, sorted (3 long contexts at the end).
BUNDLED = [5, 29, 36, 36, 36, 36, 37, 37, 38, 38, 40, 40, 40, 41, 41, 42, 43, 43, 44, 44, 46, 47, 47, 47, 49,
           49, 49, 49, 50, 50, 50, 50, 51, 52, 53, 53, 53, 55, 55, 57, 57, 57, 58, 64, 70, 72, 99, 1567, 1713, 1887]


def test_short_prompts_share_large_batches_and_long_contexts_stay_apart() -> None:
    batches = length_batches(range(len(BUNDLED)), BUNDLED, 64, 32, 16384)
    assert [len(b) for b in batches] == [32, 15, 3]
    assert batches[-1] == [47, 48, 49]


def test_batch_size_caps_rows_and_a_prompt_over_the_token_budget_runs_alone() -> None:
    assert length_batches(range(4), [10, 10, 10, 10], 0, 3, 10_000) == [[0, 1, 2], [3]]
    assert length_batches(range(2), [5, 20_000], 0, 32, 100) == [[0], [1]]


@given(st.lists(st.integers(1, 3000), min_size=1, max_size=80), st.integers(0, 128), st.integers(1, 64),
       st.integers(1, 40_000))
def test_every_request_lands_in_exactly_one_batch_in_order(lengths, new, size, budget) -> None:  # type: ignore[no-untyped-def]
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches = length_batches(order, lengths, new, size, budget)
    assert [i for b in batches for i in b] == order
    for b in batches:
        width = max(lengths[i] for i in b) + new
        assert len(b) <= size
        assert len(b) == 1 or (len(b) * width <= budget and 2 * sum(lengths[i] + new for i in b) >= len(b) * width)
