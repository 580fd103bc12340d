"""Resumable runs: a client killed with SIGKILL, and a server killed and restarted, mid-run. The
resumed run must end with every request answered exactly once, with the tokens of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hf2vllm.server.journal import read_journal
from hf2vllm.spec import GenerationSpec
from server_support import server_backend

CHILD = Path(__file__).with_name("journaled_run.py")
LIMIT = 8
SPEC = GenerationSpec.greedy(32, [2])


def start_child(base_url: str, journal: Path, spec: GenerationSpec, retries: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), base_url, str(journal), spec.model_dump_json(), str(LIMIT), "2", str(retries)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def wait_for_records(journal: Path, count: int, child: subprocess.Popen[str], timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if journal.is_file() and len(journal.read_bytes().splitlines()) - 1 >= count:
            return
        assert child.poll() is None, f"the run ended before being interrupted: {child.communicate()}"
        time.sleep(0.05)
    raise AssertionError("the journal did not grow")


def uninterrupted(vllm_server, bundled_requests) -> dict[str, list[int]]:  # type: ignore[no-untyped-def]
    results = server_backend(vllm_server, model=None).generate(bundled_requests[:LIMIT], SPEC)
    return {r.request_id: r.output_token_ids for r in results}


def resume_and_check(vllm_server, bundled_requests, journal: Path, spec: GenerationSpec, expected) -> dict:  # type: ignore[no-untyped-def]
    _, before, _ = read_journal(journal)
    assert 0 < len(before) < LIMIT, "the run was not interrupted mid-way"
    backend = server_backend(vllm_server, model=None, journal=journal, resume=True)
    results = backend.generate(bundled_requests[:LIMIT], spec)
    stats = backend.describe()["client"]
    assert stats["resumed_from_journal"] == len(before)
    assert stats["requests"] == LIMIT - len(before), "a request already answered was sent again"
    ids = []
    for line in journal.read_text().splitlines()[1:]:
        try:
            ids.append(json.loads(line)["id"])
        except json.JSONDecodeError:
            continue  # the torn fragment
    assert sorted(ids) == sorted(r.id for r in bundled_requests[:LIMIT]), "lost or duplicated answers"
    assert {r.request_id: r.output_token_ids for r in results} == expected
    return stats


def test_client_killed_with_sigkill_then_resumed_answers_each_request_once(
    vllm_server, bundled_requests, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    spec = SPEC
    expected = uninterrupted(vllm_server, bundled_requests)
    journal = tmp_path / "run.jsonl"
    child = start_child(vllm_server.base_url, journal, spec, retries=6)
    wait_for_records(journal, 2, child)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    with journal.open("ab") as fh:  # what a write cut by the kill leaves behind
        fh.write(b'{"id": "torn-rec')
    resume_and_check(vllm_server, bundled_requests, journal, spec, expected)


def test_server_killed_and_restarted_mid_run_resumed_run_loses_nothing(
    vllm_server, bundled_requests, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    spec = SPEC
    expected = uninterrupted(vllm_server, bundled_requests)
    journal = tmp_path / "run.jsonl"
    child = start_child(vllm_server.base_url, journal, spec, retries=1)
    wait_for_records(journal, 2, child)
    vllm_server.kill()  # the whole server process group, at once
    _, stderr = child.communicate(timeout=120)
    assert child.returncode != 0 and "gave up after 2 attempts" in stderr
    vllm_server.start()  # same port: the same base URL comes back
    resume_and_check(vllm_server, bundled_requests, journal, spec, expected)
