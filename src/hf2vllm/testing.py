"""hf2vllm as a CI gate: a pytest plugin (entry point ``pytest11``) and ``assert_parity``.

In a test suite, with a reference recorded once (``hf2vllm record --out tests/reference``) and kept in
the repository::

    def test_vllm_still_matches_hf(hf2vllm_parity):
        hf2vllm_parity("tests/reference", min_exact_match=0.98)          # offline vLLM, this environment

    def test_the_deployment_matches_hf():
        from hf2vllm.testing import assert_parity
        assert_parity("tests/reference", server="http://127.0.0.1:8000/v1")

A failure's message is the verdict summary and the first divergent requests (id, position, the two
tokens, verdict and cause), so the CI log says what broke without opening the report. docs/ci.md shows a
CI job. Installing hf2vllm registers the plugin; importing it loads nothing heavy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from hf2vllm.report.schema import CompareReport

FIRST_DIVERGENT = 5
"""Divergent requests a failure message lists (the report has them all)."""


def assert_parity(
    reference: str | Path,
    *,
    server: str | None = None,
    served_model: str | None = None,
    api_key_env: str | None = None,
    vllm_model: str | Path | None = None,
    vllm_options: Mapping[str, Any] | None = None,
    limit: int | None = None,
    max_mismatches: int | None = 0,
    min_exact_match: float | None = None,
    gate: str = "worst-group",
    out: str | Path | None = None,
    backends: Mapping[str, Any] | None = None,
) -> CompareReport:
    """Check a candidate against the recorded ``reference`` (``hf2vllm.compare(against=...)``); fail the
    test with the verdict summary when it does not hold. Returns the report when it does.

    The candidate is the offline vLLM engine of this environment (``vllm_options``: its engine arguments
    and deliberate differences, e.g. ``{"kv_cache_dtype": "fp8"}``; ``vllm_model``: a declared other
    checkpoint such as a quantised copy), or ``server=URL`` for a served deployment. Gates:
    ``max_mismatches`` (default 0: near ties, which the reference's own noise explains, pass; a real
    mismatch fails) and ``min_exact_match`` on the worst group (``gate="overall"``: on the whole run).
    """
    __tracebackhide__ = True
    from hf2vllm.api import compare
    from hf2vllm.errors import ParityGateError
    from hf2vllm.parity.groups import check_gate

    report = compare(
        against=reference, server=server, served_model=served_model, api_key_env=api_key_env, vllm_model=vllm_model,
        vllm_options=dict(vllm_options) if vllm_options else None, limit=limit, out=out,
        backends=dict(backends) if backends else None,
    )
    failures = []
    mismatches = report.summary.verdicts.get("mismatch", 0)
    if max_mismatches is not None and mismatches > max_mismatches:
        failures.append(f"{mismatches} mismatch verdicts (at most {max_mismatches} allowed)")
    try:
        check_gate(report.summary, report.groups, report.group_by, min_exact_match, gate)  # type: ignore[arg-type]
    except ParityGateError as err:
        failures.append(str(err).replace("--min-exact-match", "min_exact_match").replace(
            "--gate overall", 'gate="overall"'))
    if failures:
        pytest.fail(failure_message(report, failures), pytrace=False)
    return report


def failure_message(report: CompareReport, failures: list[str]) -> str:
    """The verdict summary a failed gate prints: what failed, the counts, the causes, the first divergences."""
    s = report.summary
    who = f"{report.candidate} against {report.reference_record.path if report.reference_record else report.reference}"
    lines = [f"hf2vllm parity failed ({who}): " + "; ".join(failures),
             f"  {s.exact_matches}/{s.requests} exact ({s.exact_match_rate:.1%}) · verdicts "
             + ", ".join(f"{v} {n}" for v, n in s.verdicts.items())]
    if report.reference_record and report.reference_record.candidate_model_differs:
        lines.insert(1, f"  {report.reference_record.candidate_model_differs}")
    if report.run_verdict:
        lines.append(f"  {report.run_verdict.statement}")
    for cause in report.causes:
        lines.append(f"  cause {cause.id}: {cause.title} "
                     f"({f'{len(cause.requests)} requests' if cause.requests else 'run-wide'})"
                     + (f" — {cause.evidence[0]}" if cause.evidence else ""))
    divergent = [r for r in report.requests if not r.exact_match]
    for row in divergent[:FIRST_DIVERGENT]:
        lines.append(f"  {row.id} @ {row.first_divergence}: reference {row.reference_token_at_divergence!r} vs "
                     f"candidate {row.candidate_token_at_divergence!r} — {row.verdict}"
                     + (f" ({', '.join(row.causes)})" if row.causes else ""))
    if len(divergent) > FIRST_DIVERGENT:
        lines.append(f"  ... and {len(divergent) - FIRST_DIVERGENT} more divergent requests")
    return "\n".join(lines)


@pytest.fixture
def hf2vllm_parity() -> Callable[..., CompareReport]:
    """``assert_parity`` as a fixture: ``hf2vllm_parity("tests/reference", min_exact_match=0.98)``."""
    return assert_parity
