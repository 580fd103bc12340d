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


def test_rest_batches_group_by_what_is_computed_and_do_not_pad_short_caches_to_long_ones() -> None:
    from hf2vllm.backends.hf import rest_batches

    rest = {0: 65, 1: 60, 2: 900, 3: 27, 4: 50}
    cached = {0: 40, 1: 1700, 2: 800, 3: 1600, 4: 45}
    # Two short prompts together; each long cache alone: padding a 45-token cache to 1,600 positions (copy
    # and attention), or an answer of 60 to a prompt rest of 900, would cost more than it saves.
    assert rest_batches(list(rest), rest, cached, 32, 16384) == [[4, 0], [3], [2], [1]]
    assert rest_batches([0, 4], rest, cached, 1, 16384) == [[4], [0]]  # batch_size
    assert rest_batches([0, 4], rest, cached, 32, 150) == [[4], [0]]  # padded positions, cache included


def test_every_doctest_of_the_batching_module_holds() -> None:
    import doctest

    import hf2vllm.backends.hf as hf
    import hf2vllm.parity.teacher_forced as teacher_forced

    for module in (hf, teacher_forced):
        assert doctest.testmod(module).failed == 0
