"""Shared pieces of the server tests: the bundled prompts prepared once, and the parity spec."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def bundled_requests(bundled_model, tokenizer, bundled_max_new_tokens):  # type: ignore[no-untyped-def]
    """The bundled prompt set, tokenised once, exactly as ``bundled_report`` was made."""
    from hf2vllm.parity.run import CompareOptions, prepare_prompt_set

    return prepare_prompt_set(CompareOptions(max_new_tokens=bundled_max_new_tokens), bundled_model, tokenizer)
