"""``hf2vllm translate``: HF ``generate()`` settings -> vLLM ``SamplingParams`` (and back), explained."""

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


def parse_json_object(text: str, option: str) -> dict[str, Any]:
    """Parse an option's JSON object (or ``@file.json``); errors name the option."""
    from hf2vllm import checks

    value = checks.json_object(text, option, example='{"max_new_tokens": 32}')
    assert value is not None
    return value


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
    from hf2vllm import checks

    if (hf is None) == (vllm is None):
        raise InputError("give exactly one of --hf JSON or --vllm JSON")
    if model is not None and generation_config is not None:
        raise InputError("give --model or --generation-config, not both")
    if vllm is not None and generation_config is not None:
        raise InputError("--vllm resolves eos and defaults from --model DIR, not --generation-config")
    if vllm is not None and prompt_length is not None:
        raise InputError("--prompt-length resolves --hf max_length/min_length; --vllm settings never count the "
                         "prompt, so leave it out")
    option, text = ("--hf", hf) if hf is not None else ("--vllm", vllm)
    example = '{"max_new_tokens": 32}' if hf is not None else '{"max_tokens": 32}'
    settings = checks.json_object(text, option, example=example)
    assert settings is not None
    model_path = None
    if model is not None:
        from hf2vllm.models import resolve_model

        model_path = resolve_model(model)
        checks.model_config(model_path, "--model")
    if generation_config is not None:
        from hf2vllm.translation import read_generation_config

        read_generation_config(generation_config, "--generation-config")
    from hf2vllm.translation import translate_hf, translate_vllm

    try:
        if hf is not None:
            result = translate_hf(settings, generation_config=generation_config, model=model_path,
                                  prompt_length=prompt_length)
        else:
            result = translate_vllm(settings, model=model_path)
    except InputError as err:
        raise InputError(f"{option}: {err}") from None
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
