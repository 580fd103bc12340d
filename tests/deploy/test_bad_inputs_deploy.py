"""Bad input to the deploy- and bench-side commands (plan, presets, calibrate, monitor, serve, check-server,
bench offline|serve|compare|suite|verdict), issue #20.

Each row runs the real ``hf2vllm`` entry point (``badinput.assert_bad_input``): exit 2, one ``error:`` line
naming the option (or the file and key) and what to do, no traceback, no secret anywhere, and nothing
loaded. Placeholders in an argument: ``{in}`` is the folder of input files (beside each case's empty
working directory), ``{closed}`` a base URL where nothing listens, ``{stub}`` the base URL of a stdlib
server that lists one model (``stub_openai_server``). Every row fails before any model, tokenizer, engine
or server starts, in well under 2 s.

Exit code for a server that cannot be reached (``bench serve``/``monitor`` at a closed port): 2, like every
other bad input (docs/bench.md, "Failed requests and exit codes").
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from badinput import CANARY, BadInput, assert_bad_input, run_cli
from stub_openai_server import MODEL, closed_port, stub_openai_server

CONFIGS = Path(__file__).parent / "configs"
QWEN = str(CONFIGS / "qwen2.5-0.5b.json")  # a valid config: the option checks run before it is read
SIZES = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 128}
UNSET = "HF2VLLM_TEST_UNSET_KEY_VARIABLE"

INPUT_FILES: dict[str, str] = {
    "only-model-type.json": json.dumps({"model_type": "llama"}),
    "bad.json": '{\n  "model_type": "llama",\n  "hidden_size": 4096,,\n}',
    "list.json": "[1, 2]",
    "empty.json": "",
    "no-model-type.json": json.dumps(SIZES),
    "hidden-size-text.json": json.dumps({"model_type": "llama", **SIZES, "hidden_size": "big"}),
    "kv-heads-zero.json": json.dumps({"model_type": "llama", **SIZES, "num_key_value_heads": 0}),
    "max-pos-text.json": json.dumps({"model_type": "llama", **SIZES, "max_position_embeddings": "long"}),
    "layers-bool.json": json.dumps({"model_type": "llama", **SIZES, "num_hidden_layers": True}),
    "canary-model-type.json": json.dumps({"model_type": CANARY}),
    "file.txt": "a file, not a directory\n",
    "prompts-bad.jsonl": '{"prompt": "fine"}\n{"prompt": oops}\n',
    "wrong-kind.json": json.dumps({"schema_version": "1.2", "reference": "hf", "requests": []}),
    "truncated.json": '{"schema_version": 1, "kind": "serve", "machine": {"hostname": "a',
    "array.json": "[]",
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every file the rows point at, outside the cases' working directories."""
    root = tmp_path_factory.mktemp("deploy-bad-inputs")
    for name, text in INPUT_FILES.items():
        (root / name).write_text(text, encoding="utf-8")
    (root / "binary.json").write_bytes(bytes(range(256)) * 4)
    (root / "empty-dir").mkdir()
    for name, config in (("ckpt-only-model-type", INPUT_FILES["only-model-type.json"]),
                         ("ckpt-bad-json", INPUT_FILES["bad.json"])):
        (root / name).mkdir()
        (root / name / "config.json").write_text(config)
        (root / name / "tokenizer.json").write_text("{}")
    return root


@pytest.fixture(scope="module")
def closed_url() -> str:
    return f"http://127.0.0.1:{closed_port()}/v1"


@pytest.fixture(scope="module")
def stub_url() -> Iterator[str]:
    with stub_openai_server() as url:
        yield url


P = ["plan", QWEN, "--device", "cpu"]
PG = ["plan", QWEN, "--gpu", "H100-80GB"]
CALIB = ["calibrate"]
MON = ["monitor", "{closed}"]
SRV = ["serve", "--dry-run"]
CHK = ["check-server", "{closed}"]
OFF = ["bench", "offline"]
BS = ["bench", "serve", "{closed}"]
BC = ["bench", "compare"]
SUITE = ["bench", "suite", "--out", "suite-out", "--markdown", "suite.md"]
VERD = ["bench", "verdict"]

CASES = [
    # ------------------------------------------------------------ plan: the config.json
    BadInput("plan-config-only-model-type", ["plan", "{in}/only-model-type.json", "--device", "cpu"],
             "does not state hidden_size, num_hidden_layers, num_attention_heads, vocab_size"),
    BadInput("plan-config-invalid-json", ["plan", "{in}/bad.json", "--device", "cpu"], "bad.json:3: not valid JSON"),
    BadInput("plan-config-binary", ["plan", "{in}/binary.json", "--device", "cpu"], "binary.json: not UTF-8 text"),
    BadInput("plan-config-a-json-list", ["plan", "{in}/list.json", "--device", "cpu"], "must be a JSON object"),
    BadInput("plan-config-empty-file", ["plan", "{in}/empty.json", "--device", "cpu"], "empty.json:1: not valid JSON"),
    BadInput("plan-config-no-model-type", ["plan", "{in}/no-model-type.json", "--device", "cpu"],
             "config.json has no `model_type`"),
    BadInput("plan-config-hidden-size-text", ["plan", "{in}/hidden-size-text.json", "--device", "cpu"],
             "`hidden_size` is 'big'; it must be a positive integer"),
    BadInput("plan-config-zero-kv-heads", ["plan", "{in}/kv-heads-zero.json", "--device", "cpu"],
             "`num_key_value_heads` is 0"),
    BadInput("plan-config-max-position-text", ["plan", "{in}/max-pos-text.json", "--device", "cpu"],
             "`max_position_embeddings` is 'long'"),
    BadInput("plan-config-layers-a-boolean", ["plan", "{in}/layers-bool.json", "--device", "cpu"],
             "`num_hidden_layers` is True"),
    BadInput("plan-config-key-shaped-model-type", ["plan", "{in}/canary-model-type.json", "--device", "cpu"],
             "does not state hidden_size"),
    BadInput("plan-missing-config-file", ["plan", "{in}/nowhere/config.json", "--device", "cpu"],
             "no such file or directory"),
    BadInput("plan-directory-without-config", ["plan", "{in}/empty-dir", "--device", "cpu"], "no config.json found"),
    # ------------------------------------------------------------ plan: numbers
    BadInput("plan-gpus-1000", [*PG, "--gpus", "1000"], "--gpus 1000: that is GPUs per node"),
    BadInput("plan-gpus-17-suggests-nodes", [*PG, "--gpus", "17"], "pass --nodes 3 --gpus 8"),
    BadInput("plan-gpus-zero", [*PG, "--gpus", "0"], "--gpus: got 0; expected 1 or more"),
    BadInput("plan-gpus-negative", [*PG, "--gpus", "-2"], "--gpus: got -2"),
    BadInput("plan-nodes-zero", [*PG, "--nodes", "0"], "--nodes: got 0; expected 1 or more"),
    BadInput("plan-prompt-tokens-negative", [*P, "--prompt-tokens", "-5"], "--prompt-tokens: got -5"),
    BadInput("plan-output-tokens-zero", [*P, "--output-tokens", "0"], "--output-tokens: got 0"),
    BadInput("plan-concurrency-negative", [*P, "--concurrency", "-1"], "--concurrency: got -1"),
    BadInput("plan-max-model-len-zero", [*P, "--max-model-len", "0"], "--max-model-len: got 0; expected 1 or more"),
    BadInput("plan-max-num-seqs-zero", [*P, "--max-num-seqs", "0"], "--max-num-seqs: got 0"),
    BadInput("plan-max-num-batched-tokens-negative", [*P, "--max-num-batched-tokens", "-8"],
             "--max-num-batched-tokens: got -8"),
    BadInput("plan-block-size-zero", [*P, "--block-size", "0"], "--block-size: got 0"),
    BadInput("plan-images-per-prompt-negative", [*P, "--images-per-prompt", "-1"], "--images-per-prompt: got -1"),
    BadInput("plan-gpu-memory-utilization-zero", [*PG, "--gpu-memory-utilization", "0"],
             "--gpu-memory-utilization: got 0; give the fraction"),
    BadInput("plan-gpu-memory-utilization-1.5", [*PG, "--gpu-memory-utilization", "1.5"],
             "--gpu-memory-utilization: got 1.5"),
    BadInput("plan-gpu-memory-utilization-nan", [*PG, "--gpu-memory-utilization", "nan"],
             "--gpu-memory-utilization: got nan"),
    BadInput("plan-gpu-memory-gib-negative", ["plan", QWEN, "--gpu-memory-gib", "-80"], "--gpu-memory-gib: got -80"),
    BadInput("plan-kv-cache-memory-negative-is-invalid-not-add-gpus", [*P, "--kv-cache-memory-gib", "-2"],
             "--kv-cache-memory-gib: got -2; expected greater than 0"),
    BadInput("plan-kv-cache-memory-zero", [*P, "--kv-cache-memory-gib", "0"], "--kv-cache-memory-gib: got 0"),
    # ------------------------------------------------------------ plan: names
    BadInput("plan-dtype-banana-names-dtype", [*P, "--dtype", "banana"], "--dtype: unknown value 'banana'"),
    BadInput("plan-quantization-int3", [*P, "--quantization", "int3"], "--quantization: unknown value 'int3'"),
    BadInput("plan-quantization-typo", [*P, "--quantization", "gptqq"], "did you mean 'gptq'?"),
    BadInput("plan-kv-cache-dtype-nonsense", [*P, "--kv-cache-dtype", "nonsense"],
             "--kv-cache-dtype: unknown value 'nonsense'"),
    BadInput("plan-goal-fastest", [*P, "--goal", "fastest"], "--goal: unknown value 'fastest'"),
    BadInput("plan-device-tpu", ["plan", QWEN, "--device", "tpu"], "--device: unknown value 'tpu'"),
    BadInput("plan-gpu-h100-did-you-mean", ["plan", QWEN, "--gpu", "H100"], "did you mean 'H100-80GB'?"),
    BadInput("plan-gpu-a100-two-candidates", ["plan", QWEN, "--gpu", "A100"], "'A100-80GB' or 'A100-40GB'"),
    BadInput("plan-gpu-unknown", ["plan", QWEN, "--gpu", "tpu-v5e"], "--gpu 'tpu-v5e': unknown accelerator"),
    BadInput("plan-preset-unknown", [*P, "--preset", "unknown"], "--preset 'unknown': unknown preset"),
    BadInput("plan-preset-typo", [*P, "--preset", "low_latency"], "did you mean 'low-latency'?"),
    # ------------------------------------------------------------ plan: output paths
    BadInput("plan-yaml-out-a-directory", [*P, "--yaml-out", "{in}/empty-dir"], "--yaml-out"),
    BadInput("plan-yaml-out-under-a-file", [*P, "--yaml-out", "{in}/file.txt/serve.yaml"],
             "file.txt is a file, so nothing can be created under it"),
    # ------------------------------------------------------------ presets
    BadInput("presets-config-only-model-type", ["presets", "{in}/only-model-type.json", "--device", "cpu"],
             "does not state hidden_size"),
    BadInput("presets-config-invalid-json", ["presets", "{in}/bad.json", "--device", "cpu"], "not valid JSON"),
    BadInput("presets-device-tpu", ["presets", QWEN, "--device", "tpu"], "--device: unknown value 'tpu'"),
    BadInput("presets-gpus-1000", ["presets", QWEN, "--gpu", "L4", "--gpus", "1000"], "--gpus 1000"),
    BadInput("presets-gpu-unknown", ["presets", QWEN, "--gpu", "4090"], "did you mean 'RTX-4090'?"),
    BadInput("presets-kv-cache-memory-negative", ["presets", QWEN, "--device", "cpu", "--kv-cache-memory-gib", "-1"],
             "--kv-cache-memory-gib: got -1"),
    # ------------------------------------------------------------ calibrate (starts vLLM: all checked first)
    BadInput("calibrate-max-model-len-zero", [*CALIB, "--max-model-len", "0"], "--max-model-len: got 0"),
    BadInput("calibrate-kv-cache-memory-negative", [*CALIB, "--kv-cache-memory-gib", "-1"],
             "--kv-cache-memory-gib: got -1"),
    BadInput("calibrate-dtype-banana", [*CALIB, "--dtype", "banana"], "--dtype: unknown value 'banana'"),
    BadInput("calibrate-max-num-seqs-zero", [*CALIB, "--max-num-seqs", "0"], "--max-num-seqs: got 0"),
    BadInput("calibrate-timeout-zero", [*CALIB, "--timeout", "0"], "--timeout: got 0"),
    BadInput("calibrate-log-a-directory", [*CALIB, "--log", "{in}/empty-dir"], "--log"),
    BadInput("calibrate-config-file-not-checkpoint", [*CALIB, QWEN], "needs the checkpoint directory"),
    BadInput("calibrate-directory-without-config", [*CALIB, "{in}/empty-dir"], "config.json: cannot read it"),
    BadInput("calibrate-checkpoint-config-only-model-type", [*CALIB, "{in}/ckpt-only-model-type"],
             "does not state hidden_size"),
    BadInput("calibrate-checkpoint-config-invalid-json", [*CALIB, "{in}/ckpt-bad-json"],
             "config.json is not valid JSON"),
    BadInput("calibrate-model-missing", [*CALIB, "no-such-model"], "is neither a directory nor a cached model name"),
    # ------------------------------------------------------------ monitor
    BadInput("monitor-interval-negative", [*MON, "--interval", "-1"], "--interval: got -1"),
    BadInput("monitor-interval-zero", [*MON, "--interval", "0"], "--interval: got 0"),
    BadInput("monitor-count-negative", [*MON, "--count", "-3"], "--count: got -3"),
    BadInput("monitor-workload-weird", [*MON, "--workload", "weird"], "--workload: unknown value 'weird'"),
    BadInput("monitor-workload-typo", [*MON, "--workload", "few_shot"], "did you mean 'few-shot'?"),
    BadInput("monitor-max-num-seqs-zero", [*MON, "--max-num-seqs", "0"], "--max-num-seqs: got 0"),
    BadInput("monitor-no-url-no-log", ["monitor"], "give a server URL (reads /metrics) or --log FILE"),
    BadInput("monitor-log-a-directory", ["monitor", "--log", "{in}/empty-dir"], "is a directory"),
    BadInput("monitor-log-missing", ["monitor", "--log", "{in}/vllm.log"], "no such vLLM log file"),
    BadInput("monitor-log-without-stats-lines", ["monitor", "--log", "{in}/file.txt"], "no vLLM stats lines"),
    BadInput("monitor-ftp-url", ["monitor", "ftp://127.0.0.1:9"], "only http:// and https:// URLs are supported"),
    BadInput("monitor-closed-port", [*MON, "--once"], "nothing listens there (connection refused)"),
    # ------------------------------------------------------------ serve
    BadInput("serve-port-70000", [*SRV, "--port", "70000"], "--port: got 70000; a TCP port is 0 to 65535"),
    BadInput("serve-port-negative", [*SRV, "--port", "-1"], "--port: got -1"),
    BadInput("serve-preset-unknown", [*SRV, "--preset", "unknown"], "--preset 'unknown': unknown preset"),
    BadInput("serve-log-file-a-directory", [*SRV, "--log-file", "{in}/empty-dir"], "--log-file"),
    BadInput("serve-startup-timeout-negative", [*SRV, "--startup-timeout", "-5"], "--startup-timeout: got -5"),
    BadInput("serve-empty-host", [*SRV, "--host", ""], "--host: empty"),
    BadInput("serve-api-key-env-unset", [*SRV, "--api-key-env", UNSET], f"--api-key-env {UNSET}: that environment"),
    BadInput("serve-api-key-env-given-the-key", [*SRV, "--api-key-env", CANARY], "not the key itself"),
    BadInput("serve-passthrough-quantization-int3", [*SRV, "--", "--quantization", "int3"],
             "--quantization (after --): unknown value 'int3'"),
    BadInput("serve-passthrough-kv-cache-dtype", [*SRV, "--", "--kv-cache-dtype=fp9"], "did you mean 'fp8'?"),
    BadInput("serve-passthrough-dtype-without-value", [*SRV, "--", "--dtype"], "--dtype (after --): no value given"),
    BadInput("serve-passthrough-port", [*SRV, "--", "--port", "8001"], "use hf2vllm serve's own --port option"),
    BadInput("serve-model-missing", [*SRV, "--model", "no-such-model"], "is neither a directory nor a cached model"),
    # ------------------------------------------------------------ check-server
    BadInput("check-server-ftp", ["check-server", "ftp://host/v1"], "only http:// and https:// URLs are supported"),
    BadInput("check-server-no-scheme", ["check-server", "localhost:8000/v1"], "give the scheme"),
    BadInput("check-server-port-out-of-range", ["check-server", "http://127.0.0.1:99999/v1"], "not a valid URL"),
    BadInput("check-server-no-host", ["check-server", "http:///v1"], "no host name"),
    BadInput("check-server-timeout-negative", [*CHK, "--timeout", "-1"], "--timeout: got -1"),
    BadInput("check-server-timeout-zero", [*CHK, "--timeout", "0"], "--timeout: got 0"),
    BadInput("check-server-require-unknown", [*CHK, "--require", "bogus"], "--require: unknown value 'bogus'"),
    BadInput("check-server-skip-typo", [*CHK, "--skip", "chats"], "did you mean 'chat'?"),
    BadInput("check-server-api-key-env-unset", [*CHK, "--api-key-env", UNSET], "that environment variable is not set"),
    # ------------------------------------------------------------ bench offline (loads models: all checked first)
    BadInput("bench-offline-kv-cache-gib-negative", [*OFF, "--kv-cache-gib", "-2"], "--kv-cache-gib: got -2"),
    BadInput("bench-offline-kv-cache-gib-zero", [*OFF, "--kv-cache-gib", "0"], "--kv-cache-gib: got 0"),
    BadInput("bench-offline-sweep-time-cap-negative", [*OFF, "--sweep-time-cap", "-1"], "--sweep-time-cap: got -1"),
    BadInput("bench-offline-dtype-banana", [*OFF, "--dtype", "banana"], "--dtype: unknown dtype 'banana'"),
    BadInput("bench-offline-batch-sizes-zero", [*OFF, "--batch-sizes", "0,4"], "--batch-sizes: expected positive"),
    BadInput("bench-offline-batch-sizes-words", [*OFF, "--batch-sizes", "one,two"], "--batch-sizes: expected comma"),
    BadInput("bench-offline-out-a-file", [*OFF, "--out", "{in}/file.txt"], "is a file; give a directory"),
    BadInput("bench-offline-prompts-missing", [*OFF, "--prompts", "{in}/nowhere.jsonl"], "no such prompts file"),
    BadInput("bench-offline-prompts-a-directory", [*OFF, "--prompts", "{in}/empty-dir"], "is a directory"),
    BadInput("bench-offline-prompts-bad-line", [*OFF, "--prompts", "{in}/prompts-bad.jsonl"],
             "prompts-bad.jsonl:2: not valid JSON"),
    BadInput("bench-offline-prompts-binary", [*OFF, "--prompts", "{in}/binary.json"], "not UTF-8 text"),
    BadInput("bench-offline-model-missing", [*OFF, "--model", "no-such-model"], "is neither a directory nor a cached"),
    # ------------------------------------------------------------ bench serve
    BadInput("bench-serve-closed-port", [*BS, "-c", "1", "-n", "1"], "nothing listens there"),
    BadInput("bench-serve-concurrency-zero-and-negative", [*BS, "--concurrency", "0,-1"], "--concurrency: '0'"),
    BadInput("bench-serve-concurrency-fraction", [*BS, "--concurrency", "1.5"], "--concurrency: expected whole"),
    BadInput("bench-serve-rate-abc", [*BS, "--rate", "abc"], "--rate: 'abc' is not a number"),
    BadInput("bench-serve-rate-zero", [*BS, "--rate", "0"], "--rate: '0' must be a positive number or inf"),
    BadInput("bench-serve-requests-zero", [*BS, "--requests", "0"], "--requests: got 0; expected 1 or more"),
    BadInput("bench-serve-max-tokens-zero", [*BS, "--max-tokens", "0"], "--max-tokens: got 0"),
    BadInput("bench-serve-warmup-negative", [*BS, "--warmup", "-1"], "--warmup: got -1"),
    BadInput("bench-serve-burstiness-zero", [*BS, "--burstiness", "0"], "--burstiness: got 0"),
    BadInput("bench-serve-time-cap-zero", [*BS, "--time-cap", "0"], "--time-cap: got 0"),
    BadInput("bench-serve-slo-ttft-negative", [*BS, "--slo-ttft-ms", "-100"], "--slo-ttft-ms: got -100"),
    BadInput("bench-serve-slo-attainment-zero", [*BS, "--slo-attainment", "0"], "expected above 0 and at most 1"),
    BadInput("bench-serve-slo-attainment-percent", [*BS, "--slo-attainment", "90"], "--slo-attainment: got 90"),
    BadInput("bench-serve-max-failure-rate-two", [*BS, "--max-failure-rate", "2"], "--max-failure-rate: got 2"),
    BadInput("bench-serve-out-a-file", [*BS, "--out", "{in}/file.txt"], "is a file; give a directory"),
    BadInput("bench-serve-prompts-missing", [*BS, "--prompts", "{in}/nowhere.jsonl"], "no such prompts file"),
    BadInput("bench-serve-ftp-url", ["bench", "serve", "ftp://127.0.0.1/v1"], "only http:// and https://"),
    BadInput("bench-serve-api-key-env-unset", [*BS, "--api-key-env", UNSET], "that environment variable is not set"),
    BadInput("bench-serve-model-not-served", ["bench", "serve", "{stub}", "--model", "stub-modle", "-n", "1"],
             "did you mean 'stub-model'?"),
    # ------------------------------------------------------------ bench compare
    BadInput("bench-compare-missing", [*BC, "{in}/nowhere.json", "{in}/nowhere.json"], "benchmark report not found"),
    BadInput("bench-compare-binary", [*BC, "{in}/binary.json", "{in}/binary.json"], "not UTF-8 text"),
    BadInput("bench-compare-truncated", [*BC, "{in}/truncated.json", "{in}/truncated.json"],
             "truncated.json:1: not valid JSON"),
    BadInput("bench-compare-wrong-kind", [*BC, "{in}/wrong-kind.json", "{in}/wrong-kind.json"],
             "not an hf2vllm benchmark report"),
    BadInput("bench-compare-json-array", [*BC, "{in}/array.json", "{in}/array.json"], "not an hf2vllm benchmark report"),
    BadInput("bench-compare-a-directory", [*BC, "{in}/empty-dir", "{in}/empty-dir"], "is a directory"),
    BadInput("bench-compare-noise-negative", [*BC, "{in}/wrong-kind.json", "{in}/wrong-kind.json", "--noise", "-1"],
             "--noise: got -1"),
    BadInput("bench-compare-json-out-a-directory",
             [*BC, "{in}/wrong-kind.json", "{in}/wrong-kind.json", "--json", "{in}/empty-dir"], "--json"),
    # ------------------------------------------------------------ bench suite
    BadInput("bench-suite-stages-nonsense", [*SUITE, "--stages", "nonsense"], "--stages: unknown value 'nonsense'"),
    BadInput("bench-suite-stages-typo", [*SUITE, "--stages", "offline,served-decay"], "did you mean 'served_decay'?"),
    BadInput("bench-suite-out-a-file", ["bench", "suite", "--out", "{in}/file.txt"], "is a file; give a directory"),
    BadInput("bench-suite-markdown-a-directory", ["bench", "suite", "--out", "o", "--markdown", "{in}/empty-dir"],
             "--markdown"),
    # ------------------------------------------------------------ bench verdict
    BadInput("bench-verdict-device-tpu", [*VERD, "--device", "tpu"], "--device: expected cpu or cuda, got 'tpu'"),
    BadInput("bench-verdict-dtype-banana", [*VERD, "--dtype", "banana"], "--dtype: unknown dtype 'banana'"),
    BadInput("bench-verdict-out-a-directory", [*VERD, "--out", "{in}/empty-dir"], "--out"),
    BadInput("bench-verdict-markdown-under-a-file", [*VERD, "--out", "v.json", "--markdown", "{in}/file.txt/v.md"],
             "nothing can be created under it"),
    BadInput("bench-verdict-model-missing", [*VERD, "--out", "v.json", "--markdown", "v.md", "--model", "nope-model"],
             "is neither a directory nor a cached model name"),
]


def _filled(case: BadInput, inputs: Path, closed: str, stub: str) -> BadInput:
    values = {"{in}": str(inputs), "{closed}": closed, "{stub}": stub}

    def fill(arg: str) -> str:
        for key, value in values.items():
            arg = arg.replace(key, value)
        return arg

    return dataclasses.replace(case, argv=[fill(a) for a in case.argv], expect=fill(case.expect))


def test_the_table_covers_every_deploy_and_bench_command() -> None:
    assert len(CASES) >= 80 and len({c.id for c in CASES}) == len(CASES)
    firsts = {tuple(c.argv[:2]) if c.argv[0] == "bench" else (c.argv[0],) for c in CASES}
    assert firsts >= {("plan",), ("presets",), ("calibrate",), ("monitor",), ("serve",), ("check-server",),
                      ("bench", "offline"), ("bench", "serve"), ("bench", "compare"), ("bench", "suite"),
                      ("bench", "verdict")}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_fails_first_with_one_line(case: BadInput, inputs: Path, closed_url: str, stub_url: str,
                                             tmp_path: Path) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    assert_bad_input(_filled(case, inputs, closed_url, stub_url), cwd)


def test_check_server_on_the_server_root_tries_v1_and_says_so(tmp_path: Path) -> None:
    with stub_openai_server(status=404, message="no completions here") as base_url:
        root = base_url.removesuffix("/v1")
        done = run_cli(["check-server", root, "--json", "--timeout", "5"], tmp_path)
    report = json.loads(done.stdout)
    connection = next(c for c in report["checks"] if c["name"] == "connection")
    assert connection["passed"], connection
    assert f"no OpenAI API at {root}, so {base_url} was tried and is used" in connection["detail"]
    assert report["base_url"] == base_url and report["model"] == MODEL
    completion = next(c for c in report["checks"] if c["name"] == "completion")
    # The base URL is right now: a missing endpoint must not send the user back to add /v1.
    assert not completion["passed"] and "must end in /v1" not in completion["fix"]
    assert done.returncode == 1 and "Traceback" not in done.stderr
