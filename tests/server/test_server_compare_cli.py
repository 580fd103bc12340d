"""`hf2vllm compare --server URL`: HF vs the server through the CLI, journaled, then resumed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def run_compare(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hf2vllm.cli", "compare", *args], capture_output=True, text=True,
                          timeout=1200)


def test_compare_hf_vs_server_journals_and_resume_sends_nothing_twice(vllm_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    journal = tmp_path / "server.jsonl"
    common = ["--server", vllm_server.base_url, "--limit", "3", "--max-new-tokens", "8", "--journal", str(journal),
              "--min-exact-match", "1.0"]
    first = run_compare(*common, "--out", str(tmp_path / "a"))
    assert first.returncode == 0, first.stdout + first.stderr
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert (report["reference"], report["candidate"]) == ("hf", "server")
    assert report["summary"]["exact_matches"] == 3
    server = next(b for b in report["backends"] if b["name"] == "server")
    assert server["options"]["client"]["requests"] == 3
    assert "server: 3 requests sent, 0 retries" in first.stdout
    again = run_compare(*common, "--resume", "--out", str(tmp_path / "b"))
    assert again.returncode == 0, again.stdout + again.stderr
    resumed = json.loads((tmp_path / "b" / "report.json").read_text())
    client = next(b for b in resumed["backends"] if b["name"] == "server")["options"]["client"]
    assert client["resumed_from_journal"] == 3 and client["requests"] == 0
    tokens = [(r["id"], r["candidate_token_ids"]) for r in report["requests"]]
    assert [(r["id"], r["candidate_token_ids"]) for r in resumed["requests"]] == tokens
    lines = journal.read_text().splitlines()
    assert len(lines) == 1 + 3
    refused = run_compare(*common)
    assert refused.returncode == 2 and "already exists: pass --resume" in refused.stderr
