"""Per-group verdicts: the requests of a run grouped by a metadata key of the prompt file (``"domain": "code"``).

A run can pass overall while one kind of request fails: 45 of 50 exact matches can hide 0 of 5 on code.
The groups say where, worst first, and the gate (``--gate worst-group``, the default) holds
``--min-exact-match`` against the worst group rather than the average. Pure functions, no I/O::

    key = group_key(None, [r.source.metadata for r in requests])     # "domain" when any request has it
    groups = summarise_groups(report.requests, {r.id: r.source.metadata for r in requests}, key)
    check_gate(report.summary, groups, key, minimum=0.9, gate="worst-group")  # ParityGateError below it
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from hf2vllm.errors import InputError, ParityGateError
from hf2vllm.parity.compare import common_prefix_fraction, exact_match_rate
from hf2vllm.report.schema import DeltaStats, GroupSummary, ParitySummary, RequestComparison

DEFAULT_GROUP_KEY = "domain"
"""The metadata key requests are grouped by when no key is named and any request carries it."""
NO_GROUP = "(none)"
"""The group of requests that lack the key (or set it to null)."""
Gate = Literal["worst-group", "overall"]
GATES: tuple[Gate, ...] = ("worst-group", "overall")


def group_key(group_by: str | None, metadata: Sequence[Mapping[str, Any]]) -> str | None:
    """The key a run is grouped by, from ``--group-by`` (``group_by``) and the requests' metadata.

    Rule: a named key is used when at least one request carries it; a named key that no request carries
    is refused (``InputError``, a typo would otherwise pass silently as one ``(none)`` group). Unnamed
    (None): ``"domain"`` when any request carries it, else no grouping (None).

    >>> group_key(None, [{"domain": "code"}, {}]), group_key(None, [{"lang": "fr"}]), group_key("lang", [{"lang": "fr"}])
    ('domain', None, 'lang')
    """
    if group_by is None:
        return DEFAULT_GROUP_KEY if any(DEFAULT_GROUP_KEY in m for m in metadata) else None
    if any(group_by in m for m in metadata):
        return group_by
    keys = sorted({k for m in metadata for k in m})
    found = f"the keys they carry: {', '.join(keys)}" if keys else "they carry no metadata keys"
    raise InputError(f"--group-by {group_by}: no request carries the metadata key {group_by!r} ({found}); add "
                     f'"{group_by}": ... to the prompt-file lines, or leave --group-by out')


def group_name(metadata: Mapping[str, Any], key: str) -> str:
    """The group a request belongs to: its value for ``key`` as text (a string as it is, any other JSON value
    as compact JSON); ``NO_GROUP`` when the key is missing or null.

    >>> group_name({"domain": "code"}, "domain"), group_name({"level": 2}, "level"), group_name({}, "domain")
    ('code', '2', '(none)')
    """
    value = metadata.get(key)
    if value is None:
        return NO_GROUP
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))


def summarise(rows: Sequence[RequestComparison], teacher_forcing: DeltaStats | None = None) -> ParitySummary:
    """The parity summary of ``rows``: the whole run's (``report.summary``) or one group's."""
    matches = [r.exact_match for r in rows]
    fractions = [common_prefix_fraction(r.reference_token_ids, r.candidate_token_ids) for r in rows]
    verdicts = {v: sum(r.verdict == v for r in rows) for v in ("match", "near_tie", "mismatch")}
    return ParitySummary(
        requests=len(rows),
        exact_matches=sum(matches),
        exact_match_rate=round(exact_match_rate(matches), 4),
        mean_common_prefix_fraction=round(sum(fractions) / len(fractions), 4) if fractions else 0.0,
        verdicts=verdicts,
        mean_text_similarity=round(sum(r.text_similarity for r in rows) / len(rows), 4) if rows else None,
        teacher_forcing=teacher_forcing,
    )


def summarise_groups(
    rows: Sequence[RequestComparison], metadata_by_id: Mapping[str, Mapping[str, Any]], key: str | None
) -> list[GroupSummary]:
    """One ``GroupSummary`` per value of ``key`` among the rows' requests, worst first (``worst_first``);
    empty when ``key`` is None. Rates are rounded to 4 places, as in the overall summary."""
    if key is None:
        return []
    members: dict[str, list[RequestComparison]] = {}
    for row in rows:
        members.setdefault(group_name(metadata_by_id.get(row.id, {}), key), []).append(row)
    groups = []
    for name, group in members.items():
        whole = summarise(group)
        groups.append(GroupSummary(
            name=name, requests=whole.requests, exact_matches=whole.exact_matches,
            exact_match_rate=whole.exact_match_rate, verdicts=whole.verdicts,
            mean_common_prefix_fraction=whole.mean_common_prefix_fraction, request_ids=[r.id for r in group],
        ))
    return worst_first(groups)


def worst_first(groups: Sequence[GroupSummary]) -> list[GroupSummary]:
    """Worst group first. Worst = lowest exact-match rate (exact matches over requests, unrounded); among
    equal rates, most ``mismatch`` verdicts (a real difference weighs more than a near tie); then by name,
    so the order is stable."""
    return sorted(groups, key=lambda g: (g.exact_matches / g.requests, -g.verdicts.get("mismatch", 0), g.name))


def check_gate(
    summary: ParitySummary, groups: Sequence[GroupSummary], group_by: str | None, minimum: float | None,
    gate: Gate = "worst-group",
) -> None:
    """Raise ``ParityGateError`` (exit 1) when parity is below ``minimum`` (``--min-exact-match``).

    ``gate="overall"``: the run's exact-match rate is held against ``minimum``. ``gate="worst-group"``: the
    worst group's rate is (``groups[0]``, as ``summarise_groups`` orders them); with no groups that is the
    whole run, so the two gates agree. The worst group's rate is never above the overall rate (the overall
    rate is the groups' mean weighted by size), so ``worst-group`` is the stricter gate. The message names
    the group, its rate and the overall rate.
    """
    if minimum is None:
        return
    worst = groups[0] if gate == "worst-group" and groups else None
    if worst is None:
        if summary.exact_match_rate < minimum:
            raise ParityGateError(
                f"exact-match rate {summary.exact_match_rate:.3f} is below --min-exact-match {minimum}"
            )
        return
    if worst.exact_match_rate < minimum:
        raise ParityGateError(
            f"exact-match rate {worst.exact_match_rate:.3f} in {group_by} {worst.name!r} ({worst.exact_matches}/"
            f"{worst.requests} requests, the worst of {len(groups)} groups) is below --min-exact-match {minimum} "
            f"(overall {summary.exact_match_rate:.3f}; --gate overall holds the overall rate instead)"
        )
