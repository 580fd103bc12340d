"""`compare --against REF`: the same verdicts as a live compare, with no HF model loaded, for any candidate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from hf2vllm.parity.run import BackendChoice, CompareOptions, run_compare
from hf2vllm.reference.schema import MANIFEST, REQUESTS
from hf2vllm.server.compare_sides import server_options

pytestmark = [pytest.mark.engine, pytest.mark.server]


def test_the_record_holds_every_request_once_with_logprobs_and_noise(bundled_record: Path, bundled_report) -> None:  # type: ignore[no-untyped-def]
    manifest = json.loads((bundled_record / MANIFEST).read_text())
    lines = [json.loads(x) for x in (bundled_record / REQUESTS).read_text().splitlines()]
    ids = [x["id"] for x in lines[1:]]
    assert manifest["complete"] and manifest["format_version"] == "1.0"
    assert sorted(ids) == sorted(r.id for r in bundled_report.requests) and len(ids) == len(set(ids))
    assert manifest["model"]["weights_sha256"] and manifest["model"]["chat_template_sha256"]
    assert manifest["generation"]["max_new_tokens"] == bundled_report.generation["max_new_tokens"]
    assert manifest["noise"]["noise"] > 0 and manifest["noise"]["prefill_vs_decode"]["tokens"] > 0
    first = lines[1]["payload"]["result"]
    assert len(first["logprobs"]) == len(first["output_token_ids"]) and first["logprobs"][0]["top_logits"]


@pytest.fixture(scope="module")
def against_offline(bundled_record: Path, vllm_backend):  # type: ignore[no-untyped-def]
    return run_compare(CompareOptions(against=bundled_record), backends={"candidate": vllm_backend})


def test_against_gives_the_live_compares_verdicts_request_by_request(against_offline, bundled_report) -> None:  # type: ignore[no-untyped-def]
    live = {r.id: (r.verdict, r.exact_match, r.reference_token_ids) for r in bundled_report.requests}
    recorded = {r.id: (r.verdict, r.exact_match, r.reference_token_ids) for r in against_offline.requests}
    assert recorded == live
    assert against_offline.verdict_method == "record" and against_offline.reference == "record"
    assert against_offline.summary.verdicts == bundled_report.summary.verdicts


def test_against_scores_the_recorded_tokens_on_the_candidate_and_uses_the_recorded_noise(against_offline, bundled_record: Path) -> None:  # type: ignore[no-untyped-def]
    manifest = json.loads((bundled_record / MANIFEST).read_text())
    assert against_offline.noise is not None and against_offline.noise.noise == manifest["noise"]["noise"]
    scored = [r for r in against_offline.requests if r.teacher_forcing is not None]
    assert len(scored) == len(against_offline.requests)
    assert against_offline.run_verdict is not None and against_offline.run_verdict.within_reference_noise
    assert "hf (recorded)" in against_offline.run_verdict.statement
    assert "reference load" in against_offline.stage_seconds and "reference generate" in against_offline.stage_seconds


def test_where_the_candidate_generated_the_recorded_tokens_its_own_logprobs_are_its_teacher_forced_ones(vllm_backend) -> None:  # type: ignore[no-untyped-def]
    """Against a record the candidate scores only the answers that differ (``run._candidate_scores``): for the
    rest its generation logprobs are reused, which must be the logprobs of the same tokens after the same
    prefixes, i.e. what scoring them would give, to float32 rounding (decode vs prefill)."""
    from hf2vllm.parity.run import _candidate_scores, _prepare

    _, _, spec, prepared = _prepare(CompareOptions(limit=6, max_new_tokens=12), {"candidate": BackendChoice(kind="vllm")})
    requests = prepared["candidate"]
    own = vllm_backend.generate(requests, spec)
    reused = _candidate_scores(vllm_backend, requests, own, own, None, 5, reuse_own=True)
    scored = _candidate_scores(vllm_backend, requests, own, own, None, 5, reuse_own=False)
    assert reused.keys() == scored.keys() == {r.id for r in requests}
    for rid, mine in reused.items():
        assert [s.token_id for s in mine.steps] == [s.token_id for s in scored[rid].steps]
        for a, b in zip(mine.steps, scored[rid].steps, strict=True):
            assert abs(a.logprob - b.logprob) < 1e-3
            assert list(a.top)[0] == list(b.top)[0]  # the same best token at every position


def test_against_report_names_the_record_first(against_offline, bundled_record: Path) -> None:  # type: ignore[no-untyped-def]
    from hf2vllm.report.terminal import render_report

    console = Console(record=True, width=200)
    render_report(against_offline, console)
    first = console.export_text().splitlines()[0]
    assert first.startswith("reference: recorded") and str(bundled_record) in first
    assert against_offline.reference_record is not None and against_offline.reference_record.candidate_model_differs is None


def test_against_a_served_deployment(bundled_record: Path, bundled_report, vllm_server) -> None:  # type: ignore[no-untyped-def]
    candidate = BackendChoice(kind="server", options=server_options(vllm_server.base_url, served_model="smollm2-135m"))
    report = run_compare(CompareOptions(against=bundled_record, candidate=candidate))
    assert report.candidate == "server"
    assert {r.id: r.verdict for r in report.requests} == {r.id: r.verdict for r in bundled_report.requests}
    assert sum(r.teacher_forcing is not None for r in report.requests) == len(report.requests)  # prompt_logprobs scoring


def test_a_candidate_side_fault_is_named_against_the_record(bundled_record: Path, vllm_backend) -> None:  # type: ignore[no-untyped-def]
    candidate = BackendChoice(kind="vllm", generation={"repetition_penalty": 1.5})
    report = run_compare(CompareOptions(against=bundled_record, limit=8, candidate=candidate),
                         backends={"candidate": vllm_backend})
    assert "generation_settings_differ" in [c.id for c in report.causes]
    assert report.summary.verdicts["mismatch"] > 0


def test_a_quantised_copy_is_compared_as_a_declared_other_model(bundled_record: Path, bundled_model: Path, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    """The W8A8 copy (its own engine, bfloat16 activations on AMX): allowed only because it is declared,
    and every view says first that the models differ."""
    from hf2vllm.pooling.quantise import build_rtn_w8a8
    from hf2vllm.report.terminal import render_report

    copy = build_rtn_w8a8(bundled_model, tmp_path_factory.mktemp("w8a8") / "smollm2-w8a8")
    candidate = BackendChoice(kind="vllm", options={"model": str(copy.path), "kv_cache_gib": 0.5})
    report = run_compare(CompareOptions(against=bundled_record, limit=12, candidate=candidate))
    record = report.reference_record
    assert record is not None and record.candidate_model_differs and str(copy.path) in record.candidate_model_differs
    assert report.sides[1].dtype == "bfloat16" and "dtype_differs" in [c.id for c in report.causes]
    console = Console(record=True, width=300)
    render_report(report, console)
    assert console.export_text().splitlines()[0].startswith("candidate model differs:")
    from hf2vllm.report.html import render_html

    html = render_html(report)
    assert html.index('id="model-differs"') < html.index("<h1>")
    assert report.summary.requests == 12 and sum(report.summary.verdicts.values()) == 12
