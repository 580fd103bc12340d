"""`hf2vllm translate` without --model: what the user wrote keeps its meaning in both directions, and the
eos ids (which only the model knows) are left to the model on both sides, with a note saying so."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from hf2vllm.translation import translate_hf, translate_vllm

EOS_NOTE = "eos ids: no --model, so the model supplies them"


def test_min_new_tokens_stays_min_tokens_without_a_model() -> None:
    translation = translate_hf({"min_new_tokens": 5, "max_new_tokens": 32})
    assert translation.vllm["min_tokens"] == 5 and translation.vllm["max_tokens"] == 32
    # vLLM adds the model's eos ids itself (ignore_eos=False); generate() takes them from the model.
    assert translation.vllm["ignore_eos"] is False and translation.vllm["stop_token_ids"] == []
    for body in translation.openai.values():
        assert body["min_tokens"] == 5 and body["ignore_eos"] is False
    assert translation.hf["min_new_tokens"] == 5 and "eos_token_id" not in translation.hf
    assert any(note.startswith(EOS_NOTE) for note in translation.notes)


def test_reverse_direction_translates_without_a_model_too() -> None:
    translation = translate_vllm({"min_tokens": 5, "max_tokens": 32, "temperature": 0})
    assert translation.hf["min_new_tokens"] == 5 and translation.hf["max_new_tokens"] == 32
    assert "eos_token_id" not in translation.hf and translation.hf["do_sample"] is False
    assert translation.vllm["min_tokens"] == 5 and translation.vllm["ignore_eos"] is False
    assert any(note.startswith(EOS_NOTE) for note in translation.notes)


def test_eos_ids_written_by_the_user_are_translated_exactly() -> None:
    translation = translate_hf({"min_new_tokens": 5, "max_new_tokens": 32, "eos_token_id": [7, 9]})
    assert translation.vllm["stop_token_ids"] == [7, 9] and translation.vllm["ignore_eos"] is True
    assert translation.vllm["min_tokens"] == 5
    assert not any(note.startswith(EOS_NOTE) for note in translation.notes)


def test_with_a_model_its_eos_ids_are_stated(model_dir: Path) -> None:
    translation = translate_hf({"min_new_tokens": 5, "max_new_tokens": 32}, model=model_dir)
    assert translation.vllm["stop_token_ids"] == [2] and translation.vllm["ignore_eos"] is True
    assert translation.vllm["min_tokens"] == 5 and translation.hf["eos_token_id"] == [2]
    assert not any(note.startswith(EOS_NOTE) for note in translation.notes)


@pytest.mark.parametrize("direction", [["--hf", '{"min_new_tokens": 5, "max_new_tokens": 32}'],
                                       ["--vllm", '{"min_tokens": 5, "max_tokens": 32}']])
def test_cli_keeps_min_tokens_in_both_directions(direction: list[str], monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from hf2vllm.cli import main

    monkeypatch.setattr(sys, "argv", ["hf2vllm", "translate", *direction, "--format", "json"])
    with pytest.raises(SystemExit) as done:
        main()
    out = capsys.readouterr()
    assert done.value.code == 0, out.err
    payload = json.loads(out.out)
    assert payload["vllm"]["min_tokens"] == 5 and payload["hf"]["min_new_tokens"] == 5
    assert any(note.startswith(EOS_NOTE) for note in payload["notes"])
