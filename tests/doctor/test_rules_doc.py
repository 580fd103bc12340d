"""docs/rules.md is generated from the rules, and the examples it shows are the ones the doctor is run on."""

from __future__ import annotations

import re
from pathlib import Path

from hf2vllm.doctor import RULES, RULES_BY_ID, DoctorSettings, scan
from hf2vllm.doctor.output.rules_doc import rules_markdown

DOC = Path(__file__).parents[2] / "docs" / "rules.md"
_SECTION = re.compile(r"^## (HVD\d{3}) ", re.M)
_FILE_BLOCK = re.compile(r"`([^`\n]+)`\n\n```[a-z]*\n(.*?)\n```\n", re.S)


def _doc_examples() -> dict[str, dict[str, dict[str, str]]]:
    """{rule id: {"bad"|"good": {file name: content}}} parsed back out of the committed document."""
    text = DOC.read_text(encoding="utf-8")
    starts = [(m.group(1), m.start()) for m in _SECTION.finditer(text)]
    out: dict[str, dict[str, dict[str, str]]] = {}
    for (rule_id, start), (_, end) in zip(starts, [*starts[1:], ("", len(text))], strict=True):
        section = text[start:end]
        bad, good = section.split("**Bad**", 1)[1].split("**Good**", 1)
        out[rule_id] = {
            "bad": {name: body + "\n" for name, body in _FILE_BLOCK.findall(bad)},
            "good": {name: body + "\n" for name, body in _FILE_BLOCK.findall(good)},
        }
    return out


def test_committed_rules_doc_equals_generated_text() -> None:
    assert DOC.read_text(encoding="utf-8") == rules_markdown(), (
        "docs/rules.md is stale: run `hf2vllm doctor --list-rules --format markdown -o docs/rules.md`")


def test_doc_shows_every_rule_with_its_own_examples() -> None:
    examples = _doc_examples()
    assert list(examples) == [rule.id for rule in RULES]
    for rule in RULES:
        assert examples[rule.id]["bad"] == {f.name: f.content for f in rule.bad.files}
        assert examples[rule.id]["good"] == {f.name: f.content for f in rule.good.files}


def test_examples_read_from_the_doc_behave_as_documented(tmp_path: Path) -> None:
    for rule_id, kinds in _doc_examples().items():
        for kind, files in kinds.items():
            root = tmp_path / rule_id / kind
            root.mkdir(parents=True)
            for name, content in files.items():
                (root / name).write_text(content, encoding="utf-8")
            found = {f.rule_id for f in scan([root], DoctorSettings(), root=root).findings}
            assert found == ({rule_id} if kind == "bad" else set()), (rule_id, kind)
    assert set(_doc_examples()) == set(RULES_BY_ID)
