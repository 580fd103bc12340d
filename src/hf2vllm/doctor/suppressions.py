"""Inline suppressions: ``# hf2vllm: ignore[HVD001]``, ``# hf2vllm: ignore[HVD001, HVD101]`` or a bare
``# hf2vllm: ignore`` (every rule) on a line the finding spans.

In Python only real comments count (found with ``tokenize``), so a string that happens to contain the
marker suppresses nothing. Shell and YAML comments start at ``#`` as well.
"""

from __future__ import annotations

import io
import re
import tokenize

ALL_RULES = "*"
_MARKER = re.compile(r"#\s*hf2vllm:\s*ignore(?:\[([^\]]*)\])?", re.I)


def _parse_comment(comment: str) -> set[str] | None:
    match = _MARKER.search(comment)
    if match is None:
        return None
    if match.group(1) is None:
        return {ALL_RULES}
    return {part.strip().upper() for part in match.group(1).split(",") if part.strip()}


def python_suppressions(text: str) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.COMMENT and (rules := _parse_comment(tok.string)) is not None:
                out.setdefault(tok.start[0], set()).update(rules)
    except (tokenize.TokenError, SyntaxError):
        return out
    return out


def hash_comment_suppressions(text: str) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if "#" in line and (rules := _parse_comment(line[line.index("#"):])) is not None:
            out.setdefault(number, set()).update(rules)
    return out


def is_suppressed(suppressions: dict[int, set[str]], rule_id: str, first_line: int, last_line: int | None) -> bool:
    for line in range(first_line, (last_line or first_line) + 1):
        rules = suppressions.get(line)
        if rules and (ALL_RULES in rules or rule_id in rules):
            return True
    return False
