"""Pure token-level comparison helpers (no I/O, no models: easy to test with hand-written lists)."""

from __future__ import annotations

from collections.abc import Sequence


def first_divergence(reference: Sequence[int], candidate: Sequence[int]) -> int | None:
    """Index of the first position where the two token lists differ, or ``None`` when identical.

    A list that is a strict prefix of the other diverges at the shorter one's length (one side
    stopped, the other went on), so ``[1, 2]`` vs ``[1, 2, 3]`` diverges at 2.

    >>> first_divergence([5, 6, 7], [5, 9, 7])
    1
    >>> first_divergence([5, 6], [5, 6]) is None
    True
    """
    for pos, (a, b) in enumerate(zip(reference, candidate, strict=False)):
        if a != b:
            return pos
    if len(reference) != len(candidate):
        return min(len(reference), len(candidate))
    return None


def token_at(tokens: Sequence[int], pos: int | None) -> int | None:
    """The token at ``pos``, or ``None`` when the list ended before it (the side stopped there)."""
    if pos is None or pos >= len(tokens):
        return None
    return tokens[pos]


def common_prefix_fraction(reference: Sequence[int], candidate: Sequence[int]) -> float:
    """Share of the longer output covered by the common prefix (1.0 for identical outputs)."""
    longest = max(len(reference), len(candidate))
    if longest == 0:
        return 1.0
    pos = first_divergence(reference, candidate)
    return 1.0 if pos is None else pos / longest


def exact_match_rate(matches: Sequence[bool]) -> float:
    return sum(matches) / len(matches) if matches else 0.0
