"""Fixtures of the doctor tests (helpers live in doctor_support.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from doctor_support import FIXTURES


@pytest.fixture
def fixture_copy(tmp_path: Path):
    """Copy a fixture project into tmp_path (so --fix and pyproject lookups stay inside the test)."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(FIXTURES / name, target)
        return target

    return copy
