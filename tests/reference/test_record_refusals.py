"""`hf2vllm record` and `compare --against` as a user runs them: a record that is not this run is refused
(exit 2, the difference named) before anything loads, and a killed record resumes without duplicates."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hf2vllm.reference.schema import MANIFEST, REQUESTS

pytestmark = pytest.mark.slow  # records in subprocesses (HF loads)

HF2VLLM = [str(Path(sys.executable).parent / "hf2vllm")]
RECORD = ["--limit", "6", "--max-new-tokens", "6", "--hf-batch-size", "1"]


def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HF2VLLM, *args], capture_output=True, text=True, timeout=timeout)


def journal_ids(folder: Path) -> list[str]:
    lines = (folder / REQUESTS).read_text().splitlines()
    return [json.loads(line)["id"] for line in lines[1:] if line.strip()]


@pytest.fixture(scope="module")
def small_record(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Recorded, killed with SIGKILL after its second answer, then resumed: the record the refusals use."""
    out = tmp_path_factory.mktemp("record") / "ref"
    proc = subprocess.Popen([*HF2VLLM, "record", "--out", str(out), *RECORD], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / REQUESTS).is_file() and len(journal_ids(out)) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "record finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    killed_at = journal_ids(out)
    assert 2 <= len(killed_at) < 6
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["complete"] is False
    refused = run("compare", "--against", str(out))
    assert refused.returncode == 2 and "incomplete" in refused.stderr and "--resume" in refused.stderr
    again = run("record", "--out", str(out), *RECORD)
    assert again.returncode == 2 and "pass --resume" in again.stderr
    resumed = run("record", "--out", str(out), *RECORD, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    ids = journal_ids(out)
    assert ids[: len(killed_at)] == killed_at  # kept, not redone
    assert len(ids) == len(set(ids)) == 6
    assert json.loads((out / MANIFEST).read_text())["complete"] is True
    return out


def test_a_killed_record_resumes_without_duplicates(small_record: Path) -> None:
    ids = journal_ids(small_record)
    assert len(ids) == 6 and len(set(ids)) == 6


def test_resume_with_other_settings_is_refused_naming_them(small_record: Path) -> None:
    result = run("record", "--out", str(small_record), "--limit", "6", "--max-new-tokens", "7", "--resume")
    assert result.returncode == 2
    assert "max_new_tokens 7 here, 6 recorded" in result.stderr


def model_copy(source: Path, target: Path) -> Path:
    """A copy of the model dir whose weight file is a link (cheap); edited files are real copies."""
    target.mkdir(parents=True)
    for item in source.iterdir():
        if item.suffix == ".safetensors":
            (target / item.name).symlink_to(item)
        else:
            shutil.copy(item, target / item.name)
    return target


def refusal(*args: str) -> str:
    result = run("compare", *args, timeout=300)
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --"), result.stderr
    return lines[0]


def test_a_changed_chat_template_is_refused(small_record: Path, bundled_model: Path, tmp_path: Path) -> None:
    copy = model_copy(bundled_model, tmp_path / "model")
    template = copy / "chat_template.jinja"
    template.write_text(template.read_text().replace("<|im_start|>", "<|im_start|> "))
    line = refusal("--against", str(small_record), "--model", str(copy))
    assert "chat template differs" in line and "model weights differ" not in line


def test_changed_model_weights_are_refused_unless_declared(small_record: Path, tmp_path: Path) -> None:
    tampered = tmp_path / "ref"
    shutil.copytree(small_record, tampered)
    manifest = json.loads((tampered / MANIFEST).read_text())
    manifest["model"]["weights_sha256"] = "0" * 64
    manifest["model"]["weight_files"] = {"model.safetensors": "0" * 64}
    (tampered / MANIFEST).write_text(json.dumps(manifest))
    line = refusal("--against", str(tampered))
    assert "model weights differ (model.safetensors" in line and "--vllm-model" in line


def test_another_prompt_file_is_refused(small_record: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"id": "a", "prompt": "Once upon a time"}\n')
    line = refusal("--against", str(small_record), "--prompts", str(prompts))
    assert "prompt file differs" in line


def test_other_settings_and_reference_side_options_are_refused(small_record: Path) -> None:
    assert "max_new_tokens 9 here, 6 recorded" in refusal("--against", str(small_record), "--max-new-tokens", "9")
    assert "--hf-option with --against" in refusal("--against", str(small_record), "--hf-option", "add_bos_token=true")
    assert "asks for more requests than the record holds (6)" in refusal("--against", str(small_record), "--limit", "7")


def test_not_a_record_is_refused(tmp_path: Path) -> None:
    line = refusal("--against", str(tmp_path))
    assert "not a reference directory" in line and "hf2vllm record --out" in line


def test_committed_format_doc_equals_the_generated_one() -> None:
    from hf2vllm.reference.schema_doc import render_format_doc

    committed = (Path(__file__).parents[2] / "docs" / "reference-format.md").read_text(encoding="utf-8")
    assert committed == render_format_doc(), "regenerate: python -m hf2vllm.reference.schema_doc > docs/reference-format.md"
