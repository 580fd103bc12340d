"""``hf2vllm calibrate``: start vLLM with the planned settings and compare its logged KV capacity."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("calibrate")
    def calibrate_command(
        model: Annotated[Optional[str], typer.Argument(help="Checkpoint directory or cached model name (default: bundled).")] = None,
        max_model_len: Annotated[int, typer.Option("--max-model-len")] = 2048,
        kv_cache_memory_gib: Annotated[Optional[float], typer.Option(
            "--kv-cache-memory-gib", help="KV space to plan and give vLLM (default 0.25).")] = 0.25,
        auto_memory: Annotated[bool, typer.Option(
            "--auto-memory", help="Let vLLM size the KV cache itself; the prediction then uses the memory it logged.")] = False,
        dtype: Annotated[str, typer.Option("--dtype")] = "float32",
        max_num_seqs: Annotated[Optional[int], typer.Option("--max-num-seqs")] = None,
        log_path: Annotated[Optional[Path], typer.Option("--log", help="Where to write the vLLM log.")] = None,
        timeout_s: Annotated[float, typer.Option("--timeout", help="Seconds to wait for the KV lines.")] = 300.0,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Start vLLM (CPU build, eager) with the plan, read `KV cache size` and `Maximum concurrency` from its log, and print predicted vs logged with the relative error."""
        from hf2vllm import checks
        from hf2vllm.deploy.plan import check_options
        from hf2vllm.errors import InputError

        # Everything checked before vLLM starts (it takes a minute to fail on a typo otherwise).
        check_options(device="cpu", max_model_len=max_model_len, dtype=dtype, max_num_seqs=max_num_seqs,
                      kv_cache_memory_gib=None if auto_memory else kv_cache_memory_gib)
        checks.positive(timeout_s, "--timeout", "seconds to wait for vLLM's KV cache lines")
        checks.output_file(log_path, "--log")
        from rich.console import Console
        from rich.table import Table

        from hf2vllm.deploy.calibrate import CalibrationRequest, calibrate
        from hf2vllm.models import resolve_model

        if model and Path(model).expanduser().is_file():
            raise InputError(f"MODEL {model}: calibrate starts vLLM, which needs the checkpoint directory (weights "
                             "and tokenizer), not one file; `hf2vllm plan FILE` plans from a config.json alone")
        path = Path(model).expanduser() if model and Path(model).expanduser().is_dir() else resolve_model(model)
        checks.model_config(path, "MODEL")
        result = calibrate(
            CalibrationRequest(
                model=str(path),
                max_model_len=max_model_len,
                kv_cache_memory_gib=None if auto_memory else kv_cache_memory_gib,
                dtype=dtype,
                max_num_seqs=max_num_seqs,
                timeout_s=timeout_s,
                log_path=log_path,
            )
        )
        if as_json:
            payload = result.model_dump(mode="json")
            payload["plan"] = {k: payload["plan"][k] for k in ("kv_cache_bytes_per_token", "block_size", "max_num_seqs", "max_num_batched_tokens", "vllm_serve_command")}
            typer.echo(json.dumps(payload, indent=2))
            return
        table = Table(title=f"calibration: {path.name} ({result.logged.device or 'CPU'}, max_model_len {result.plan.max_model_len})")
        for column in ("figure", "predicted", "logged by vLLM", "relative error"):
            table.add_column(column)
        logged = result.logged
        table.add_row("KV cache size (tokens)", f"{result.predicted_kv_cache_tokens:,}", f"{logged.kv_cache_tokens:,}", f"{result.relative_error_tokens:+.2%}")
        conc_err = (result.predicted_max_concurrency - logged.max_concurrency) / logged.max_concurrency
        table.add_row("maximum concurrency", f"{result.predicted_max_concurrency:.2f}x", f"{logged.max_concurrency:.2f}x", f"{conc_err:+.2%}")
        table.add_row("from the logged memory figure", f"{result.predicted_from_logged_memory_tokens:,}", f"{logged.kv_cache_tokens:,}", f"{result.relative_error_from_logged_memory:+.2%}")
        console = Console()
        console.print(table)
        console.print(f"memory: {result.memory_note}", highlight=False)
        console.print(f"KV bytes per token: {result.plan.kv_cache_bytes_per_token:,}; block size {result.plan.block_size}", highlight=False)
        console.print(f"vLLM log: {result.log_path}", highlight=False)
