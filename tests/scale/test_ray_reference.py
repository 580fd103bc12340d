"""`hf2vllm record --ray-workers N`: the HF reference sharded over a local Ray cluster of two workers gives
the single-process reference request by request, loses and repeats nothing when a worker is killed mid-run,
and resumes after its driver dies (docs/scale.md)."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from recorded_answers import LOGPROB_ROUNDING, journal_ids, same_answers

from hf2vllm.reference.schema import MANIFEST
from hf2vllm.reference.store import read_manifest


def kill_a_busy_worker() -> Callable[[str, int], Callable[[int], None]]:
    """A progress factory that SIGKILLs a Ray worker process of this test (one running a batch) as soon as
    the first batch arrives at the driver, so the other worker's batch is in flight when it dies."""
    import psutil

    def factory(label: str, total: int) -> Callable[[int], None]:
        killed: list[int] = []

        def advance(n: int) -> None:
            if killed:
                return
            workers = [p for p in psutil.Process().children(recursive=True)
                       if any("ReferenceWorker" in part for part in _cmdline(p))]
            busy = [p for p in workers if any("generate" in part for part in _cmdline(p))] or workers
            assert busy, "no Ray worker process found"
            os.kill(busy[0].pid, signal.SIGKILL)
            killed.append(busy[0].pid)

        return advance

    return factory


def _cmdline(proc) -> list[str]:  # type: ignore[no-untyped-def]
    import psutil

    try:
        return proc.cmdline()
    except psutil.Error:
        return []


@pytest.mark.slow
def test_two_workers_one_killed_mid_run_record_the_same_reference_as_one_process(
    ray_cluster: None, one_process_reference: Path, scale_record: dict, tmp_path: Path,
) -> None:
    from hf2vllm.reference.record import record

    out = tmp_path / "ray"
    statuses: list[str] = []
    manifest = record(out, ray_workers=2, progress=kill_a_busy_worker(), on_status=statuses.append, **scale_record)
    assert manifest.complete and manifest.backend_options["ray_workers"] == 2
    assert any("worker died" in s for s in statuses), statuses  # its batch went to the other worker
    ids = journal_ids(out)
    assert len(ids) == len(set(ids)) == 50  # nothing lost, nothing twice
    assert same_answers(out, one_process_reference) == []
    expected_noise = read_manifest(one_process_reference).noise
    assert manifest.noise is not None and expected_noise is not None
    assert manifest.noise.noise == pytest.approx(expected_noise.noise, abs=LOGPROB_ROUNDING)
    assert manifest.run_key == read_manifest(one_process_reference).run_key


@pytest.mark.slow
def test_a_record_whose_driver_died_resumes_in_one_process_with_the_same_answers(
    ray_cluster: None, one_process_reference: Path, scale_record: dict, tmp_path: Path,
) -> None:
    from hf2vllm.backends.hf import torch_threads
    from hf2vllm.reference.record import record

    class DriverDied(Exception):
        pass

    def dies_after_two_batches(label: str, total: int) -> Callable[[int], None]:
        arrived: list[int] = []

        def advance(n: int) -> None:
            arrived.append(n)
            if len(arrived) == 2:
                raise DriverDied

        return advance

    out = tmp_path / "ray"
    with pytest.raises(DriverDied):
        record(out, ray_workers=2, progress=dies_after_two_batches, **scale_record)
    kept = journal_ids(out)
    assert 0 < len(kept) < 50 and json.loads((out / MANIFEST).read_text())["complete"] is False
    with torch_threads(1):
        manifest = record(out, resume=True, **scale_record)  # no Ray now: the run key does not depend on it
    ids = journal_ids(out)
    assert ids[: len(kept)] == kept and len(ids) == len(set(ids)) == 50
    assert manifest.complete
    assert same_answers(out, one_process_reference) == []


def test_ray_address_without_workers_is_refused_before_anything_loads(tmp_path: Path) -> None:
    from hf2vllm.errors import InputError
    from hf2vllm.reference.record import record

    with pytest.raises(InputError, match="--ray-workers"):
        record(tmp_path / "ref", ray_address="auto")


def test_without_the_ray_extra_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from hf2vllm.errors import BackendUnavailableError
    from hf2vllm.reference.ray_workers import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(BackendUnavailableError, match=r"\.\[ray\]"):
        import_ray()
