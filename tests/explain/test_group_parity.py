"""Per-domain verdicts on the real HF model and the real vLLM engine: a prompt file tagged with domains is
grouped in the report, and a fault that hits one domain only fails the worst-group gate while the
overall rate passes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hf2vllm.errors import ParityGateError
from hf2vllm.parity.groups import NO_GROUP, check_gate
from hf2vllm.report.html import render_html
from hf2vllm.requests import load_requests
from planted_faults import DATA, run_faulted, saved

pytestmark = pytest.mark.engine

DOMAIN_PROMPTS = DATA / "domain_prompts.jsonl"
"""7 bundled prompts: 3 code (answers run past 16 tokens), 3 chat (two end their turn within 16 tokens,
fact-dna does not), code-bash without a domain."""


def test_groups_by_domain_add_up_to_the_overall_summary(hf_backend, vllm_backend, tmp_path: Path) -> None:
    report = saved(run_faulted(hf_backend, vllm_backend, prompts=DOMAIN_PROMPTS), tmp_path)
    assert report.group_by == "domain"  # the default key: the prompt file carries it
    tagged = {r.id: r.metadata.get("domain", NO_GROUP) for r in load_requests(DOMAIN_PROMPTS)}
    groups = {g.name: g for g in report.groups}
    assert sorted(groups) == ["(none)", "chat", "code"]
    for name, group in groups.items():
        assert group.request_ids == [rid for rid, domain in tagged.items() if domain == name]
        assert group.exact_match_rate == round(group.exact_matches / group.requests, 4)
    summary = report.summary
    assert sum(g.requests for g in report.groups) == summary.requests == len(tagged)
    assert sum(g.exact_matches for g in report.groups) == summary.exact_matches
    for verdict, count in summary.verdicts.items():
        assert sum(g.verdicts[verdict] for g in report.groups) == count
    rates = [g.exact_matches / g.requests for g in report.groups]
    assert rates == sorted(rates)  # worst first


def test_a_fault_in_one_domain_fails_the_worst_group_gate_while_the_overall_rate_passes(
    hf_backend, vllm_backend, tmp_path: Path
) -> None:
    # vLLM loses the end-of-turn token: only answers that end within 16 tokens differ, and those are chat answers.
    report = saved(
        run_faulted(hf_backend, vllm_backend, vllm_option=["stop_token_ids=[0]"], prompts=DOMAIN_PROMPTS), tmp_path
    )
    worst = report.groups[0]
    assert (worst.name, worst.exact_matches, worst.requests) == ("chat", 1, 3)
    assert worst.verdicts["mismatch"] == 2
    assert [(g.name, g.exact_matches) for g in report.groups[1:]] == [("(none)", 1), ("code", 3)]
    assert report.summary.exact_match_rate == round(5 / 7, 4)

    check_gate(report.summary, report.groups, report.group_by, 0.7, gate="overall")  # 0.714 passes
    with pytest.raises(ParityGateError) as err:
        check_gate(report.summary, report.groups, report.group_by, 0.7)
    assert str(err.value).startswith("exact-match rate 0.333 in domain 'chat' (1/3 requests, the worst of 3 groups)")
    assert "(overall 0.714;" in str(err.value)

    # The saved report gates the same way through the CLI, and both views open with the groups.
    done = subprocess.run([sys.executable, "-m", "hf2vllm.cli", "report", str(tmp_path), "--min-exact-match", "0.7"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith("error: exact-match rate 0.333 in domain 'chat' (1/3 requests"), done.stderr
    assert done.stdout.index("by domain, worst first") < done.stdout.index("per request")
    assert "chat (worst)" in done.stdout
    html = render_html(report)
    assert html.index('<tr class="group worst" data-group="chat">') < html.index('id="summary"')
