"""``hf2vllm plan`` and ``hf2vllm presets``: capacity and the serve command before launching vLLM."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from hf2vllm import checks
from hf2vllm.errors import InputError


def _model_path(model: str | None) -> str:
    """A config.json file or checkpoint directory as given, else a cached model name."""
    if model is not None and Path(model).expanduser().exists():
        return str(Path(model).expanduser())
    if model is not None and (model.endswith(".json") or model.startswith(("/", "./", "../", "~"))):
        raise InputError(f"MODEL {model}: no such file or directory; give a checkpoint directory, its "
                         "config.json, or a cached model name (hf2vllm models list)")
    from hf2vllm.models import resolve_model

    return str(resolve_model(model))


def _checked(values: dict) -> dict:
    """``values`` (PlanRequest fields) after the edge checks; ``dtype`` in vLLM's canonical spelling. Runs
    before any file is read, so a typo costs nothing."""
    from hf2vllm.deploy.hardware import resolve_accelerator
    from hf2vllm.deploy.plan import check_options

    values = {**values, "dtype": check_options(**values)}
    if values["device"] == "gpu" and values.get("gpu") and values.get("gpu_memory_gib") is None:
        resolve_accelerator(values["gpu"], None)
    return values


def _check_preset(preset: str | None) -> None:
    if preset is not None:
        from hf2vllm.deploy.presets import check_preset_name

        check_preset_name(preset)


def _render(plan, console) -> None:
    from rich.table import Table

    gib = 1024**3
    table = Table(title=f"hf2vllm plan: {plan.model}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("hardware", f"{plan.nodes} node(s) x {plan.gpus_per_node} {plan.accelerator}" if plan.device == "gpu" else "cpu"),
        ("model", f"{plan.model_type} ({', '.join(plan.architectures)}), {plan.dtype}"),
        ("weights", f"{plan.weights_bytes / gib:.2f} GiB ({plan.weights_parameters:,} params, {plan.weights_source}); {plan.weights_per_rank_bytes / gib:.2f} GiB per rank"),
        ("KV bytes / token", f"{plan.kv_cache_bytes_per_token:,} ({plan.kv_cache_bytes_per_token_per_rank:,} per rank); layers {plan.layer_kinds}"),
        ("KV memory / rank", f"{plan.memory.kv_cache_bytes_per_rank / gib:.2f} GiB"),
        ("KV cache size", f"{plan.kv_cache_tokens:,} tokens"),
        ("max concurrency", f"{plan.max_concurrency:.2f}x at {plan.max_model_len:,} tokens per request"),
        ("parallelism", f"TP {plan.tensor_parallel_size}, PP {plan.pipeline_parallel_size}, DP {plan.data_parallel_size}"),
        ("scheduler", f"max_num_seqs {plan.max_num_seqs}, max_num_batched_tokens {plan.max_num_batched_tokens}, block {plan.block_size}"),
    ]
    if plan.reasoning_parser:
        rows.append(("reasoning parser", plan.reasoning_parser))
    if plan.limit_mm_per_prompt:
        rows.append(("multimodal", f"{plan.limit_mm_per_prompt}, {plan.mm_tokens_per_image} tokens per image"))
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    console.print(f"[bold]why this parallelism:[/bold] {plan.parallelism_reason}")
    console.print("[bold]working:[/bold]")
    for reason in plan.reasons:
        console.print(f"  - {reason}", highlight=False)
    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    if plan.ray_commands:
        console.print("[bold]Ray (nodes > 1):[/bold]")
        for command in plan.ray_commands:
            console.print(command, highlight=False, soft_wrap=True)
    console.print("[bold]vllm serve:[/bold]")
    console.print(plan.vllm_serve_command, highlight=False, soft_wrap=True)
    if plan.hf_reference:
        console.print(f"[bold]HF reference (for compare):[/bold] {plan.hf_reference.reason}", highlight=False)
        console.print(plan.hf_reference.record_command, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    @app.command("plan")
    def plan_command(
        model: Annotated[Optional[str], typer.Argument(help="Checkpoint directory, its config.json, or a cached model name (default: bundled).")] = None,
        gpu: Annotated[Optional[str], typer.Option("--gpu", help="Accelerator by name (see --list-gpus).")] = None,
        gpu_memory_gib: Annotated[Optional[float], typer.Option("--gpu-memory-gib", help="Memory of one accelerator in GiB, for one not in the table.")] = None,
        gpus: Annotated[int, typer.Option("--gpus", help="GPUs per node (1 to 16; more GPUs: --nodes).")] = 1,
        nodes: Annotated[int, typer.Option("--nodes", help="Nodes (more than 1 uses vLLM's Ray backend).")] = 1,
        device: Annotated[str, typer.Option("--device", help="gpu or cpu (vLLM's CPU build).")] = "gpu",
        kv_cache_memory_gib: Annotated[Optional[float], typer.Option("--kv-cache-memory-gib", help="CPU: KV cache space in GiB (default 1).")] = None,
        max_model_len: Annotated[Optional[int], typer.Option("--max-model-len", help="Longest request (prompt + output) to admit.")] = None,
        prompt_tokens: Annotated[int, typer.Option("--prompt-tokens", help="Typical prompt length.")] = 512,
        output_tokens: Annotated[int, typer.Option("--output-tokens", help="Typical output length.")] = 256,
        concurrency: Annotated[int, typer.Option("--concurrency", help="Target concurrent requests.")] = 32,
        goal: Annotated[str, typer.Option("--goal", help="throughput, latency or balanced.")] = "balanced",
        kv_cache_dtype: Annotated[str, typer.Option("--kv-cache-dtype", help="auto (model dtype), fp8, ...")] = "auto",
        quantization: Annotated[Optional[str], typer.Option("--quantization", help="A vLLM --quantization method: fp8, awq, gptq, ...")] = None,
        dtype: Annotated[Optional[str], typer.Option("--dtype", help="Model dtype: auto (the config's), float16, bfloat16, float32.")] = None,
        gpu_memory_utilization: Annotated[float, typer.Option("--gpu-memory-utilization", help="Fraction of each GPU vLLM may use, above 0 and at most 1.")] = 0.9,
        block_size: Annotated[Optional[int], typer.Option("--block-size", help="KV block size in tokens (default: the device's).")] = None,
        max_num_batched_tokens: Annotated[Optional[int], typer.Option("--max-num-batched-tokens")] = None,
        max_num_seqs: Annotated[Optional[int], typer.Option("--max-num-seqs", help="Fix max_num_seqs instead of deriving it.")] = None,
        enforce_eager: Annotated[bool, typer.Option("--enforce-eager", help="No CUDA graphs (slower, less memory).")] = False,
        images_per_prompt: Annotated[int, typer.Option("--images-per-prompt", help="VL models: images per prompt.")] = 1,
        preset: Annotated[Optional[str], typer.Option("--preset", help="Derive a named preset (see `hf2vllm presets`).")] = None,
        serve_model: Annotated[Optional[str], typer.Option("--serve-model", help="Model id/path for the vllm serve command (e.g. the HF id when planning from a bare config.json).")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the plan as one JSON object.")] = False,
        yaml_out: Annotated[Optional[Path], typer.Option("--yaml-out", help="Write the `vllm serve --config` YAML here.")] = None,
        list_gpus: Annotated[bool, typer.Option("--list-gpus", help="List known accelerators and exit.")] = False,
    ) -> None:
        """Plan a vLLM deployment from config.json: weights, KV bytes per token, KV capacity and concurrency as vLLM will log them, parallelism with its reason, and the serve command."""
        from rich.console import Console

        from hf2vllm.deploy.hardware import ACCELERATORS

        console = Console()
        if list_gpus:
            for accelerator in ACCELERATORS.values():
                console.print(f"{accelerator.name:12s} {accelerator.memory_gib:7.2f} GiB")
            return
        from hf2vllm.deploy.plan import PlanRequest

        values = _checked(dict(
            gpu=gpu, gpu_memory_gib=gpu_memory_gib, gpus=gpus, nodes=nodes,
            device=device, kv_cache_memory_gib=kv_cache_memory_gib, max_model_len=max_model_len,
            prompt_tokens=prompt_tokens, output_tokens=output_tokens, concurrency=concurrency, goal=goal,
            kv_cache_dtype=kv_cache_dtype, quantization=quantization, dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization, block_size=block_size,
            max_num_batched_tokens=max_num_batched_tokens, max_num_seqs=max_num_seqs,
            enforce_eager=enforce_eager, images_per_prompt=images_per_prompt, serve_model=serve_model,
        ))
        _check_preset(preset)
        checks.output_file(yaml_out, "--yaml-out")
        request = PlanRequest(model=_model_path(model), **values)
        if preset:
            from hf2vllm.deploy.presets import build_preset

            plan = build_preset(preset, request).plan
        else:
            from hf2vllm.deploy.plan import make_plan

            plan = make_plan(request)
        if yaml_out:
            yaml_out.parent.mkdir(parents=True, exist_ok=True)
            yaml_out.write_text(plan.yaml_config)
        if as_json:
            typer.echo(json.dumps(plan.model_dump(mode="json"), indent=2))
            return
        _render(plan, console)
        if yaml_out:
            console.print(f"YAML for `vllm serve --config` written to {yaml_out}")

    @app.command("presets")
    def presets_command(
        model: Annotated[Optional[str], typer.Argument(help="Checkpoint directory, config.json or cached name (default: bundled).")] = None,
        gpu: Annotated[Optional[str], typer.Option("--gpu")] = None,
        gpu_memory_gib: Annotated[Optional[float], typer.Option("--gpu-memory-gib")] = None,
        gpus: Annotated[int, typer.Option("--gpus")] = 1,
        device: Annotated[str, typer.Option("--device")] = "gpu",
        kv_cache_memory_gib: Annotated[Optional[float], typer.Option("--kv-cache-memory-gib")] = None,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Show every preset as derived for this model and hardware (`hf2vllm serve --preset NAME` uses them)."""
        from rich.console import Console
        from rich.table import Table

        from hf2vllm.deploy.architecture import load_architecture
        from hf2vllm.deploy.plan import PlanRequest
        from hf2vllm.deploy.presets import PRESETS, build_preset

        values = _checked(dict(gpu=gpu, gpu_memory_gib=gpu_memory_gib, gpus=gpus, device=device,
                               kv_cache_memory_gib=kv_cache_memory_gib))
        base = PlanRequest(model=_model_path(model), **values)
        load_architecture(base.model)  # a bad config.json is one error, not one per preset
        results = {}
        for name in PRESETS:
            try:
                results[name] = build_preset(name, base)
            except InputError as err:
                results[name] = err
        if as_json:
            out = {
                name: ({"error": str(value)} if isinstance(value, Exception) else {
                    "description": value.description,
                    "vllm_serve_args": value.plan.vllm_serve_args,
                    "max_num_seqs": value.plan.max_num_seqs,
                    "max_model_len": value.plan.max_model_len,
                    "kv_cache_tokens": value.plan.kv_cache_tokens,
                    "max_concurrency": value.plan.max_concurrency,
                })
                for name, value in results.items()
            }
            typer.echo(json.dumps(out, indent=2))
            return
        table = Table(title="presets derived from the plan")
        for column in ("preset", "max_model_len", "max_num_seqs", "batched tokens", "KV tokens", "concurrency", "notes"):
            table.add_column(column)
        for name, value in results.items():
            if isinstance(value, Exception):
                table.add_row(name, "-", "-", "-", "-", "-", str(value))
                continue
            p = value.plan
            table.add_row(name, str(p.max_model_len), str(p.max_num_seqs), str(p.max_num_batched_tokens),
                          f"{p.kv_cache_tokens:,}", f"{p.max_concurrency:.2f}x", value.description)
        Console().print(table)
