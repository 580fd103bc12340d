"""Per-group verdicts on hand-written rows (no engine): grouping, worst-first order, the "(none)" group,
the worst-group gate, the terminal and HTML views, report.json and `hf2vllm report --gate` (bad --gate and
--group-by values: tests/foundation/test_bad_inputs_parity.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from hf2vllm.environment import EnvironmentInfo
from hf2vllm.errors import InputError, ParityGateError
from hf2vllm.parity.groups import NO_GROUP, check_gate, group_key, group_name, summarise_groups, worst_first
from hf2vllm.report.html import render_html
from hf2vllm.report.json_file import read_report, write_report
from hf2vllm.report.schema import CompareReport, GroupSummary, ParitySummary, RequestComparison
from hf2vllm.report.terminal import render_report

HF2VLLM = [sys.executable, "-m", "hf2vllm.cli"]


def row(rid: str, verdict: str, *, shared: int = 4, length: int = 8) -> RequestComparison:
    """A request of ``length`` tokens on both sides; a non-match parts after ``shared`` tokens."""
    ref = list(range(length))
    cand = list(ref) if verdict == "match" else [*ref[:shared], 99, *ref[shared + 1:]]
    return RequestComparison(
        id=rid, prompt_tokens=5, reference_token_ids=ref, candidate_token_ids=cand, reference_text="r",
        candidate_text="c", reference_finish_reason="length", candidate_finish_reason="length",
        exact_match=verdict == "match", first_divergence=None if verdict == "match" else shared, verdict=verdict,
    )


ROWS = [
    row("c1", "match"), row("c2", "mismatch", shared=2), row("c3", "match"),  # code: 2/3
    row("t1", "match"), row("t2", "near_tie", shared=6),                     # chat: 1/2, no mismatch
    row("m1", "mismatch", shared=0), row("m2", "match"),                     # math: 1/2, one mismatch
    row("u1", "match"),                                                       # no domain
]
METADATA = {
    "c1": {"domain": "code"}, "c2": {"domain": "code"}, "c3": {"domain": "code", "level": 2},
    "t1": {"domain": "chat"}, "t2": {"domain": "chat"},
    "m1": {"domain": "math"}, "m2": {"domain": "math"},
    "u1": {"source": "logs"},
}


def by_name(groups: list[GroupSummary]) -> dict[str, GroupSummary]:
    return {g.name: g for g in groups}


def test_groups_come_worst_first_lowest_rate_then_most_mismatches() -> None:
    groups = summarise_groups(ROWS, METADATA, "domain")
    # chat and math both 1/2: math has a mismatch, chat only a near tie, so math is worse
    assert [g.name for g in groups] == ["math", "chat", "code", NO_GROUP]
    equal = [GroupSummary(name=n, requests=2, exact_matches=1, exact_match_rate=0.5, verdicts={"mismatch": 1},
                          mean_common_prefix_fraction=0.5) for n in ("b", "a")]
    assert [g.name for g in worst_first(equal)] == ["a", "b"]  # a full tie: by name, stable


def test_group_counts_rates_and_prefixes_are_those_of_its_requests() -> None:
    groups = by_name(summarise_groups(ROWS, METADATA, "domain"))
    code = groups["code"]
    assert (code.requests, code.exact_matches, code.exact_match_rate) == (3, 2, 0.6667)
    assert code.verdicts == {"match": 2, "near_tie": 0, "mismatch": 1}
    assert code.request_ids == ["c1", "c2", "c3"]
    assert code.mean_common_prefix_fraction == pytest.approx((1 + 2 / 8 + 1) / 3, abs=1e-4)
    assert groups["chat"].verdicts == {"match": 1, "near_tie": 1, "mismatch": 0}
    assert groups["math"].mean_common_prefix_fraction == 0.5  # 0/8 and 8/8


def test_requests_without_the_key_form_the_none_group() -> None:
    groups = by_name(summarise_groups(ROWS, METADATA, "domain"))
    assert groups[NO_GROUP].request_ids == ["u1"]
    levels = by_name(summarise_groups(ROWS, METADATA, "level"))
    assert levels["2"].request_ids == ["c3"]  # a number is grouped by its JSON text
    assert levels[NO_GROUP].requests == len(ROWS) - 1
    assert group_name({"domain": None}, "domain") == NO_GROUP


def test_groups_add_up_to_the_rows() -> None:
    groups = summarise_groups(ROWS, METADATA, "domain")
    assert sum(g.requests for g in groups) == len(ROWS)
    assert sum(g.exact_matches for g in groups) == sum(r.exact_match for r in ROWS)
    assert sorted(i for g in groups for i in g.request_ids) == sorted(r.id for r in ROWS)


def test_domain_is_the_default_key_only_when_a_request_carries_it() -> None:
    assert group_key(None, list(METADATA.values())) == "domain"
    assert group_key(None, [{"source": "logs"}, {}]) is None
    assert summarise_groups(ROWS, METADATA, None) == []
    assert group_key("source", list(METADATA.values())) == "source"


def test_a_group_key_no_request_carries_is_refused_with_the_keys_there_are() -> None:
    with pytest.raises(InputError) as err:
        group_key("domian", list(METADATA.values()))
    assert str(err.value).startswith("--group-by domian: no request carries the metadata key 'domian' "
                                     "(the keys they carry: domain, level, source)")


def summary_of(rows: list[RequestComparison]) -> ParitySummary:
    exact = sum(r.exact_match for r in rows)
    return ParitySummary(requests=len(rows), exact_matches=exact, exact_match_rate=round(exact / len(rows), 4),
                         mean_common_prefix_fraction=0.5)


def test_worst_group_gate_fails_where_the_overall_rate_passes_and_names_the_group() -> None:
    summary, groups = summary_of(ROWS), summarise_groups(ROWS, METADATA, "domain")
    assert summary.exact_match_rate == 0.625
    check_gate(summary, groups, "domain", 0.6, gate="overall")
    with pytest.raises(ParityGateError) as err:
        check_gate(summary, groups, "domain", 0.6)
    assert str(err.value) == (
        "exact-match rate 0.500 in domain 'math' (1/2 requests, the worst of 4 groups) is below --min-exact-match "
        "0.6 (overall 0.625; --gate overall holds the overall rate instead)"
    )
    check_gate(summary, groups, "domain", 0.5)  # at the threshold passes
    check_gate(summary, groups, "domain", None)  # no threshold, no gate


def test_without_groups_both_gates_hold_the_overall_rate() -> None:
    summary = summary_of(ROWS)
    for gate in ("worst-group", "overall"):
        with pytest.raises(ParityGateError) as err:
            check_gate(summary, [], None, 0.7, gate=gate)  # type: ignore[arg-type]
        assert str(err.value) == "exact-match rate 0.625 is below --min-exact-match 0.7"


def grouped_report() -> CompareReport:
    env = EnvironmentInfo(python="3.12", platform="linux", processor="x86_64", cpu_count=2, packages={},
                          device="cpu", model_path="/models/tiny", model_config_sha256=None)
    return CompareReport(
        reference="hf", candidate="vllm", dtype="float32", generation={"max_new_tokens": 8},
        summary=summary_of(ROWS), backends=[], requests=ROWS, environment=env,
        group_by="domain", groups=summarise_groups(ROWS, METADATA, "domain"),
    )


def terminal(report: CompareReport) -> str:
    console = Console(record=True, width=140)
    render_report(report, console)
    return console.export_text()


def test_terminal_shows_the_groups_worst_first_before_the_request_table() -> None:
    text = terminal(grouped_report())
    assert text.index("by domain, worst first") < text.index("per request")
    lines = [line for line in text.splitlines() if line.startswith("│")]
    names = [line.split("│")[1].strip() for line in lines[:4]]
    assert names == ["math (worst)", "chat", "code", NO_GROUP]
    assert "50.0%" in lines[0] and "66.7%" in lines[2]


def test_terminal_has_no_group_table_for_one_group_or_none() -> None:
    one = grouped_report().model_copy(update={"groups": summarise_groups(ROWS[:3], METADATA, "domain")})
    assert "worst first" not in terminal(one)
    assert "worst first" not in terminal(grouped_report().model_copy(update={"groups": [], "group_by": None}))


def test_html_opens_with_the_groups_table_worst_first() -> None:
    html = render_html(grouped_report())
    assert html.index('id="groups-table"') < html.index('id="summary"')
    order = [html.index(f'data-group="{name}"><td>') for name in ("math", "chat", "code", NO_GROUP)]
    assert order == sorted(order)
    assert '<tr class="group worst" data-group="math"><td>math (worst)</td>' in html
    assert 'data-group="code" id="req-c1"' in html  # each request carries its group
    plain = grouped_report().model_copy(update={"groups": [], "group_by": None})
    assert 'id="groups"' not in render_html(plain)


def test_groups_survive_report_json(tmp_path: Path) -> None:
    report = grouped_report()
    saved = read_report(write_report(report, tmp_path))
    assert saved.group_by == "domain" and saved.groups == report.groups
    assert json.loads((tmp_path / "report.json").read_text())["groups"][0]["name"] == "math"


def test_report_command_gates_on_the_worst_group_unless_told_overall(tmp_path: Path) -> None:
    write_report(grouped_report(), tmp_path)
    gated = subprocess.run([*HF2VLLM, "report", str(tmp_path), "--min-exact-match", "0.6"],
                           capture_output=True, text=True, timeout=120)
    assert gated.returncode == 1
    assert gated.stderr.startswith("error: exact-match rate 0.500 in domain 'math' (1/2 requests")
    overall = subprocess.run([*HF2VLLM, "report", str(tmp_path), "--min-exact-match", "0.6", "--gate", "overall"],
                             capture_output=True, text=True, timeout=120)
    assert overall.returncode == 0, overall.stderr

