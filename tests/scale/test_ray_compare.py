"""`hf2vllm compare --ray-workers N`: compare's reference side on a local Ray cluster of two workers. The reference
is recorded (the one-process answers, request by request), resumed after the driver dies, and the candidate gets
the verdicts of a compare against the one-process record (docs/scale.md)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from recorded_answers import journal_ids, same_answers
from rich.console import Console

import hf2vllm
from hf2vllm.errors import InputError
from hf2vllm.reference.schema import MANIFEST

pytestmark = [pytest.mark.engine, pytest.mark.slow]


class DriverDied(Exception):
    pass


def dies_after_two_batches(label: str, total: int) -> Callable[[int], None]:
    arrived: list[int] = []

    def advance(n: int) -> None:
        if label == "hf record":
            arrived.append(n)
            if len(arrived) == 2:
                raise DriverDied

    return advance


@pytest.fixture(scope="module")
def on_ray(ray_cluster: None, vllm_backend, scale_record: dict[str, Any], tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One compare whose driver dies while the reference is being recorded on Ray, then the same command
    again: (folder, statuses of the second run, its report)."""
    out = tmp_path_factory.mktemp("ray-compare") / "run"
    run = {"ray_workers": 2, "out": out, "backends": {"candidate": vllm_backend}, **scale_record}
    with pytest.raises(DriverDied):
        hf2vllm.compare(progress=dies_after_two_batches, **run)
    kept = journal_ids(out / "reference")
    assert 0 < len(kept) < 50 and json.loads((out / "reference" / MANIFEST).read_text())["complete"] is False
    statuses: list[str] = []
    report = hf2vllm.compare(on_status=statuses.append, **run)
    return out, kept, statuses, report


def test_the_reference_on_ray_resumes_and_equals_one_process_request_by_request(on_ray, one_process_reference: Path) -> None:  # type: ignore[no-untyped-def]
    out, kept, statuses, _ = on_ray
    ids = journal_ids(out / "reference")
    assert ids[: len(kept)] == kept and len(ids) == len(set(ids)) == 50  # nothing lost, nothing twice
    assert any("2 hf reference workers on Ray" in s for s in statuses), statuses
    assert same_answers(out / "reference", one_process_reference) == []


def test_compare_on_ray_gives_the_verdicts_of_a_compare_against_the_one_process_record(on_ray, one_process_reference: Path, vllm_backend) -> None:  # type: ignore[no-untyped-def]
    _, _, _, report = on_ray
    against = hf2vllm.compare(against=one_process_reference, backends={"candidate": vllm_backend})
    assert report.verdict_method == "record"
    mine = {r.id: (r.verdict, r.reference_token_ids, r.candidate_token_ids) for r in report.requests}
    theirs = {r.id: (r.verdict, r.reference_token_ids, r.candidate_token_ids) for r in against.requests}
    assert mine == theirs and len(mine) == 50


def test_the_report_says_this_run_recorded_the_reference_on_ray(on_ray) -> None:  # type: ignore[no-untyped-def]
    from hf2vllm.report.terminal import render_report

    out, _, _, report = on_ray
    record = report.reference_record
    assert record is not None and record.recorded_by_this_run and record.kept and record.ray_workers == 2
    on_disk = json.loads((out / "report.json").read_text())["reference_record"]
    assert on_disk["recorded_by_this_run"] is True and on_disk["ray_workers"] == 2
    console = Console(record=True, width=300)
    render_report(report, console)
    first = console.export_text().splitlines()[0]
    assert first.startswith(f"reference: recorded by this run on 2 Ray workers in {out / 'reference'}"), first
    assert "Reference recorded by this run on 2 Ray workers" in (out / "report.html").read_text()


def test_a_second_run_reuses_the_complete_record_without_starting_ray(on_ray, vllm_backend, scale_record) -> None:  # type: ignore[no-untyped-def]
    out, _, _, report = on_ray
    statuses: list[str] = []
    again = hf2vllm.compare(ray_workers=2, out=out, backends={"candidate": vllm_backend}, on_status=statuses.append,
                            **scale_record)
    assert not any("Ray" in s for s in statuses), statuses
    assert [r.verdict for r in again.requests] == [r.verdict for r in report.requests]


def test_a_reference_dir_holding_other_inputs_is_refused_naming_the_difference(on_ray, vllm_backend, scale_record) -> None:  # type: ignore[no-untyped-def]
    out, _, _, _ = on_ray
    changed = {**scale_record, "max_new_tokens": 5}
    with pytest.raises(InputError, match=r"--reference-dir: .* recorded with other inputs .*max_new_tokens 5 here, 4 recorded"):
        hf2vllm.compare(ray_workers=2, reference_dir=out / "reference", backends={"candidate": vllm_backend}, **changed)
