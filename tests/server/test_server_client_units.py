"""The served path's pure parts: retry timing, request bodies, reply parsing, the journal, diagnosis,
serve flags. No server needed."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from email.utils import formatdate
from pathlib import Path

import pytest

from hf2vllm.backends.openai_server import reply_to_result
from hf2vllm.errors import InputError
from hf2vllm.server.client import ServerReply, backoff_wait, completion_body, parse_retry_after, redact
from hf2vllm.server.compare_sides import resolve_sides, server_options
from hf2vllm.server.diagnostics import diagnose_status, logprob_problems
from hf2vllm.server.journal import Journal, read_journal, run_fingerprint
from hf2vllm.server.launch import serve_args_for, strip_flags
from hf2vllm.spec import GenerationSpec


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = 1_700_000_000.0
    assert parse_retry_after(formatdate(now + 10, usegmt=True), now=now) == pytest.approx(10, abs=1)


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    rng = random.Random(0)
    waits = [[backoff_wait(attempt, 0.5, 4.0, rng) for _ in range(200)] for attempt in (1, 2, 3, 6)]
    assert all(0 <= w <= 0.5 for w in waits[0])
    assert all(0 <= w <= 1.0 for w in waits[1]) and max(waits[1]) > 0.5
    assert all(0 <= w <= 4.0 for w in waits[3]) and max(waits[3]) > 2.0  # capped at backoff_max


def test_redact_hides_the_key_everywhere() -> None:
    assert redact("Authorization: Bearer sk-123 failed for sk-123", ["sk-123"]) == "Authorization: Bearer *** failed for ***"
    assert redact("nothing", [None, ""]) == "nothing"


def test_completion_body_sends_prompt_ids_and_every_sampling_field() -> None:
    spec = GenerationSpec.greedy(16, [2]).model_copy(update={"logprobs": 3})
    body = completion_body([1, 2, 3], spec, "m")
    assert body["prompt"] == [1, 2, 3] and body["model"] == "m"
    assert body["temperature"] == 0.0 and body["max_tokens"] == 16 and body["logprobs"] == 3
    assert body["stop_token_ids"] == [2] and body["ignore_eos"] is True
    assert body["return_tokens_as_token_ids"] is True and "stream" not in body
    streamed = completion_body([1], GenerationSpec.greedy(4), "m", stream=True)
    assert streamed["stream"] is True and streamed["logprobs"] == 0  # ids travel in the logprobs of a stream


def test_reply_keeps_the_k_best_alternatives_like_the_offline_backend() -> None:
    body = {"choices": [{"text": "ab", "finish_reason": "length", "logprobs": {
        "tokens": ["token_id:7", "token_id:9"],
        "token_logprobs": [-0.1, -3.0],
        "top_logprobs": [{"token_id:7": -0.1, "token_id:8": -2.5},
                         # chosen token ranked below k=2: the server adds it; it must not count as top-2
                         {"token_id:5": -0.2, "token_id:6": -1.0, "token_id:9": -3.0}],
    }}]}
    result = reply_to_result(ServerReply(request_id="r", status=200, body=body, latency_s=0.1), top_k=2)
    assert result.output_token_ids == [7, 9]
    assert result.logprobs is not None
    assert result.logprobs[0].top == {7: -0.1, 8: -2.5}
    assert result.logprobs[1].top == {5: -0.2, 6: -1.0} and result.logprobs[1].logprob == -3.0


def test_journal_survives_a_torn_last_line_and_keeps_one_answer_per_id(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    key = run_fingerprint("m", [1, 2])
    with Journal.open(path, run_key=key, resume=False) as journal:
        assert journal.append("a", {"x": 1})
        assert not journal.append("a", {"x": 2})  # already answered: nothing written
    with path.open("ab") as fh:
        fh.write(b'{"id": "b", "payl')  # the process died mid-write
    with Journal.open(path, run_key=key, resume=True) as journal:
        assert journal.done == {"a": {"x": 1}} and journal.torn_lines == 1
        journal.append("b", {"x": 3})
    header, done, torn = read_journal(path)
    assert header.run_key == key and done == {"a": {"x": 1}, "b": {"x": 3}} and torn == 1


def test_journal_refuses_another_run_and_an_accidental_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    Journal.open(path, run_key="one", resume=False).close()
    with pytest.raises(InputError, match="another run"):
        Journal.open(path, run_key="two", resume=True)
    with pytest.raises(InputError, match="--resume"):
        Journal.open(path, run_key="one", resume=False)


def test_logprob_problems_flags_a_wrong_top_k_and_inconsistent_values() -> None:
    good = logprob_problems(["a", "b"], [-0.1, -1.0], [{"a": -0.1, "c": -2.0}, {"d": -0.5, "e": -0.7, "b": -1.0}], 2)
    assert good == []
    bad = logprob_problems(["a"], [-0.1], [{"a": -0.3}], 2)
    assert any("1 alternatives, asked 2" in p for p in bad)
    assert any("chosen token logprob" in p for p in bad)


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (401, '{"error": "Unauthorized"}', "auth"),
        (403, "forbidden", "auth"),
        (404, '{"error": {"message": "The model `x` does not exist."}}', "model_not_served"),
        (404, '{"detail": "Not Found"}', "wrong_path"),
        (500, '{"error": {"message": "boom"}}', "http_error"),
    ],
)
def test_diagnose_status_tells_failures_apart_with_a_fix(status: int, body: str, kind: str) -> None:
    diagnosis = diagnose_status(status, body, "http://h/v1/x", "x")
    assert diagnosis.kind == kind and diagnosis.fix


def test_serve_flags_preset_then_cpu_defaults_then_user_flags_win(bundled_model: Path) -> None:
    args = serve_args_for(bundled_model, ["--max-num-seqs", "2"], preset="debug", host="127.0.0.1", port=9,
                          served_model_name="x", on_cpu=True)
    assert "--host" not in args and "--port" not in args and "--served-model-name" not in args
    assert "--enforce-eager" in args and args.count("--max-num-seqs") == 1
    assert args[-2:] == ["--max-num-seqs", "2"]
    assert args[args.index("--dtype") + 1] == "float32"
    plain = serve_args_for(bundled_model, ["--dtype=bfloat16"], preset=None, host="h", port=1,
                           served_model_name=None, on_cpu=True)
    assert "--kv-cache-memory-bytes" in plain and "--dtype" not in plain and plain[-1] == "--dtype=bfloat16"
    with pytest.raises(InputError, match="unknown preset"):
        serve_args_for(bundled_model, [], preset="nope", host="h", port=1, served_model_name=None, on_cpu=True)
    assert strip_flags(["--a", "1", "--b", "--c=3", "x"], {"--a", "--c"}) == ["--b", "x"]


def test_serve_unknown_preset_is_a_one_line_error(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "hf2vllm.cli", "serve", "--preset", "nope", "--dry-run"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: --preset 'nope': unknown preset")


def test_compare_sides_default_server_and_errors() -> None:
    assert resolve_sides("hf", None, None) == ("hf", "vllm")
    assert resolve_sides("hf", None, "http://h/v1") == ("hf", "server")
    assert resolve_sides("vllm", None, "http://h/v1") == ("vllm", "server")
    with pytest.raises(InputError, match="--server URL"):
        resolve_sides("hf", "server", None)
    with pytest.raises(InputError, match="neither side"):
        resolve_sides("hf", "vllm", "http://h/v1")
    with pytest.raises(InputError, match="--resume needs --journal"):
        server_options("http://h/v1", resume=True)
    assert json.dumps(server_options("http://h/v1", requests_per_minute=60))  # JSON-able for the report


def test_client_overhead_benchmark_runs_every_request_against_the_trivial_endpoint() -> None:
    from hf2vllm.bench.client_overhead import run

    result = run(requests=300, concurrency=64, stream=True)
    assert result.requests == 300 and result.retries == 0
    assert result.client_cpu_s > 0 and result.cpu_ms_per_request > 0
