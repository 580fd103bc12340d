"""docs/translation.md carries the parameter table generated from the code, unedited."""

from __future__ import annotations

from pathlib import Path

from hf2vllm.generation_params import generated_region, render_translation_doc

DOC = Path(__file__).resolve().parents[2] / "docs" / "translation.md"


def test_committed_table_equals_the_generated_table():
    region = generated_region(DOC.read_text(encoding="utf-8"))
    assert region, f"{DOC} lacks the generated block markers"
    assert region == render_translation_doc().strip("\n"), (
        "docs/translation.md is stale: regenerate the block with `python -m hf2vllm.generation_params`"
    )
