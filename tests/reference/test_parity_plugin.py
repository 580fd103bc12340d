"""The pytest plugin, as a user's CI would run it: an inner pytest session (its own process, the plugin
found through its entry point) checks the shared `vllm serve` against the recorded reference."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
pytestmark = [pytest.mark.server, pytest.mark.slow]


def _inner_tests(pytester: pytest.Pytester, record: Path, server_url: str) -> None:
    pytester.makepyfile(test_inner=f'''
from hf2vllm.testing import assert_parity

REFERENCE = {str(record)!r}
SERVER = {server_url!r}


def test_the_deployment_matches_the_reference(hf2vllm_parity):
    report = hf2vllm_parity(REFERENCE, server=SERVER, served_model="smollm2-135m", limit=10, min_exact_match=1.0)
    assert report.summary.exact_matches == 10


def test_a_repetition_penalty_on_the_server_side_fails_the_gate():
    assert_parity(REFERENCE, server=SERVER, served_model="smollm2-135m", limit=10,
                  vllm_options={{"repetition_penalty": 1.5}})
''')


def test_the_plugin_passes_a_clean_server_and_fails_a_planted_fault_readably(
    pytester: pytest.Pytester, bundled_record: Path, vllm_server
) -> None:  # type: ignore[no-untyped-def]
    _inner_tests(pytester, bundled_record, vllm_server.base_url)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", timeout=600)
    result.assert_outcomes(passed=1, failed=1)
    text = result.stdout.str()
    assert "hf2vllm parity failed (server against" in text
    assert "mismatch verdicts (at most 0 allowed)" in text
    assert "cause generation_settings_differ" in text
    # the first divergent requests, with both tokens and the verdict
    assert " @ " in text and "reference '" in text and "candidate '" in text and "— mismatch" in text
    assert "Traceback" not in text  # pytrace=False: the summary is the whole message
