"""``hf2vllm compare``: run both backends on the same prompts and show where they agree."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hf2vllm.commands.progress import progress_callbacks
from hf2vllm.commands.quiet import quiet_model_libraries


def compare(
    model: str = typer.Option(None, "--model", "-m", help="Checkpoint dir or cached model name (default: the bundled smollm2-135m)."),
    prompts: Path = typer.Option(None, "--prompts", "-p", help="JSONL prompt file (default: the bundled set of 50)."),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", min=1, help="Tokens to generate per request."),
    dtype: str = typer.Option("float32", "--dtype", help="float32 | bfloat16 | float16, on both sides."),
    out: Path = typer.Option(None, "--out", "-o", help="Write DIR/report.json."),
    limit: int = typer.Option(None, "--limit", min=1, help="Only the first N requests."),
    max_model_len: int = typer.Option(None, "--max-model-len", help="Context limit for vLLM and the length check."),
    hf_batch_size: int = typer.Option(32, "--hf-batch-size", min=1, help="Most requests in one HF generate() batch (left padded; long prompts are batched smaller, see --hf-batch-tokens)."),
    hf_batch_tokens: int = typer.Option(16384, "--hf-batch-tokens", min=1, help="Most padded positions (rows x (longest prompt + max new tokens)) in one HF batch."),
    vllm_batch_size: int = typer.Option(None, "--vllm-batch-size", min=1, help="Submit to vLLM in chunks of N (default: all at once)."),
    kv_cache_gib: float = typer.Option(None, "--kv-cache-gib", help="vLLM KV cache size (default on CPU: 2 GiB)."),
    min_exact_match: float = typer.Option(None, "--min-exact-match", min=0.0, max=1.0, help="Exit 1 when the exact-match rate is below this."),
    only_mismatches: bool = typer.Option(False, "--only-mismatches", help="List only requests that differ."),
    mm_processor_kwargs: str = typer.Option(
        None, "--mm-processor-kwargs", help='VL models: image settings for both sides, JSON, e.g. \'{"size": {"longest_edge": 128}}\'.'
    ),
    vllm_mm_processor_kwargs: str = typer.Option(
        None, "--vllm-mm-processor-kwargs", help="VL models: vLLM-only image settings (reproduce a migrated script; the input check explains the mismatch)."
    ),
    hf_kwargs: str = typer.Option(
        None, "--hf-kwargs", help='Your generate() kwargs as JSON (or @file.json), e.g. \'{"max_new_tokens": 32, "repetition_penalty": 1.2}\': resolved as Transformers would and translated for vLLM (hf2vllm translate); replaces --max-new-tokens. Greedy only: token-by-token parity refuses do_sample=true.'
    ),
    generation_config: Path = typer.Option(
        None, "--generation-config", help="generation_config.json to resolve --hf-kwargs against (default: the model's own)."
    ),
    verbose: bool = typer.Option(False, "--verbose", help="Show vLLM/Transformers logs."),
    hf_option: list[str] = typer.Option(
        [], "--hf-option", help="KEY=VALUE on the HF side only: load option (dtype, ...), generation setting "
        "(repetition_penalty, stop_token_ids, ...), prompt option (add_bos_token, ...) or skip_special_tokens. Repeatable."
    ),
    vllm_option: list[str] = typer.Option(
        [], "--vllm-option", help="KEY=VALUE on the vLLM side only (dtype, max_model_len, any vLLM EngineArgs field, "
        "a generation setting, a prompt option); unknown keys are refused before anything loads. Repeatable."
    ),
    no_chat_template: str = typer.Option(None, "--no-chat-template", help="hf | vllm: that side skips the chat template (plain text prompt)."),
    vllm_tokenize: bool = typer.Option(False, "--vllm-tokenize", help="vLLM tokenises the text prompt itself, as a migrated llm.generate(text) would."),
    logprobs: int = typer.Option(5, "--logprobs", min=0, help="Top-k logprobs per token on both sides (raw mode)."),
    explain: bool = typer.Option(True, "--explain/--no-explain", help="Teacher-forced scoring, verdicts, cause checks, batch probe."),
    hf_generate: bool = typer.Option(
        False, "--hf-generate", help="HF generate()s every request (the slower path). Default for greedy runs: "
        "vLLM generates, HF scores its answers in batched forward passes and generates only where its greedy pick differs."
    ),
    calibration_requests: int = typer.Option(16, "--calibration-requests", min=1, help="Requests HF scores a second time in its other batch layout (alone vs padded batches) to measure its own numerical noise (the near-tie threshold)."),
    task: str = typer.Option("generate", "--task", help="generate | hidden-states (per-token last layer) | embed (sequence embeddings)."),
    probe: Path = typer.Option(None, "--probe", help="Probe head (safetensors/torch state dict) to run on both sides' hidden states."),
    lora: Path = typer.Option(None, "--lora", help="PEFT LoRA adapter dir: inspected first, then verified applied on both sides."),
    vllm_normalise: str = typer.Option("auto", "--vllm-normalise", help="Pooling: auto | off | on | default (vLLM's own default)."),
    min_cosine: float = typer.Option(0.999, "--min-cosine", help="Pooling: lowest per-row cosine that passes."),
    quantization: str = typer.Option(None, "--quantization", help="Pooling: vLLM-side quantisation method (default: --vllm-model's quant_method); the delta is measured, the cosine gate reported, not enforced."),
    vllm_model: str = typer.Option(None, "--vllm-model", help="Pooling: checkpoint for the vLLM side only, e.g. a quantised copy (hf2vllm models build-rtn-w8a8 | build-rtn-gptq); HF runs --model. Same tokenizer and architecture required."),
    reference: str = typer.Option("hf", "--reference", help="hf | vllm | server: the side migrated from."),
    candidate: str = typer.Option(None, "--candidate", help="hf | vllm | server (default: vllm; server when --server is given)."),
    server: str = typer.Option(None, "--server", help="OpenAI base URL of a running server (http://HOST:PORT/v1) for a server side."),
    served_model: str = typer.Option(None, "--served-model", help="Server side: model name (default: the only one served)."),
    api_key_env: str = typer.Option(None, "--api-key-env", help="Server side: environment variable holding the API key."),
    concurrency: int = typer.Option(64, "--concurrency", min=1, help="Server side: requests in flight."),
    stream: bool = typer.Option(False, "--stream", help="Server side: stream answers (records time to first token)."),
    journal: Path = typer.Option(None, "--journal", help="Server side: journal each answer to this JSONL file."),
    resume: bool = typer.Option(False, "--resume", help="Server side: skip the requests already in --journal."),
    request_timeout: float = typer.Option(120.0, "--request-timeout", help="Server side: seconds per attempt."),
    max_retries: int = typer.Option(6, "--max-retries", min=0, help="Server side: retries on 429/5xx/connection errors."),
    requests_per_minute: float = typer.Option(None, "--requests-per-minute", help="Server side: client-side limit (external APIs; off by default)."),
    tokens_per_minute: float = typer.Option(None, "--tokens-per-minute", help="Server side: client-side limit (external APIs; off by default)."),
) -> None:
    """Greedy-decode every prompt on vLLM and check HF Transformers reproduces it, token by token.

    Both backends get the same prompt token ids (chat template applied once). HF scores vLLM's answers
    (teacher forcing) and generates only where its greedy pick differs; --hf-generate makes HF generate
    everything. Exit codes: 0 ok, 1 exact-match rate below --min-exact-match, 2 bad input.
    """
    from hf2vllm import checks
    from hf2vllm.commands.compare_checks import check_compare_options

    check_compare_options(dict(locals()))  # every option, before any model loads (issue #20)
    checks.api_key_env(api_key_env)
    if server is not None:
        checks.server_url(server, "--server", api_key_env=api_key_env)
        from hf2vllm.server.client import ClientConfig
        from hf2vllm.server.diagnostics import list_models

        # Reachable, authorised and serving, before seconds of imports and minutes of the other side.
        list_models(ClientConfig(base_url=server, api_key_env=api_key_env))
    quiet_model_libraries(verbose)
    if task != "generate" or lora or probe or vllm_model:
        from hf2vllm.commands.compare_pooling import run_pooling_command

        return run_pooling_command(
            task=task, model=model, prompts=prompts, limit=limit, dtype=dtype, max_model_len=max_model_len,
            kv_cache_gib=kv_cache_gib, max_new_tokens=max_new_tokens, probe=probe, lora=lora,
            vllm_normalise=vllm_normalise, min_cosine=min_cosine, quantization=quantization, out=out,
            vllm_model=vllm_model,
        )
    from hf2vllm.dtypes import normalise_dtype
    from hf2vllm.errors import ParityGateError
    from hf2vllm.parity.run import BackendChoice, CompareOptions, run_compare
    from hf2vllm.report.json_file import write_report
    from hf2vllm.report.terminal import render_report

    vllm_options: dict[str, object] = {}
    if max_model_len:
        vllm_options["max_model_len"] = max_model_len
    if kv_cache_gib:
        vllm_options["kv_cache_gib"] = kv_cache_gib
    if vllm_batch_size:
        vllm_options["batch_size"] = vllm_batch_size
    from hf2vllm.commands.multimodal import parse_json_option

    shared_mm = parse_json_option(mm_processor_kwargs, "--mm-processor-kwargs")
    vllm_mm = parse_json_option(vllm_mm_processor_kwargs, "--vllm-mm-processor-kwargs")
    if vllm_mm is not None:
        vllm_options["mm_processor_kwargs"] = {**(shared_mm or {}), **vllm_mm}
    from hf2vllm.server.compare_sides import client_summary_lines, resolve_sides, server_options

    sides = resolve_sides(reference, candidate, server)
    side_options: dict[str, dict[str, object]] = {"hf": {"batch_size": hf_batch_size, "max_batch_tokens": hf_batch_tokens}, "vllm": vllm_options}
    if server:
        side_options["server"] = server_options(
            server, served_model=served_model, api_key_env=api_key_env, concurrency=concurrency, stream=stream,
            journal=str(journal) if journal else None, resume=resume, timeout_s=request_timeout,
            max_retries=max_retries, requests_per_minute=requests_per_minute, tokens_per_minute=tokens_per_minute,
        )
    spec = None
    if hf_kwargs is not None or generation_config is not None:
        from hf2vllm.commands.translate import parse_json_object
        from hf2vllm.models import resolve_model
        from hf2vllm.translation import spec_for_compare

        settings = parse_json_object(hf_kwargs, "--hf-kwargs") if hf_kwargs is not None else {}
        spec = spec_for_compare(settings, generation_config, resolve_model(model))
        max_new_tokens = spec.max_new_tokens
    reference_choice, candidate_choice = per_side_choices(
        [BackendChoice(kind=sides[0], options=side_options[sides[0]]),
         BackendChoice(kind=sides[1], options=side_options[sides[1]])],
        hf_option, vllm_option, no_chat_template, vllm_tokenize,
    )
    options = CompareOptions(
        model=model,
        prompts=prompts,
        max_new_tokens=max_new_tokens,
        spec=spec,
        dtype=normalise_dtype(dtype),
        limit=limit,
        max_model_len=max_model_len,
        reference=reference_choice,
        candidate=candidate_choice,
        logprobs=logprobs,
        explain=explain,
        mm_processor_kwargs=shared_mm,
        hf_generate=hf_generate,
        calibration_requests=calibration_requests,
    )
    from hf2vllm import interrupt

    if journal:  # a signal's line names the journal and how many answers it keeps
        from hf2vllm.server.journal import read_journal

        interrupt.saves(journal, lambda p: f"{len(read_journal(p)[1])} answers in {p} (--resume continues from them)")
    console = Console()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bars:
        on_status, progress = progress_callbacks(bars)

        report = run_compare(options, progress=progress, on_status=on_status)
    render_report(report, console, only_mismatches=only_mismatches)
    for line in client_summary_lines(report.backends):
        console.print(line)
    if out:
        from hf2vllm.report.html import write_html

        path = write_report(report, out)
        console.print(f"report written to {path} and {write_html(report, out)}")
    if min_exact_match is not None and report.summary.exact_match_rate < min_exact_match:
        raise ParityGateError(
            f"exact-match rate {report.summary.exact_match_rate:.3f} is below --min-exact-match {min_exact_match}"
        )


def per_side_choices(
    choices: list, hf_option: list[str], vllm_option: list[str], no_chat_template: str | None, vllm_tokenize: bool
) -> list:
    """Apply --hf-option/--vllm-option/--no-chat-template/--vllm-tokenize to the side of that kind."""
    from hf2vllm.errors import InputError
    from hf2vllm.parity.overrides import apply_side_options

    if no_chat_template not in (None, "hf", "vllm"):
        raise InputError(f"--no-chat-template {no_chat_template!r}: expected hf or vllm")
    extra = {
        "hf": list(hf_option) + (["chat_template=false"] if no_chat_template == "hf" else []),
        "vllm": list(vllm_option)
        + (["chat_template=false"] if no_chat_template == "vllm" else [])
        + (["backend_tokenizes=true"] if vllm_tokenize else []),
    }
    for kind, assignments in extra.items():
        if assignments and not any(c.kind == kind for c in choices):
            raise InputError(f"--{kind}-option/--no-chat-template {kind}: no {kind} side in this comparison")
    return [apply_side_options(c, extra.get(c.kind, []), f"--{c.kind}-option") for c in choices]


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)
