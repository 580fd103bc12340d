"""Inline ``# hf2vllm: ignore[...]`` suppressions, checked as properties over generated inputs."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from hf2vllm.doctor import DoctorSettings, scan
from hf2vllm.doctor.suppressions import hash_comment_suppressions, is_suppressed, python_suppressions

# One SamplingParams call that triggers HVD001 (max_new_tokens) and HVD002 (a misspelt field).
LINE = "params = SamplingParams(max_new_tokens=8, temprature=0.0)"
ALL = {"HVD001", "HVD002"}


def _scan_source(tmp_path: Path, source: str) -> set[str]:
    (tmp_path / "gen.py").write_text(source, encoding="utf-8")
    return {f.rule_id for f in scan([tmp_path], DoctorSettings(), root=tmp_path).findings}


@settings(max_examples=40, deadline=None)
@given(
    listed=st.lists(st.sampled_from(["HVD001", "HVD002", "HVD101", "HVD017"]), max_size=4),
    spacing=st.sampled_from(["", " ", "  "]),
    case=st.sampled_from([str.upper, str.lower]),
)
def test_suppression_removes_exactly_the_listed_rules(tmp_path_factory, listed, spacing, case) -> None:
    tmp_path = tmp_path_factory.mktemp("sup")
    comment = f"#{spacing}hf2vllm:{spacing}ignore[{', '.join(case(r) for r in listed)}]" if listed else ""
    source = f"from vllm import SamplingParams\n{LINE}  {comment}\n"
    assert _scan_source(tmp_path, source) == ALL - set(listed)


def test_bare_ignore_suppresses_every_rule_on_the_line(tmp_path: Path) -> None:
    assert _scan_source(tmp_path, f"from vllm import SamplingParams\n{LINE}  # hf2vllm: ignore\n") == set()


def test_suppression_on_another_line_does_not_apply(tmp_path: Path) -> None:
    source = f"from vllm import SamplingParams\n# hf2vllm: ignore[HVD001]\n{LINE}\n"
    assert _scan_source(tmp_path, source) == ALL


def test_marker_inside_a_string_is_not_a_comment(tmp_path: Path) -> None:
    source = f"from vllm import SamplingParams\n{LINE}; note = '# hf2vllm: ignore[HVD001]'\n"
    assert _scan_source(tmp_path, source) == ALL


def test_suppression_anywhere_in_a_multiline_finding_applies(tmp_path: Path) -> None:
    source = (
        "from transformers import AutoModelForCausalLM\nfrom vllm import SamplingParams\n"
        "model = AutoModelForCausalLM.from_pretrained('gpt2')\n"
        "out = model.generate(ids, do_sample=False)\n"
        "params = SamplingParams(\n    max_tokens=8,\n)  # hf2vllm: ignore[HVD005]\n"
    )
    assert _scan_source(tmp_path, source) == set()


def test_shell_and_yaml_suppressions(tmp_path: Path) -> None:
    (tmp_path / "serve.sh").write_text("vllm serve m --enforce-eager  # hf2vllm: ignore[HVD101]\n",
                                       encoding="utf-8")
    (tmp_path / "cfg.yaml").write_text("model: m\nenforce-eager: true  # hf2vllm: ignore[HVD101]\n",
                                       encoding="utf-8")
    report = scan([tmp_path], DoctorSettings(), root=tmp_path)
    assert report.findings == [] and report.summary.suppressed == 2


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_suppression_parsers_never_crash_on_arbitrary_text(text: str) -> None:
    for table in (python_suppressions(text), hash_comment_suppressions(text)):
        for line, rules in table.items():
            assert line >= 1 and rules
            assert is_suppressed(table, next(iter(rules)).replace("*", "HVD001"), line, None)
