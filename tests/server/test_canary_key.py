"""A canary key passed every wrong way never appears in any output or file (issue #20).

The key is ``badinput.CANARY``; URL cases also use ``PLAIN``, a password not shaped like a key, so that
only the URL redaction (``checks.public_url``), not the shape rule of ``checks.mask_secrets``, can hide
it. Ways tried: as the value of ``--api-key-env`` (each command that has it); inside a server URL's
userinfo, against a port where nothing listens, a server that answers 401, a server that fails every
request, and one that answers (so JSON, CSV, HTML reports and a journal are written); as the value of a
key-named variable the command uses, or only has in its environment, while a server echoes the
Authorization header back in its error text; as ``serve --dry-run``'s key and as a passthrough
``--api-key``; as an engine option that lands in a report. After each run: no canary in stdout, stderr, or any file under the run's folder (the
traceback file of an unexpected error lands there too: ``HF2VLLM_HOME``).

The servers are a small stdlib fake of the OpenAI API (see ``FakeOpenAI``): no engine starts here.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from badinput import CANARY, BadInput, assert_bad_input, files_under, run_cli
from stub_openai_server import closed_port, serving

PLAIN = "opensesame-plain-pw"
"""A URL password that does not look like a key (``checks.looks_like_secret`` is False for it)."""

SECRETS = (CANARY, PLAIN)

MODEL = "fake-model"


# ---------------------------------------------------------------------- a fake OpenAI server


class FakeOpenAI(BaseHTTPRequestHandler):
    """OpenAI-compatible answers under ``/ok``; ``/deny`` answers 401 to everything; ``/fail`` lists the
    model but answers 400 to every request. Every error body echoes what the client sent as credentials
    (the Authorization header, and the decoded Basic user:password): a client that prints the server's
    error text unredacted leaks the key."""

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _echo(self) -> str:
        auth = self.headers.get("Authorization", "")
        decoded = ""
        if auth.startswith("Basic "):
            decoded = base64.b64decode(auth[6:]).decode(errors="replace")
        return f"rejected credentials {auth!r} (user:password {decoded!r}) for {self.path}"

    def _send(self, status: int, body: object, content_type: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self) -> tuple[str, str]:
        mode, _, rest = self.path.lstrip("/").partition("/")
        return mode, "/" + rest

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        mode, path = self._route()
        if mode == "deny":
            return self._send(401, {"error": {"message": self._echo()}})
        if path.startswith("/v1/models"):
            return self._send(200, {"object": "list", "data": [{"id": MODEL, "max_model_len": 2048}]})
        if path.startswith("/metrics"):
            if mode == "fail":
                return self._send(500, self._echo(), "text/plain")
            return self._send(200, METRICS, "text/plain")
        return self._send(404, {"error": {"message": "not found " + self._echo()}})

    def do_POST(self) -> None:  # noqa: N802
        mode, path = self._route()
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if mode == "deny":
            return self._send(401, {"error": {"message": self._echo()}})
        if mode == "fail":
            return self._send(400, {"error": {"message": self._echo()}})
        chat = path.endswith("/chat/completions")
        n = int(body.get("max_tokens") or 2)
        ids = [30 + i for i in range(n)]
        if body.get("stream"):
            return self._stream(ids, chat)
        lp = {"tokens": [f"token_id:{t}" for t in ids], "token_logprobs": [-0.5] * n,
              "top_logprobs": [{f"token_id:{t}": -0.5} for t in ids]}
        choice: dict[str, object] = {"index": 0, "finish_reason": "length", "token_ids": ids}
        if chat:
            choice["message"] = {"role": "assistant", "content": "hi " * n}
        else:
            choice.update(text="hi " * n, logprobs=lp)
        usage = {"prompt_tokens": 3, "completion_tokens": n, "total_tokens": 3 + n}
        return self._send(200, {"id": "x", "object": "text_completion", "model": MODEL, "choices": [choice],
                                "usage": usage})

    def _stream(self, ids: list[int], chat: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for i, t in enumerate(ids):
            last = i == len(ids) - 1
            piece = {"delta": {"content": "hi "}} if chat else {"text": "hi "}
            chunk = {"choices": [{"index": 0, **piece, "finish_reason": "length" if last else None,
                                  "token_ids": [t]}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        usage = {"prompt_tokens": 3, "completion_tokens": len(ids), "total_tokens": 3 + len(ids)}
        self.wfile.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\ndata: [DONE]\n\n".encode())
        self.wfile.flush()
        self.close_connection = True


METRICS = """\
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="fake-model"} 0.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="fake-model"} 0.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{model_name="fake-model"} 0.1
"""


@pytest.fixture(scope="module")
def fake_server() -> Iterator[int]:
    """The port of a ``FakeOpenAI`` on 127.0.0.1."""
    with serving(FakeOpenAI) as port:
        yield port


@pytest.fixture(scope="module")
def refused_port() -> int:
    """A loopback port where nothing listens."""
    return closed_port()


# ---------------------------------------------------------------------- the contract


def run_and_check(argv: list[str], cwd: Path, env: dict[str, str] | None = None,
                  codes: tuple[int, ...] = (0, 1, 2)) -> subprocess.CompletedProcess[str]:
    """Run ``hf2vllm *argv`` in ``cwd`` (its traceback file under ``cwd`` too); no traceback, an expected
    exit code, and no secret in stdout, stderr or any file written under ``cwd``."""
    done = run_cli(argv, cwd, {"HF2VLLM_HOME": str(cwd / "home"), **(env or {})})
    out = done.stdout + done.stderr
    assert "Traceback" not in out, out[-3000:]
    assert done.returncode in codes, f"exit {done.returncode}\n{out[-3000:]}"
    assert_no_secret(out, cwd)
    return done


def assert_no_secret(out: str, cwd: Path) -> None:
    for secret in SECRETS:
        assert secret not in out, f"{secret!r} was printed:\n{out[-3000:]}"
    for path in files_under(cwd):
        data = path.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in data, f"{secret!r} was written to {path.relative_to(cwd)}"


def url(port: int, mode: str = "ok") -> str:
    """A base URL with both secrets as its credentials: ``PLAIN`` as the user, ``CANARY`` as the password."""
    return f"http://{PLAIN}:{CANARY}@127.0.0.1:{port}/{mode}/v1"


# ---------------------------------------------------------------------- a key where a NAME belongs

PASTED_KEY = [
    BadInput("check-server-api-key-env", ["check-server", "http://127.0.0.1:9/v1", "--api-key-env", CANARY],
             "expects the NAME of an environment variable"),
    BadInput("check-server-api-key-env-bearer", ["check-server", "http://127.0.0.1:9/v1", f"--api-key-env=Bearer {CANARY}"],
             "not the key itself"),
    BadInput("bench-serve-api-key-env", ["bench", "serve", "http://127.0.0.1:9/v1", "--api-key-env", CANARY],
             "expects the NAME of an environment variable"),
    BadInput("compare-api-key-env", ["compare", "--server", "http://127.0.0.1:9/v1", "--api-key-env", CANARY],
             "expects the NAME of an environment variable"),
    BadInput("compare-api-key-env-no-server", ["compare", "--api-key-env", CANARY],
             "expects the NAME of an environment variable"),
    BadInput("serve-api-key-env", ["serve", "--api-key-env", CANARY], "expects the NAME of an environment variable"),
    BadInput("serve-dry-run-api-key-env", ["serve", "--dry-run", "--api-key-env", CANARY],
             "expects the NAME of an environment variable"),
    BadInput("serve-passthrough-api-key", ["serve", "--dry-run", "--", "--api-key", CANARY],
             "--api-key: use hf2vllm serve's own --api-key-env option"),
    BadInput("serve-passthrough-api-key-equals", ["serve", "--", f"--api-key={CANARY}"],
             "--api-key: use hf2vllm serve's own --api-key-env option"),
    BadInput("check-server-url-without-scheme", ["check-server", f"user:{CANARY}@127.0.0.1:9/v1"], "give the scheme"),
    BadInput("bench-serve-url-without-scheme", ["bench", "serve", f"user:{PLAIN}@127.0.0.1:9/v1"], "give the scheme"),
    BadInput("compare-url-without-scheme", ["compare", "--server", f"user:{PLAIN}@127.0.0.1:9/v1"], "give the scheme"),
    BadInput("monitor-url-without-scheme", ["monitor", f"user:{PLAIN}@127.0.0.1:9", "--once"], "give the scheme"),
    BadInput("check-server-url-bad-port", ["check-server", f"http://user:{PLAIN}@127.0.0.1:99999/v1"], "not a valid URL"),
    BadInput("check-server-url-and-key-env", ["check-server", f"http://user:{CANARY}@127.0.0.1:9/v1",
                                              "--api-key-env", "OPENAI_API_KEY"],
             "carries credentials", env={"OPENAI_API_KEY": CANARY}),
    BadInput("bench-serve-url-and-key-env", ["bench", "serve", f"http://user:{PLAIN}@127.0.0.1:9/v1",
                                             "--api-key-env", "OPENAI_API_KEY"],
             "carries credentials", env={"OPENAI_API_KEY": CANARY}),
    BadInput("compare-url-and-key-env", ["compare", "--server", f"http://user:{PLAIN}@127.0.0.1:9/v1",
                                         "--api-key-env", "OPENAI_API_KEY"],
             "carries credentials", env={"OPENAI_API_KEY": CANARY}),
]


@pytest.mark.parametrize("case", PASTED_KEY, ids=lambda c: c.id)
def test_a_key_where_a_name_belongs_is_refused_without_echo(case: BadInput, tmp_path: Path) -> None:
    done = assert_bad_input(case, tmp_path)
    assert_no_secret(done.stdout + done.stderr, tmp_path)


def test_serve_dry_run_shows_the_variable_not_the_key(tmp_path: Path, bundled_model: Path) -> None:
    done = run_and_check(["serve", "--dry-run", "--api-key-env", "MY_SERVER_KEY"], tmp_path,
                         {"MY_SERVER_KEY": CANARY}, codes=(0,))
    assert 'VLLM_API_KEY="$MY_SERVER_KEY"' in done.stdout and "--api-key" not in done.stdout, done.stdout


def test_serve_passes_the_key_in_the_environment_not_on_the_command_line(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """vLLM logs its non-default arguments at start-up (and ``ps`` shows them): the key goes in
    ``VLLM_API_KEY`` instead. ``Popen`` is replaced: nothing starts."""
    import hf2vllm.server.launch as launch

    seen: dict[str, object] = {}

    class NoProcess:
        def __init__(self, cmd: list[str], **kw: object) -> None:
            seen.update(cmd=cmd, env=kw["env"])

    monkeypatch.setenv("MY_SERVER_KEY", CANARY)
    monkeypatch.setattr(launch.subprocess, "Popen", NoProcess)
    server = launch.VLLMServer(launch.ServerConfig(model=tmp_path, port=1, api_key_env="MY_SERVER_KEY",
                                                   log_path=tmp_path / "serve.log"))
    server.launch()
    assert CANARY not in " ".join(seen["cmd"])  # type: ignore[arg-type]
    assert seen["env"]["VLLM_API_KEY"] == CANARY  # type: ignore[index]


# ---------------------------------------------------------------------- credentials inside a server URL

def _commands(base: str, root: str) -> dict[str, list[str]]:
    return {
        "check-server": ["check-server", base, "--timeout", "5"],
        "check-server-json": ["check-server", base, "--timeout", "5", "--json"],
        "bench-serve": ["bench", "serve", base, "-n", "2", "-c", "1", "--warmup", "0", "--max-tokens", "2",
                        "--out", "bench"],
        "compare": ["compare", "--server", base, "--reference", "server", "--candidate", "server", "--limit", "2",
                    "--max-new-tokens", "2", "--no-explain", "--max-retries", "0", "--out", "report",
                    # Both sides are the server: the second takes the first's answers from the journal.
                    "--journal", "journal.jsonl", "--resume"],
        "monitor": ["monitor", root, "--once", "--interval", "0.1"],
    }


COMMANDS = list(_commands("", ""))


@pytest.mark.parametrize("command", COMMANDS)
def test_url_credentials_to_a_port_where_nothing_listens(command: str, refused_port: int, tmp_path: Path,
                                                          bundled_model: Path) -> None:
    base = f"http://{PLAIN}:{CANARY}@127.0.0.1:{refused_port}/v1"
    done = run_and_check(_commands(base, base.removesuffix("/v1"))[command], tmp_path, codes=(1, 2))
    assert "***@127.0.0.1" in done.stdout + done.stderr  # the URL is named, without its credentials


@pytest.mark.parametrize(("command", "mode"), [
    (command, mode) for command in COMMANDS for mode in ("deny", "fail", "ok")
    # compare's failed request is bench serve's (one client, one redaction) ten seconds later
    if (command, mode) != ("compare", "fail")
])
def test_url_credentials_to_a_server(command: str, mode: str, fake_server: int, tmp_path: Path,
                                     bundled_model: Path) -> None:
    """401 to everything, 400 to every request (both echo the credentials), and a server that answers:
    then the reports, CSV, HTML and journal are written and must not carry the credentials either."""
    base = url(fake_server, mode)
    done = run_and_check(_commands(base, base.removesuffix("/v1"))[command], tmp_path)
    if mode == "ok" and command in ("bench-serve", "compare"):
        assert done.returncode == 0, done.stdout + done.stderr
        written = {p.name for p in files_under(tmp_path)}
        assert {"bench.json", "bench.html"} <= written or {"report.json", "report.html", "journal.jsonl"} <= written
        assert "***@127.0.0.1" in "".join(p.read_text() for p in files_under(tmp_path) if p.suffix == ".json")


# ---------------------------------------------------------------------- a key in the environment


@pytest.mark.parametrize(("command", "mode"), [
    ("check-server", "deny"), ("check-server", "fail"), ("check-server", "ok"),
    ("bench-serve", "deny"), ("bench-serve", "fail"), ("bench-serve", "ok"),
    ("compare", "deny"),  # compare's later paths run the same client as bench serve's (and take seconds)
])
def test_a_key_passed_by_name_is_never_echoed(command: str, mode: str, fake_server: int, tmp_path: Path,
                                              bundled_model: Path) -> None:
    """``--api-key-env OPENAI_API_KEY``: the key goes out as a Bearer token, the server echoes it back."""
    base = f"http://127.0.0.1:{fake_server}/{mode}/v1"
    argv = _commands(base, "")[command] + ["--api-key-env", "OPENAI_API_KEY"]
    run_and_check(argv, tmp_path, {"OPENAI_API_KEY": CANARY})


@pytest.mark.parametrize("argv", [
    ["check-server", "http://127.0.0.1:9/v1", "--timeout", "2"],
    ["bench", "serve", "http://127.0.0.1:9/v1", "--rate", "fast"],
    ["compare", "--prompts", "missing.jsonl"],
    ["monitor", "http://127.0.0.1:9", "--once"],
    ["serve", "--dry-run", "--api-key-env", "UNSET_VARIABLE_XYZ"],
], ids=["check-server", "bench-serve", "compare", "monitor", "serve"])
def test_a_key_in_the_environment_stays_out_of_errors(argv: list[str], tmp_path: Path) -> None:
    run_and_check(argv, tmp_path, {"OPENAI_API_KEY": CANARY, "HF_TOKEN": CANARY}, codes=(1, 2))


def test_an_unexpected_error_saves_its_traceback_without_the_key(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from hf2vllm.errors import one_line, save_traceback

    monkeypatch.setenv("HF2VLLM_HOME", str(tmp_path))
    monkeypatch.setenv("MY_SERVICE_TOKEN", PLAIN)
    try:
        raise RuntimeError(f"GET http://user:{PLAIN}@host/v1 failed with header Bearer {CANARY}")
    except RuntimeError as err:
        path = Path(save_traceback(err))
        line = one_line(str(err))
    assert path.parent == tmp_path
    assert_no_secret(line, tmp_path)


def test_a_credential_given_as_an_engine_option_stays_out_of_the_report() -> None:
    """``--vllm-option hf_token=...`` is a real engine argument: report.json and report.html (both views of
    this model) keep the option's name, not its value, and no URL keeps its credentials."""
    from hf2vllm.report.schema import BackendRunSummary

    run = BackendRunSummary(
        name="vllm", load_seconds=1.0, generate_seconds=1.0, output_tokens=1, output_tokens_per_second=1.0,
        options={"hf_token": CANARY, "max_num_batched_tokens": 64, "eos_token": "</s>",
                 "base_url": f"http://{PLAIN}:{CANARY}@127.0.0.1:8000/v1", "extra": {"password": PLAIN}},
    )
    assert_no_secret(run.model_dump_json(), Path("/nonexistent"))
    assert run.options["hf_token"] == "***" and run.options["max_num_batched_tokens"] == 64
    assert run.options["eos_token"] == "</s>" and run.options["base_url"] == "http://***@127.0.0.1:8000/v1"
