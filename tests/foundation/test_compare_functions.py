"""The pure comparison helpers, on hand-written token lists."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hf2vllm.parity.compare import common_prefix_fraction, exact_match_rate, first_divergence, token_at


def test_first_divergence_points_at_the_first_differing_token() -> None:
    assert first_divergence([1, 2, 3], [1, 2, 3]) is None
    assert first_divergence([1, 2, 3], [1, 9, 3]) == 1
    assert first_divergence([], [4]) == 0


def test_one_side_stopping_early_diverges_where_it_stopped() -> None:
    assert first_divergence([1, 2], [1, 2, 3]) == 2
    assert token_at([1, 2], 2) is None
    assert token_at([1, 2, 3], 2) == 3


def test_common_prefix_fraction_and_rate() -> None:
    assert common_prefix_fraction([1, 2, 3, 4], [1, 2, 0, 0]) == 0.5
    assert common_prefix_fraction([], []) == 1.0
    assert exact_match_rate([True, False, True, True]) == 0.75


@given(st.lists(st.integers(0, 5), max_size=12), st.lists(st.integers(0, 5), max_size=12))
def test_divergence_index_is_the_length_of_the_common_prefix(a: list[int], b: list[int]) -> None:
    pos = first_divergence(a, b)
    if pos is None:
        assert a == b
    else:
        assert a[:pos] == b[:pos]
        assert token_at(a, pos) != token_at(b, pos)
