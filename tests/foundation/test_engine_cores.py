"""An offline engine's CPU cores: every core unless the user set vLLM's own binding variables."""

from __future__ import annotations

import os

import pytest

from hf2vllm.backends.vllm_offline import cpu_cores_for_engine


@pytest.fixture
def clean_binding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_CPU_NUM_OF_RESERVED_CPU", raising=False)
    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND", raising=False)


def test_no_core_is_reserved_while_the_engine_spawns_and_the_setting_is_undone_after(clean_binding) -> None:  # type: ignore[no-untyped-def]
    with cpu_cores_for_engine(0):
        assert os.environ["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"
    # A `vllm serve` started later by the same process keeps vLLM's own default (a core for its front end).
    assert "VLLM_CPU_NUM_OF_RESERVED_CPU" not in os.environ


def test_a_binding_set_by_the_user_wins(clean_binding, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "1")
    with cpu_cores_for_engine(0):
        assert "VLLM_CPU_NUM_OF_RESERVED_CPU" not in os.environ
    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND")
    monkeypatch.setenv("VLLM_CPU_NUM_OF_RESERVED_CPU", "1")
    with cpu_cores_for_engine(0):
        assert os.environ["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "1"
    assert os.environ["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "1"


def test_none_leaves_vllm_to_decide(clean_binding) -> None:  # type: ignore[no-untyped-def]
    with cpu_cores_for_engine(None):
        assert "VLLM_CPU_NUM_OF_RESERVED_CPU" not in os.environ
