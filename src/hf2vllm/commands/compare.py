"""``hf2vllm compare``: run both backends on the same prompts and show where they agree.

A thin shell over ``hf2vllm.api.compare``: it parses the options, checks them all before anything
loads, draws progress, prints the report and turns the gate into the exit code.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hf2vllm.commands.progress import progress_callbacks
from hf2vllm.commands.quiet import quiet_model_libraries


# The sections of `hf2vllm compare --help`.
MODEL = "Model and prompts"
GENERATION = "Generation"
VERDICTS = "Verdicts and gate"
PER_SIDE = "Per-side differences"
HF_SIDE = "HF side"
VLLM_SIDE = "vLLM side"
SERVER = "Server side"
POOLING = "Pooling / LoRA / probe"
OUTPUT = "Output"


def compare(
    model: str = typer.Option(None, "--model", "-m", rich_help_panel=MODEL, help="Checkpoint dir or cached model name (default: the bundled smollm2-135m)."),
    prompts: Path = typer.Option(None, "--prompts", "-p", rich_help_panel=MODEL, help="JSONL prompt file (default: the bundled set of 50)."),
    against: Path = typer.Option(
        None, "--against", rich_help_panel=MODEL, help="A reference directory from `hf2vllm record`: no HF model loads; the "
        "candidate is checked against the recorded answers. Model, tokenizer, template, prompts and settings must be the "
        "recorded ones (exit 2 names what differs); a deliberately different candidate model goes in --vllm-model."),
    limit: int = typer.Option(None, "--limit", rich_help_panel=MODEL, min=1, help="Only the first N requests."),
    reference: str = typer.Option("hf", "--reference", rich_help_panel=MODEL, help="hf | vllm | server: the side migrated from."),
    candidate: str = typer.Option(None, "--candidate", rich_help_panel=MODEL, help="hf | vllm | server (default: vllm; server when --server is given)."),
    dtype: str = typer.Option(None, "--dtype", rich_help_panel=MODEL, help="float32 | bfloat16 | float16, on both sides (default: float32; with --against, the recorded dtype)."),
    max_model_len: int = typer.Option(None, "--max-model-len", rich_help_panel=MODEL, help="Context limit for vLLM and the length check."),
    max_new_tokens: int = typer.Option(None, "--max-new-tokens", rich_help_panel=GENERATION, min=1, help="Tokens to generate per request (default: 64; with --against, the recorded number)."),
    hf_kwargs: str = typer.Option(
        None, "--hf-kwargs", rich_help_panel=GENERATION, help='Your generate() kwargs as JSON (or @file.json), e.g. \'{"max_new_tokens": 32, "repetition_penalty": 1.2}\': resolved as Transformers would and translated for vLLM (hf2vllm translate); replaces --max-new-tokens. Greedy only: token-by-token parity refuses do_sample=true.'
    ),
    generation_config: Path = typer.Option(
        None, "--generation-config", rich_help_panel=GENERATION, help="generation_config.json to resolve --hf-kwargs against (default: the model's own)."
    ),
    logprobs: int = typer.Option(5, "--logprobs", rich_help_panel=GENERATION, min=0, help="Top-k logprobs per token on both sides (raw mode)."),
    mm_processor_kwargs: str = typer.Option(
        None, "--mm-processor-kwargs", rich_help_panel=GENERATION, help='VL models: image settings for both sides, JSON, e.g. \'{"size": {"longest_edge": 128}}\'.'
    ),
    explain: bool = typer.Option(True, "--explain/--no-explain", rich_help_panel=VERDICTS, help="Teacher-forced scoring, verdicts, cause checks, batch probe."),
    hf_generate: bool = typer.Option(
        False, "--hf-generate", rich_help_panel=VERDICTS, help="HF generate()s every request (the slower path). Default for greedy runs: "
        "vLLM generates, HF scores its answers in batched forward passes and generates only where its greedy pick differs."
    ),
    calibration_requests: int = typer.Option(16, "--calibration-requests", rich_help_panel=VERDICTS, min=1, help="Requests HF scores a second time in its other batch layout (alone vs padded batches) to measure its own numerical noise (the near-tie threshold)."),
    min_exact_match: float = typer.Option(None, "--min-exact-match", rich_help_panel=VERDICTS, min=0.0, max=1.0, help="Exit 1 when the exact-match rate is below this (the worst group's, see --gate)."),
    gate: str = typer.Option(
        "worst-group", "--gate", rich_help_panel=VERDICTS, help="worst-group | overall: the rate --min-exact-match is held against. Default "
        "worst-group: the group (--group-by) with the lowest exact-match rate, the strictest meaningful gate, since "
        "the overall rate averages the groups and a passing average can hide a failing domain; without groups it "
        "is the whole run. overall: the run's rate."
    ),
    group_by: str = typer.Option(
        None, "--group-by", rich_help_panel=VERDICTS, help="Prompt-file metadata key to group the verdicts by (default: domain, when any "
        "request has it; requests without the key form the group \"(none)\"). The terminal and report.html show "
        "the groups worst first."
    ),
    vllm_mm_processor_kwargs: str = typer.Option(
        None, "--vllm-mm-processor-kwargs", rich_help_panel=PER_SIDE, help="VL models: vLLM-only image settings (reproduce a migrated script; the input check explains the mismatch)."
    ),
    hf_option: list[str] = typer.Option(
        [], "--hf-option", rich_help_panel=PER_SIDE, help="KEY=VALUE on the HF side only: load option (dtype, device_map=auto, max_memory=JSON: docs/scale.md, ...), generation setting "
        "(repetition_penalty, stop_token_ids, ...), prompt option (add_bos_token, ...) or skip_special_tokens. Repeatable."
    ),
    vllm_option: list[str] = typer.Option(
        [], "--vllm-option", rich_help_panel=PER_SIDE, help="KEY=VALUE on the vLLM side only (dtype, max_model_len, any vLLM EngineArgs field, "
        "a generation setting, a prompt option); unknown keys are refused before anything loads. Repeatable."
    ),
    no_chat_template: str = typer.Option(None, "--no-chat-template", rich_help_panel=PER_SIDE, help="hf | vllm: that side skips the chat template (plain text prompt)."),
    vllm_tokenize: bool = typer.Option(False, "--vllm-tokenize", rich_help_panel=PER_SIDE, help="vLLM tokenises the text prompt itself, as a migrated llm.generate(text) would."),
    hf_batch_size: int = typer.Option(32, "--hf-batch-size", rich_help_panel=HF_SIDE, min=1, help="Most requests in one HF generate() batch (left padded; long prompts are batched smaller, see --hf-batch-tokens)."),
    hf_batch_tokens: int = typer.Option(16384, "--hf-batch-tokens", rich_help_panel=HF_SIDE, min=1, help="Most padded positions (rows x (longest prompt + max new tokens)) in one HF batch."),
    ray_workers: int = typer.Option(
        None, "--ray-workers", rich_help_panel=HF_SIDE, min=1, help="Run the HF reference as N replicas on a Ray cluster "
        "(needs the ray extra): it is recorded (the same answers as one process) into --reference-dir, then the "
        "candidate is checked against it as with --against. docs/scale.md."),
    ray_address: str = typer.Option(None, "--ray-address", rich_help_panel=HF_SIDE, help="Ray cluster to join (`ray start --head` prints it; default: start a local one)."),
    ray_worker_cpus: float = typer.Option(1, "--ray-worker-cpus", rich_help_panel=HF_SIDE, help="CPU cores (and torch threads) per Ray worker."),
    ray_worker_gpus: float = typer.Option(
        None, "--ray-worker-gpus", rich_help_panel=HF_SIDE, help="GPUs per Ray worker (default 1 for a GPU reference; a node's GPUs with device_map=auto)."),
    reference_dir: Path = typer.Option(
        None, "--reference-dir", rich_help_panel=HF_SIDE, help="With --ray-workers: where the reference is recorded "
        "(default: OUT/reference, else a temporary folder). Kept, it is resumed by the same command after a crash "
        "and reused by later runs (or `compare --against DIR`)."),
    vllm_batch_size: int = typer.Option(None, "--vllm-batch-size", rich_help_panel=VLLM_SIDE, min=1, help="Submit to vLLM in chunks of N (default: all at once)."),
    kv_cache_gib: float = typer.Option(None, "--kv-cache-gib", rich_help_panel=VLLM_SIDE, help="vLLM KV cache size (default on CPU: 2 GiB)."),
    server: str = typer.Option(None, "--server", rich_help_panel=SERVER, help="OpenAI base URL of a running server (http://HOST:PORT/v1) for a server side."),
    served_model: str = typer.Option(None, "--served-model", rich_help_panel=SERVER, help="Server side: model name (default: the only one served)."),
    api_key_env: str = typer.Option(None, "--api-key-env", rich_help_panel=SERVER, help="Server side: environment variable holding the API key."),
    concurrency: int = typer.Option(64, "--concurrency", rich_help_panel=SERVER, min=1, help="Server side: requests in flight."),
    stream: bool = typer.Option(False, "--stream", rich_help_panel=SERVER, help="Server side: stream answers (records time to first token)."),
    journal: Path = typer.Option(None, "--journal", rich_help_panel=SERVER, help="Server side: journal each answer to this JSONL file."),
    resume: bool = typer.Option(False, "--resume", rich_help_panel=SERVER, help="Server side: skip the requests already in --journal."),
    request_timeout: float = typer.Option(120.0, "--request-timeout", rich_help_panel=SERVER, help="Server side: seconds per attempt."),
    max_retries: int = typer.Option(6, "--max-retries", rich_help_panel=SERVER, min=0, help="Server side: retries on 429/5xx/connection errors."),
    requests_per_minute: float = typer.Option(None, "--requests-per-minute", rich_help_panel=SERVER, help="Server side: client-side limit (external APIs; off by default)."),
    tokens_per_minute: float = typer.Option(None, "--tokens-per-minute", rich_help_panel=SERVER, help="Server side: client-side limit (external APIs; off by default)."),
    task: str = typer.Option("generate", "--task", rich_help_panel=POOLING, help="generate | hidden-states (per-token last layer) | embed (sequence embeddings)."),
    probe: Path = typer.Option(None, "--probe", rich_help_panel=POOLING, help="Probe head (safetensors/torch state dict) to run on both sides' hidden states."),
    lora: Path = typer.Option(None, "--lora", rich_help_panel=POOLING, help="PEFT LoRA adapter dir: inspected first, then verified applied on both sides."),
    vllm_normalise: str = typer.Option("auto", "--vllm-normalise", rich_help_panel=POOLING, help="Pooling: auto | off | on | default (vLLM's own default)."),
    min_cosine: float = typer.Option(0.999, "--min-cosine", rich_help_panel=POOLING, help="Pooling: lowest per-row cosine that passes."),
    quantization: str = typer.Option(None, "--quantization", rich_help_panel=POOLING, help="Pooling: vLLM-side quantisation method (default: --vllm-model's quant_method); the delta is measured, the cosine gate reported, not enforced."),
    vllm_model: str = typer.Option(None, "--vllm-model", rich_help_panel=POOLING, help="Checkpoint for the vLLM side only, e.g. a quantised copy (hf2vllm models build-rtn-w8a8 | build-rtn-gptq); HF runs --model. Same tokenizer and architecture required. For pooling runs, or with --against (the report then says first that the models differ)."),
    out: Path = typer.Option(None, "--out", "-o", rich_help_panel=OUTPUT, help="Write DIR/report.json and DIR/report.html."),
    only_mismatches: bool = typer.Option(False, "--only-mismatches", rich_help_panel=OUTPUT, help="List only requests that differ."),
    verbose: bool = typer.Option(False, "--verbose", rich_help_panel=OUTPUT, help="Show vLLM/Transformers logs."),
) -> None:
    """Greedy-decode every prompt on vLLM and check HF Transformers reproduces it, token by token.

    Both backends get the same prompt token ids (chat template applied once). HF scores vLLM's answers
    (teacher forcing) and generates only where its greedy pick differs; --hf-generate makes HF generate
    everything. Exit codes: 0 ok, 1 exact-match rate (of the worst group, --gate) below --min-exact-match,
    2 bad input.
    """
    from hf2vllm.commands.compare_checks import check_compare_options, is_pooling_run

    options = dict(locals())
    check_compare_options(options)  # every option, before any model loads (issue #20)
    quiet_model_libraries(verbose)
    if is_pooling_run(options):
        from hf2vllm.commands.compare_pooling import run_pooling_command

        return run_pooling_command(
            task=task, model=model, prompts=prompts, limit=limit, dtype=dtype or "float32", max_model_len=max_model_len,
            kv_cache_gib=kv_cache_gib, max_new_tokens=max_new_tokens or 64, probe=probe, lora=lora,
            vllm_normalise=vllm_normalise, min_cosine=min_cosine, quantization=quantization, out=out,
            vllm_model=vllm_model, hf_option=hf_option,
        )
    from hf2vllm import api, interrupt
    from hf2vllm.parity.groups import check_gate
    from hf2vllm.report.html import HTML_FILE
    from hf2vllm.report.json_file import REPORT_FILE
    from hf2vllm.report.terminal import render_report
    from hf2vllm.server.compare_sides import client_summary_lines

    if journal:  # a signal's line names the journal and how many answers it keeps
        from hf2vllm.server.journal import read_journal

        interrupt.saves(journal, lambda p: f"{len(read_journal(p)[1])} answers in {p} (--resume continues from them)")
    console = Console()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bars:
        on_status, progress = progress_callbacks(bars)
        report = api.compare(
            model, prompts, against=against, vllm_model=vllm_model, max_new_tokens=max_new_tokens, hf_kwargs=hf_kwargs,
            generation_config=generation_config,
            dtype=dtype, limit=limit, max_model_len=max_model_len, logprobs=logprobs, explain=explain,
            hf_generate=hf_generate, calibration_requests=calibration_requests, group_by=group_by,
            reference=reference, candidate=candidate, hf_options=hf_option, vllm_options=vllm_option,
            no_chat_template=no_chat_template, vllm_tokenize=vllm_tokenize, mm_processor_kwargs=mm_processor_kwargs,
            vllm_mm_processor_kwargs=vllm_mm_processor_kwargs, hf_batch_size=hf_batch_size,
            hf_batch_tokens=hf_batch_tokens, ray_workers=ray_workers, ray_address=ray_address,
            ray_worker_cpus=ray_worker_cpus, ray_worker_gpus=ray_worker_gpus, reference_dir=reference_dir,
            vllm_batch_size=vllm_batch_size, kv_cache_gib=kv_cache_gib,
            server=server, served_model=served_model, api_key_env=api_key_env, concurrency=concurrency,
            stream=stream, journal=journal, resume=resume, request_timeout=request_timeout,
            max_retries=max_retries, requests_per_minute=requests_per_minute, tokens_per_minute=tokens_per_minute,
            out=out, progress=progress, on_status=on_status,
        )
    render_report(report, console, only_mismatches=only_mismatches)
    for line in client_summary_lines(report.backends):
        console.print(line)
    if out:
        console.print(f"report written to {out / REPORT_FILE} and {out / HTML_FILE}")
    check_gate(report.summary, report.groups, report.group_by, min_exact_match, gate)  # type: ignore[arg-type]


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)
