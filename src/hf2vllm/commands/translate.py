"""``hf2vllm translate``: HF ``generate()`` settings -> vLLM ``SamplingParams`` (and back), explained.

A thin shell over ``hf2vllm.api.translate``: parse, call, render (table, JSON or Python).
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from hf2vllm.errors import InputError


class TranslateFormat(str, Enum):
    table = "table"
    json = "json"
    python = "python"


def python_expression(vllm_kwargs: dict[str, Any]) -> str:
    """A ready-to-paste ``SamplingParams(...)`` expression."""
    args = ",\n".join(f"    {k}={v!r}" for k, v in vllm_kwargs.items())
    return f"SamplingParams(\n{args},\n)"


def _render_table(translation: Any, direction: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console.width = 150  # piped output: don't fold the table into 80 columns
    left, right = ("Transformers", "vLLM") if direction == "hf" else ("vLLM", "Transformers")
    table = Table(title=f"{left} -> {right}", show_lines=False)
    for column in ("parameter", "from", left, right, "status"):
        table.add_column(column, overflow="fold", max_width=28)
    table.add_column("why", overflow="fold", ratio=1, min_width=40)
    for line in translation.lines:
        first, second = (line.hf, line.vllm) if direction == "hf" else (line.vllm, line.hf)
        table.add_row(line.name, line.source, _short(first), _short(second), line.status, line.why)
    console.print(table)
    if translation.vllm:
        console.print("[bold]vLLM[/bold] " + python_expression(translation.vllm), highlight=False)
    console.print("[bold]generate()[/bold] kwargs: " + json.dumps(translation.hf), highlight=False, soft_wrap=True)
    for note in translation.notes:
        console.print(f"- {note}", highlight=False, soft_wrap=True)


def _short(value: Any) -> str:
    return "-" if value is None else json.dumps(value) if not isinstance(value, str) else value


def translate(
    hf: Annotated[str | None, typer.Option(
        "--hf", help="generate() kwargs as a JSON object (or @file.json).")] = None,
    vllm: Annotated[str | None, typer.Option(
        "--vllm", help="SamplingParams kwargs as a JSON object (or @file.json): the reverse direction.")] = None,
    model: Annotated[str | None, typer.Option(
        "--model", help="Model directory or cached name: its generation_config.json, config and tokenizer.")] = None,
    generation_config: Annotated[Path | None, typer.Option(
        "--generation-config", help="The model's generation_config.json (instead of --model).")] = None,
    prompt_length: Annotated[int | None, typer.Option(
        "--prompt-length", min=1, help="Prompt tokens, to resolve max_length/min_length (they count the prompt).")
    ] = None,
    output_format: Annotated[TranslateFormat, typer.Option(
        "--format", "-f", help="table (default), json or python (a SamplingParams(...) expression).")
    ] = TranslateFormat.table,
) -> None:
    """Translate generation settings exactly, resolving each library's defaults (HF's top_k=50, eos lists...).

    Without --model (or --generation-config) the eos ids are left to the model on both sides (noted).
    """
    from hf2vllm import api

    result = api.translate(hf, vllm=vllm, model=model, generation_config=generation_config,
                           prompt_length=prompt_length)
    direction = "hf" if hf is not None else "vllm"
    if output_format is TranslateFormat.json:
        typer.echo(json.dumps(result.as_json(), indent=2))
    elif output_format is TranslateFormat.python:
        if not result.vllm:
            raise InputError("the vLLM arguments depend on the prompt length: pass --prompt-length N")
        typer.echo(python_expression(result.vllm))
    else:
        _render_table(result, direction)


def register(app: typer.Typer) -> None:
    app.command("translate")(translate)
