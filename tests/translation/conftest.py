"""Fixtures of the translation tests: the bundled model's tokenizer directory, without loading weights."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The bundled SmolLM2 checkpoint (built on first use by hf2vllm.models)."""
    from hf2vllm.models import bundled_model_path

    return bundled_model_path()
