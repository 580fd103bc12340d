"""docs/api.md is executable: its ```python blocks run in order, in one namespace, against the real
bundled model, HF and the vLLM engine (the session's, passed through ``compare(backends=...)``)."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.engine

API_DOC = Path(__file__).parents[2] / "docs" / "api.md"


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", markdown, flags=re.S | re.M)


def test_every_python_example_in_the_api_doc_runs(hf_backend, vllm_backend, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import hf2vllm.api

    runs = []

    @functools.wraps(hf2vllm.api.compare)
    def compare_on_session_backends(*args, **kwargs):  # type: ignore[no-untyped-def]
        runs.append(kwargs)
        given = {"candidate": vllm_backend} if kwargs.get("against") else {"reference": hf_backend, "candidate": vllm_backend}
        return real_compare(*args, backends=given, **kwargs)

    @functools.wraps(hf2vllm.api.record)
    def record_on_session_backend(*args, **kwargs):  # type: ignore[no-untyped-def]
        return real_record(*args, backend=hf_backend, **kwargs)

    real_compare, real_record = hf2vllm.api.compare, hf2vllm.api.record
    monkeypatch.setattr(hf2vllm.api, "compare", compare_on_session_backends)
    monkeypatch.setattr(hf2vllm.api, "record", record_on_session_backend)
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(API_DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 4
    namespace: dict[str, object] = {}
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"docs/api.md (python block {number})", "exec"), namespace)  # noqa: S102
    report = namespace["report"]
    assert report.summary.requests == 3  # type: ignore[attr-defined]
    assert (tmp_path / "runs" / "api" / "report.json").is_file()
    assert (tmp_path / "runs" / "api" / "report.html").is_file()
    assert [r.get("limit") for r in runs] == [3, None, None, None]  # compare, against, refused against, refused
    assert namespace["checked"].verdict_method == "record"  # type: ignore[attr-defined]
    assert (tmp_path / "runs" / "reference" / "manifest.json").is_file()
