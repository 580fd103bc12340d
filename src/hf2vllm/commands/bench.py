"""``hf2vllm bench``: offline HF-vs-vLLM benchmark, served load generator, A/B comparison, the suite."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from hf2vllm.commands.quiet import quiet_model_libraries

bench_app = typer.Typer(help="Benchmarks: HF vs vLLM offline, a served load generator, A/B comparison.",
                        no_args_is_help=True)


def _csv_ints(text: str, option: str) -> list[int]:
    from hf2vllm.errors import InputError

    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"{option}: expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise InputError(f"{option}: expected positive integers, got {text!r}")
    return values


def _dtype(dtype: str) -> str:
    from hf2vllm.dtypes import normalise_dtype
    from hf2vllm.errors import InputError

    try:
        return normalise_dtype(dtype)
    except InputError as err:
        raise InputError(f"--dtype: {err}") from None


def _check_offline_options(*, model: str | None, prompts: Path | None, dtype: str, batch_sizes: str,
                           sweep_time_cap: float, kv_cache_gib: float | None, out: Path | None) -> None:
    """Everything ``bench offline`` is given, checked before a model loads (minutes, otherwise)."""
    from hf2vllm import checks
    from hf2vllm.models import resolve_model
    from hf2vllm.requests import load_requests

    checks.positive(kv_cache_gib, "--kv-cache-gib", "vLLM's KV cache size in GiB")
    checks.positive(sweep_time_cap, "--sweep-time-cap", "seconds")
    _dtype(dtype)
    _csv_ints(batch_sizes, "--batch-sizes")
    checks.output_dir(out, "--out")
    if prompts is not None:
        load_requests(checks.input_file(prompts, "--prompts", what="prompts file"))
    checks.model_config(resolve_model(model), "--model")


def _bars(console: Console):  # type: ignore[no-untyped-def]
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console)


def _write_outputs(report, out: Path | None, console: Console) -> None:  # type: ignore[no-untyped-def]
    if out is None:
        return
    from hf2vllm.bench.outputs.csv_file import write_csv
    from hf2vllm.bench.outputs.html import write_html
    from hf2vllm.bench.outputs.json_file import write_json

    paths = [write_json(report, out / "bench.json"), *write_csv(report, out), write_html(report, out / "bench.html")]
    console.print("written: " + ", ".join(str(p) for p in paths))


@bench_app.command("offline")
def offline(
    model: str = typer.Option(None, "--model", "-m", help="Checkpoint dir or cached model name (default: bundled)."),
    prompts: Path = typer.Option(None, "--prompts", "-p", help="JSONL prompt file (default: the bundled set)."),
    limit: int = typer.Option(16, "--limit", min=1, help="Use the first N requests."),
    max_new_tokens: int = typer.Option(32, "--max-new-tokens", min=1),
    fixed_length: bool = typer.Option(True, "--fixed-length/--stop-at-eos",
                                      help="Generate exactly --max-new-tokens on both backends (default)."),
    batch_sizes: str = typer.Option("1,4,8,16,32,64", "--batch-sizes", help="HF batch sizes to sweep."),
    repeats: int = typer.Option(1, "--repeats", min=1, help="Timed repetitions per mode (spread is reported)."),
    fairness_pairs: int = typer.Option(8, "--fairness-pairs", min=1,
                                       help="Interleaved timings of HF's best batch size and the plain loop "
                                            "(5 or more let a sign test judge them)."),
    sweep_time_cap: float = typer.Option(600.0, "--sweep-time-cap", help="Seconds before the HF sweep stops."),
    dtype: str = typer.Option("float32", "--dtype"),
    kv_cache_gib: float = typer.Option(None, "--kv-cache-gib", help="vLLM KV cache size (CPU default 2 GiB)."),
    out: Path = typer.Option(None, "--out", "-o", help="Write DIR/bench.json, CSV and bench.html."),
    verbose: bool = typer.Option(False, "--verbose", help="Show vLLM/Transformers logs."),
) -> None:
    """HF sequential, HF batched (swept), a plain generate() loop, vLLM one-at-a-time and all-at-once."""
    _check_offline_options(model=model, prompts=prompts, dtype=dtype, batch_sizes=batch_sizes,
                           sweep_time_cap=sweep_time_cap, kv_cache_gib=kv_cache_gib, out=out)
    quiet_model_libraries(verbose)
    from hf2vllm.bench.machine import collect_machine, finish_machine
    from hf2vllm.bench.offline import OfflineBenchOptions, run_offline
    from hf2vllm.bench.outputs.terminal import render_report
    from hf2vllm.bench.schema import BenchReport
    from hf2vllm.dtypes import normalise_dtype

    options = OfflineBenchOptions(model=model, prompts=prompts, limit=limit, max_new_tokens=max_new_tokens,
                                  fixed_output_length=fixed_length, dtype=normalise_dtype(dtype),
                                  batch_sizes=_csv_ints(batch_sizes, "--batch-sizes"), repeats=repeats,
                                  fairness_pairs=fairness_pairs,
                                  sweep_time_cap_s=sweep_time_cap, kv_cache_gib=kv_cache_gib)
    from hf2vllm import interrupt

    if out is not None:  # written after each backend: a signal's line names it
        interrupt.saves(out / "bench.json", "the results measured so far in {path}")
    console = Console()
    report = BenchReport(kind="offline", machine=collect_machine())
    with console.status("starting") as spinner:
        def on_progress(partial):  # type: ignore[no-untyped-def]
            # Results so far on disk after each backend: a long run cut short keeps what it measured.
            if out is not None:
                from hf2vllm.bench.outputs.json_file import write_json

                write_json(report.model_copy(update={"offline": partial}), out / "bench.json")

        report.offline = run_offline(options, on_status=interrupt.tracked(spinner.update), on_progress=on_progress)
    report.machine = finish_machine(report.machine)
    if fixed_length:
        report.notes.append("fixed output length: every request generates exactly max_new_tokens tokens on both backends")
    render_report(report, console)
    _write_outputs(report, out, console)


@bench_app.command("serve")
def serve(
    url: str = typer.Argument(..., help="OpenAI base URL, e.g. http://127.0.0.1:8000/v1"),
    model: str = typer.Option(None, "--model", help="Served model name (default: the first /models entry)."),
    prompts: Path = typer.Option(None, "--prompts", "-p", help="JSONL prompts (chat -> /chat/completions, "
                                                              "prompt -> /completions). Default: bundled set."),
    max_tokens: int = typer.Option(64, "--max-tokens", help="Output tokens per request (1 or more)."),
    fixed_length: bool = typer.Option(True, "--fixed-length/--stop-at-eos", help="Send ignore_eos (vLLM)."),
    concurrency: str = typer.Option(None, "--concurrency", "-c", help="Closed-loop levels, e.g. 1,4,16."),
    rate: str = typer.Option(None, "--rate", "-r", help="Open-loop Poisson rates in req/s, e.g. 1,2,inf."),
    burstiness: float = typer.Option(1.0, "--burstiness", help="Gamma shape (above 0): 1 Poisson, <1 burstier."),
    requests: int = typer.Option(32, "--requests", "-n", help="Measured requests per level (1 or more)."),
    warmup: int = typer.Option(2, "--warmup", help="Unmeasured warm-up requests per level (0 or more)."),
    time_cap: float = typer.Option(120.0, "--time-cap", help="Seconds per level after which no request starts."),
    slo_ttft_ms: float = typer.Option(None, "--slo-ttft-ms", help="Goodput SLO: TTFT bound in ms."),
    slo_tpot_ms: float = typer.Option(None, "--slo-tpot-ms", help="Goodput SLO: TPOT bound in ms."),
    slo_e2e_ms: float = typer.Option(None, "--slo-e2e-ms", help="Goodput SLO: end-to-end bound in ms."),
    slo_attainment: float = typer.Option(0.9, "--slo-attainment",
                                         help="Fraction of requests (above 0, at most 1) that must meet the SLOs "
                                              "for a level to hold."),
    max_failure_rate: float = typer.Option(
        0.1, "--max-failure-rate",
        help="Exit 1 when more than this fraction of the measured requests failed (0 = any failure); the "
             "distinct errors are printed and recorded in bench.json either way."),
    api_key_env: str = typer.Option(None, "--api-key-env", help="Env var holding the API key (never logged)."),
    out: Path = typer.Option(None, "--out", "-o", help="Write DIR/bench.json, CSV and bench.html."),
) -> None:
    """Load-test an OpenAI-compatible server: TTFT, TPOT, ITL, E2E, throughput, goodput, saturation.

    Exit 2 for bad options or a server that cannot be reached (nothing listening, wrong base URL, key
    refused: checked before any load runs); exit 1 when more than --max-failure-rate of the requests failed.
    """
    from hf2vllm import checks

    checks.api_key_env(api_key_env)
    checks.server_url(url, api_key_env=api_key_env)
    checks.number(max_tokens, "--max-tokens", minimum=1, meaning="output tokens per request")
    checks.number(requests, "--requests", minimum=1, meaning="measured requests per load level")
    checks.number(warmup, "--warmup", minimum=0)
    checks.positive(burstiness, "--burstiness", "gamma shape: 1 is Poisson")
    checks.positive(time_cap, "--time-cap", "seconds per level")
    for option, bound in (("--slo-ttft-ms", slo_ttft_ms), ("--slo-tpot-ms", slo_tpot_ms), ("--slo-e2e-ms", slo_e2e_ms)):
        checks.positive(bound, option, "milliseconds")
    checks.number(slo_attainment, "--slo-attainment", minimum=0, maximum=1, exclusive_minimum=True,
                  meaning="a fraction of requests, e.g. 0.9")
    checks.number(max_failure_rate, "--max-failure-rate", minimum=0, maximum=1,
                  meaning="a fraction of requests, e.g. 0.1; 0 = any failure fails the run")
    checks.output_dir(out, "--out")
    checks.input_file(prompts, "--prompts", what="prompts file")
    import asyncio

    from hf2vllm.bench.machine import collect_machine, finish_machine
    from hf2vllm.bench.outputs.terminal import render_report
    from hf2vllm.bench.schema import SLO, BenchReport
    from hf2vllm.bench.serve.profiles import parse_number_list
    from hf2vllm.bench.serve.runner import ServeOptions, failure_summary, run_serve, workload_from_requests
    from hf2vllm.errors import InputError
    from hf2vllm.requests import bundled_prompts_path, load_requests

    try:
        levels = [int(v) for v in parse_number_list(concurrency, name="--concurrency")] if concurrency else []
        rates = parse_number_list(rate, name="--rate", allow_inf=True) if rate else []
    except ValueError as err:
        raise InputError(str(err)) from None
    if concurrency and any(float(v) != int(float(v)) for v in concurrency.split(",") if v.strip()):
        raise InputError(f"--concurrency: expected whole numbers of requests in flight, got {concurrency!r}")
    if not levels and not rates:
        levels = [1, 4]
    source = prompts or bundled_prompts_path()
    items = workload_from_requests(load_requests(source), max_tokens=max_tokens, fixed_output_length=fixed_length)
    model = _served_model(url, model, api_key_env)
    options = ServeOptions(url=url.rstrip("/"), model=model, api_key_env=api_key_env, concurrency=levels, rates=rates,
                           burstiness=burstiness, max_requests=requests, warmup_requests=warmup, time_cap_s=time_cap,
                           slo=SLO(ttft_ms=slo_ttft_ms, tpot_ms=slo_tpot_ms, e2e_ms=slo_e2e_ms),
                           slo_attainment_target=slo_attainment)
    console = Console()
    report = BenchReport(kind="serve", machine=collect_machine())
    with _bars(console) as bars:
        def progress(label: str, total: int):  # type: ignore[no-untyped-def]
            task = bars.add_task(label, total=total)
            return lambda n: bars.advance(task, n)

        report.serve = asyncio.run(run_serve(options, items, prompt_source=str(source), progress=progress))
    report.machine = finish_machine(report.machine)
    failed, sent, errors = failure_summary(report.serve)
    if failed:
        report.notes.append(f"{failed} of {sent} measured requests failed: "
                            + "; ".join(f"{n} x {e}" for e, n in errors.items()))
    render_report(report, console)
    _write_outputs(report, out, console)
    if failed:
        _report_failures(failed, sent, errors, max_failure_rate)


def _served_model(url: str, model: str | None, api_key_env: str | None) -> str:
    """The model to load-test, from the server's /models: a server that cannot be reached, or a --model it
    does not serve, is one line here instead of a run of failed requests."""
    from hf2vllm.checks import public_url
    from hf2vllm.errors import InputError
    from hf2vllm.server.client import ClientConfig
    from hf2vllm.server.diagnostics import list_models

    served = [str(m.get("id")) for m in list_models(ClientConfig(base_url=url, api_key_env=api_key_env))]
    if model is None:
        if not served:
            raise InputError(f"{public_url(url)} serves no model; start the server with one")
        return served[0]
    if model not in served:
        import difflib

        close = difflib.get_close_matches(model, served, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise InputError(f"--model {model!r}: not served at {public_url(url)}; {hint}served: {', '.join(served)}")
    return model


def _report_failures(failed: int, sent: int, errors: dict[str, int], max_failure_rate: float) -> None:
    """The distinct errors, one line each on stderr; exit 1 when too many requests failed."""
    err = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)
    err.print(f"{failed} of {sent} measured requests failed; distinct errors (first {min(len(errors), 5)}):")
    for text, count in list(errors.items())[:5]:
        err.print(f"  {count} x {text}")
    if failed / max(sent, 1) > max_failure_rate:
        err.print(f"error: {failed / max(sent, 1):.0%} of the requests failed, more than --max-failure-rate "
                  f"{max_failure_rate:g}: these numbers do not measure the server (exit 1)")
        raise typer.Exit(1)


@bench_app.command("compare")
def compare(
    a: Path = typer.Argument(..., help="bench.json of run A"),
    b: Path = typer.Argument(..., help="bench.json of run B"),
    noise: float = typer.Option(0.05, "--noise", help="Relative difference always treated as noise (0 or more)."),
    json_out: Path = typer.Option(None, "--json", help="Also write the comparison as JSON."),
) -> None:
    """Two runs side by side: ratios B/A and whether each difference exceeds run-to-run noise."""
    from hf2vllm import checks
    from hf2vllm.bench.compare_runs import compare_reports, render_comparison
    from hf2vllm.bench.outputs.json_file import read_json

    checks.number(noise, "--noise", minimum=0, meaning="a relative difference, e.g. 0.05")
    for path in (a, b):
        if path.is_dir():
            from hf2vllm.errors import InputError

            raise InputError(f"{path}: is a directory; give the report file itself (e.g. {path / 'bench.json'})")
        if path.is_file():  # a missing one is named by read_json; a binary one must not reach json
            checks.read_text(path, "benchmark report")
    checks.output_file(json_out, "--json")

    comparison = compare_reports(read_json(a), read_json(b), noise_floor=noise, a_label=str(a), b_label=str(b))
    console = Console()
    if not comparison.rows:
        console.print("no quantity appears in both reports (different modes or load levels)")
    else:
        render_comparison(comparison, console)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(comparison.model_dump_json(indent=2) + "\n", encoding="utf-8")


@bench_app.command("suite")
def suite(
    out: Path = typer.Option(Path("docs/bench"), "--out", "-o", help="Directory for bench.json, CSV, HTML, logs."),
    markdown: Path = typer.Option(Path("docs/benchmarks.md"), "--markdown", help="Markdown page to (re)write."),
    requests: int = typer.Option(16, "--requests", min=1),
    max_new_tokens: int = typer.Option(32, "--max-new-tokens", min=1),
    decay_tokens: int = typer.Option(256, "--decay-tokens", min=2),
    decay_bucket: int = typer.Option(64, "--decay-bucket", min=1),
    rounds: int = typer.Option(12, "--crosscheck-rounds", min=1,
                               help="Cross-check rounds of both tools; the order alternates, so keep it even."),
    crosscheck_tokens: int = typer.Option(8, "--crosscheck-tokens", min=1,
                                          help="Output tokens per cross-check request."),
    stages: str = typer.Option("offline,hf_decay,serve,served_decay,crosscheck", "--stages",
                               help="Comma-separated stages to run (order is fixed)."),
    resume: bool = typer.Option(False, "--resume", help="Keep sections of OUT/bench.json that are not re-run."),
    verbose: bool = typer.Option(False, "--verbose"),
) -> None:
    """What `make bench` runs: offline, decay, a served sweep and the cross-check vs `vllm bench serve`."""
    from hf2vllm import checks
    from hf2vllm.bench.suite import STAGES

    for stage in [st.strip() for st in stages.split(",") if st.strip()] or [""]:
        checks.choice(stage, "--stages", STAGES)
    checks.output_dir(out, "--out")
    checks.output_file(markdown, "--markdown")
    quiet_model_libraries(verbose)
    from hf2vllm.bench.outputs.terminal import render_report
    from hf2vllm.bench.suite import SuiteOptions, run_suite

    options = SuiteOptions(out_dir=out, markdown=markdown, requests=requests, max_new_tokens=max_new_tokens,
                           decay_tokens=decay_tokens, decay_bucket=decay_bucket, crosscheck_rounds=rounds,
                           crosscheck_max_new_tokens=crosscheck_tokens,
                           stages=[st.strip() for st in stages.split(",") if st.strip()], resume=resume)
    console = Console()
    with console.status("starting") as spinner:
        report = run_suite(options, on_status=lambda m: (spinner.update(m), console.log(m)))
    render_report(report, console)
    console.print(f"written: {out}/bench.json, CSV, {out}/bench.html, {markdown}")


@bench_app.command("verdict")
def verdict(
    model: str = typer.Option(None, "--model", "-m", help="Checkpoint dir or cached model name (default: bundled)."),
    dtype: str = typer.Option("float32", "--dtype"),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", min=1, help="New tokens per request, as `hf2vllm compare`."),
    limit: int = typer.Option(None, "--limit", min=1, help="Only the first N requests (default: all)."),
    repeats: int = typer.Option(1, "--repeats", min=1,
                                help="Runs per path, alternating ABBA; medians are reported."),
    warmup: bool = typer.Option(True, "--warmup/--no-warmup",
                                help="One untimed vLLM-alone run first, to take the session's cold start."),
    against: bool = typer.Option(True, "--against/--no-against",
                                 help="Also time `compare --against REF` (one record made first, in no ratio)."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda (HF on that device; vLLM's own default)."),
    out: Path = typer.Option(Path("docs/bench/verdict.json"), "--out", "-o", help="JSON result to write."),
    markdown: Path = typer.Option(Path("docs/bench-verdict.md"), "--markdown", help="Markdown page to write."),
    verbose: bool = typer.Option(False, "--verbose", help="Show vLLM/Transformers logs."),
) -> None:
    """Time to a verdict: compare's wall time / vLLM's own load + generate (measured alone), old path (HF generate)
    vs new (teacher forcing) vs against a record (compare --against REF)."""
    quiet_model_libraries(verbose)
    from rich.table import Table

    from hf2vllm.bench.verdict_time import (
        TABLE_HEADERS,
        run_verdict_time,
        table_rows,
        verdict_sentence,
        workload_line,
        write_json,
        write_markdown,
    )
    from hf2vllm.dtypes import normalise_dtype
    from hf2vllm.errors import InputError

    if device not in ("cpu", "cuda"):
        raise InputError(f"--device: expected cpu or cuda, got {device!r}")
    from hf2vllm import checks
    from hf2vllm.models import resolve_model

    checks.output_file(out, "--out")
    checks.output_file(markdown, "--markdown")
    dtype = _dtype(dtype)
    checks.model_config(resolve_model(model), "--model")
    console = Console()
    with _bars(console) as bars:
        from hf2vllm.commands.progress import progress_callbacks

        on_status, progress = progress_callbacks(bars)
        result = run_verdict_time(model=model, dtype=normalise_dtype(dtype), max_new_tokens=max_new_tokens,
                                  limit=limit, device=device, repeats=repeats, warmup=warmup,  # type: ignore[arg-type]
                                  against=against,
                                  progress=progress, on_status=on_status,
                                  on_run=lambda partial: write_json(partial, out))
    table = Table(title="time to a verdict: " + workload_line(result))
    for i, header in enumerate(TABLE_HEADERS):
        table.add_column(header, justify="left" if i == 0 else "right")
    for row in table_rows(result):
        table.add_row(*row)
    console.print(table)
    console.print(verdict_sentence(result))
    for note in result.notes:
        console.print(f"note: {note}")
    console.print(f"written: {write_json(result, out)}, {write_markdown(result, markdown)}")


@bench_app.command("docs")
def docs(
    report_json: Path = typer.Argument(Path("docs/bench/bench.json"), help="bench.json to render"),
    markdown: Path = typer.Option(Path("docs/benchmarks.md"), "--markdown"),
) -> None:
    """Re-render docs/benchmarks.md (and bench.html next to the JSON) from a bench.json."""
    from hf2vllm.bench.outputs.html import write_html
    from hf2vllm.bench.outputs.json_file import read_json
    from hf2vllm.bench.outputs.markdown import write_markdown

    report = read_json(report_json)
    rel = report_json.parent.resolve()
    try:
        prefix = rel.relative_to(markdown.parent.resolve()).as_posix()
    except ValueError:
        prefix = str(rel)
    write_markdown(report, markdown, json_name=f"{prefix}/bench.json", html_name=f"{prefix}/bench.html")
    write_html(report, report_json.parent / "bench.html")
    Console().print(f"written: {markdown}, {report_json.parent / 'bench.html'}")


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
