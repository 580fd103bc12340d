"""Realistic migration projects: the doctor finds exactly the planted bugs, and nothing once they are fixed.

Each ``fixtures/<project>`` mixes HF and vLLM code, launch scripts and YAML; every bug is marked in the
file with ``planted: HVDxxx`` (``planted@LINE:`` where a comment cannot sit on the line itself). The
``<project>_fixed`` twin is the same project with every planted bug corrected.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from doctor_support import FIXTURES, planted_bugs

from hf2vllm.doctor import RULES, scan
from hf2vllm.doctor.settings import find_pyproject, load_settings, merge_settings

PROJECTS = ["chat_migration", "vision_pooling", "real_patterns"]


def _doctor(root: Path):
    settings = merge_settings(load_settings(find_pyproject(root)))
    return scan([root], settings, root=root)


@pytest.mark.parametrize("project", PROJECTS)
def test_doctor_finds_exactly_the_planted_bugs(project: str) -> None:
    root = FIXTURES / project
    expected = planted_bugs(root)
    report = _doctor(root)
    found = {(f.path, f.line, f.rule_id) for f in report.findings}
    assert report.parse_errors == []
    assert found == expected


def test_planted_bug_counts_match_the_fixture_design() -> None:
    # Guards the markers themselves: a marker lost in an edit would shrink the expected set silently.
    assert len(planted_bugs(FIXTURES / "chat_migration")) == 27
    assert len(planted_bugs(FIXTURES / "vision_pooling")) == 13
    assert len(planted_bugs(FIXTURES / "real_patterns")) == 12


@pytest.mark.parametrize("project", PROJECTS)
def test_corrected_project_is_clean(project: str) -> None:
    root = FIXTURES / f"{project}_fixed"
    assert planted_bugs(root) == set()
    report = _doctor(root)
    assert report.parse_errors == []
    assert report.findings == []
    assert report.summary.files_scanned == _doctor(FIXTURES / project).summary.files_scanned


def test_fixtures_plant_every_rule_at_least_once() -> None:
    planted = {rule for project in PROJECTS for _, _, rule in planted_bugs(FIXTURES / project)}
    assert planted == {rule.id for rule in RULES}


def test_fixture_projects_are_realistically_large() -> None:
    # real_patterns is a catalogue of the patterns measured in real code (docs/doctor.md), one per line.
    for project in ("chat_migration", "vision_pooling"):
        lines = sum(len(p.read_text(encoding="utf-8").splitlines())
                    for p in (FIXTURES / project).rglob("*") if p.is_file())
        assert lines >= 300, project
