"""``hf2vllm record``: run the HF reference once and keep it, for ``compare --against``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hf2vllm.commands.quiet import quiet_model_libraries


def record(
    out: Path = typer.Option(..., "--out", "-o", help="Reference directory to write (manifest.json + requests.jsonl)."),
    model: str = typer.Option(None, "--model", "-m", help="Checkpoint dir or cached model name (default: the bundled smollm2-135m)."),
    prompts: Path = typer.Option(None, "--prompts", "-p", help="Prompt file, JSONL or OpenAI batch format (default: the bundled set of 50)."),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", min=1, help="Tokens to generate per request."),
    hf_kwargs: str = typer.Option(
        None, "--hf-kwargs", help="Your generate() kwargs as JSON (or @file.json), resolved as Transformers would; "
        "replaces --max-new-tokens. Greedy only."),
    generation_config: Path = typer.Option(None, "--generation-config", help="generation_config.json to resolve --hf-kwargs against (default: the model's own)."),
    dtype: str = typer.Option("float32", "--dtype", help="float32 | bfloat16 | float16."),
    limit: int = typer.Option(None, "--limit", min=1, help="Only the first N requests."),
    max_model_len: int = typer.Option(None, "--max-model-len", help="Context limit for the length check."),
    logprobs: int = typer.Option(5, "--logprobs", min=1, help="Top-k logprobs kept per generated token."),
    hf_option: list[str] = typer.Option(
        [], "--hf-option", help="KEY=VALUE HF load or prompt option (device=cuda, attn_implementation=sdpa, "
        "chat_template=false, device_map=auto, max_memory='{\"0\": \"20GiB\", \"cpu\": \"60GiB\"}', ...). Repeatable."),
    hf_batch_size: int = typer.Option(32, "--hf-batch-size", min=1, help="Most requests in one generate() batch (and per journaled batch)."),
    hf_batch_tokens: int = typer.Option(16384, "--hf-batch-tokens", min=1, help="Most padded positions in one HF batch."),
    calibration_requests: int = typer.Option(16, "--calibration-requests", min=1, help="Requests scored again to measure HF's own noise."),
    resume: bool = typer.Option(False, "--resume", help="Continue a record that stopped (same options): recorded requests are kept."),
    ray_workers: int = typer.Option(
        None, "--ray-workers", min=1, help="Run N HF replicas on a Ray cluster (needs the ray extra); the same answers "
        "as one process. docs/scale.md."),
    ray_address: str = typer.Option(None, "--ray-address", help="Ray cluster to join (`ray start --head` prints it; default: start a local one)."),
    ray_worker_cpus: float = typer.Option(1, "--ray-worker-cpus", help="CPU cores (and torch threads) per Ray worker."),
    ray_worker_gpus: float = typer.Option(
        None, "--ray-worker-gpus", help="GPUs per Ray worker (default 1 for a GPU reference; a node's GPUs with device_map=auto)."),
    verbose: bool = typer.Option(False, "--verbose", help="Show Transformers logs."),
) -> None:
    """Run the HF reference once and write it to a directory that `hf2vllm compare --against DIR` checks any
    later candidate against (vLLM upgrade, fp8 KV cache, quantised copy, a server) without loading HF again.

    Answers are written as each batch finishes; after a crash or Ctrl-C, run the same command with --resume.
    Exit codes: 0 recorded, 2 bad input.
    """
    quiet_model_libraries(verbose)
    from hf2vllm.commands.progress import progress_callbacks
    from hf2vllm.reference.record import record as record_reference

    console = Console()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bars:
        on_status, progress = progress_callbacks(bars)
        manifest = record_reference(
            out, model, prompts, max_new_tokens=max_new_tokens, hf_kwargs=hf_kwargs, generation_config=generation_config,
            dtype=dtype, limit=limit, max_model_len=max_model_len, logprobs=logprobs, hf_options=hf_option,
            hf_batch_size=hf_batch_size, hf_batch_tokens=hf_batch_tokens, calibration_requests=calibration_requests,
            resume=resume, ray_workers=ray_workers, ray_address=ray_address, ray_worker_cpus=ray_worker_cpus,
            ray_worker_gpus=ray_worker_gpus, progress=progress, on_status=on_status,
        )
    size = sum(p.stat().st_size for p in Path(out).iterdir() if p.is_file())
    noise = f"HF's own noise {manifest.noise.noise:.3g}" if manifest.noise else "no noise measured (no answers)"
    console.print(
        f"recorded {manifest.prompts.requests} requests of {manifest.model.path} ({manifest.dtype}, "
        f"max_new_tokens {manifest.generation.get('max_new_tokens')}) in {manifest.record_seconds:.1f} s; {noise}"
    )
    console.print(f"written: {out} ({size / 1e6:.2f} MB); check a candidate with: hf2vllm compare --against {out}")


def register(app: typer.Typer) -> None:
    app.command("record")(record)
