"""check-server against the real server, and each connection failure told apart with its fix."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from hf2vllm.server.diagnostics import CheckOptions, check_server
from hf2vllm.server.launch import free_port


def test_check_server_passes_on_the_real_server_and_reports_what_it_serves(vllm_server, bundled_model):  # type: ignore[no-untyped-def]
    from hf2vllm.parity.run import model_context_length

    proc = subprocess.run(
        [sys.executable, "-m", "hf2vllm.cli", "check-server", vllm_server.base_url, "--json", "--timeout", "120",
         "--require", "prompt_logprobs", "--require", "streaming"],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert report["passed"] and report["model"] == vllm_server.model_name
    for name in ("connection", "model", "completion", "chat", "logprobs", "prompt_logprobs", "streaming"):
        assert checks[name]["passed"], checks[name]
    assert checks["max_model_len"]["value"] == model_context_length(bundled_model)
    assert checks["prefix_caching"]["value"] in (True, False)  # detected either way, never "unknown" on vLLM


def first_failure(url: str, **options) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    report = check_server(CheckOptions(base_url=url, **options))
    assert not report.passed
    failed = next(c for c in report.checks if not c.passed)
    assert failed.fix
    return str(failed.diagnosis), failed.fix


def test_refused_connection_is_diagnosed() -> None:
    kind, fix = first_failure(f"http://127.0.0.1:{free_port()}/v1")
    assert kind == "refused" and "start the server" in fix


def test_a_silent_listener_is_a_timeout() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        kind, fix = first_failure(f"http://127.0.0.1:{sock.getsockname()[1]}/v1", timeout_s=1.0)
    assert kind == "timeout" and "--timeout" in fix


def test_https_against_a_plain_http_server_is_a_tls_failure(vllm_server) -> None:  # type: ignore[no-untyped-def]
    kind, fix = first_failure(vllm_server.base_url.replace("http://", "https://"))
    assert kind == "tls" and "http://" in fix


def test_base_url_without_v1_is_tried_with_v1_and_said_so(vllm_server) -> None:  # type: ignore[no-untyped-def]
    root = vllm_server.base_url.removesuffix("/v1")
    report = check_server(CheckOptions(base_url=root, timeout_s=120))
    connection = next(c for c in report.checks if c.name == "connection")
    assert connection.passed and f"so {vllm_server.base_url} was tried and is used" in connection.detail
    assert report.base_url == vllm_server.base_url
    kind, _ = first_failure(vllm_server.base_url + "/openai")
    assert kind == "wrong_path"


def test_a_model_name_not_served_is_named(vllm_server) -> None:  # type: ignore[no-untyped-def]
    kind, fix = first_failure(vllm_server.base_url, model="gpt-4o")
    assert kind == "model_not_served" and vllm_server.model_name in fix


@pytest.mark.parametrize("url", ["127.0.0.1:8000/v1"])
def test_a_url_without_scheme_is_a_one_line_input_error(url: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "hf2vllm.cli", "check-server", url], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: URL {url!r}: give the scheme, e.g. http://{url}"
