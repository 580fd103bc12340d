"""``hf2vllm budget`` (image-token cost of a VL prompt set) and ``hf2vllm models build-tiny-vl``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from hf2vllm.commands.quiet import quiet_model_libraries
from hf2vllm.errors import InputError
from hf2vllm.options import json_object_option


def budget(
    model: str = typer.Option(None, "--model", "-m", help="VL checkpoint dir or cached name (e.g. tiny-vl-idefics3)."),
    prompts: Path = typer.Option(None, "--prompts", "-p", help="JSONL prompt file (default: the bundled VL set)."),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", min=0, help="Tokens each request may generate."),
    max_model_len: int = typer.Option(None, "--max-model-len", help="Context limit (default: the model's own)."),
    mm_processor_kwargs: str = typer.Option(
        None, "--mm-processor-kwargs", help='Image settings for both sides, JSON, e.g. \'{"size": {"longest_edge": 128}}\'.'
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the budgets as JSON."),
) -> None:
    """Image tokens per image (from processor settings and image size) and whether each request fits.

    Warns (exit 0) when prompt + images + max_new_tokens exceed max_model_len; `compare` refuses such
    a request instead.
    """
    from hf2vllm import checks

    checks.number(max_model_len, "--max-model-len", minimum=1, meaning="tokens; leave it out for the model's own")
    checks.input_file(prompts, "--prompts", what="prompt file")
    overrides = json_object_option(mm_processor_kwargs, "--mm-processor-kwargs", example='{"max_pixels": 50176}')
    quiet_model_libraries()
    from hf2vllm.models import resolve_model
    from hf2vllm.multimodal.budget import request_budgets
    from hf2vllm.multimodal.images import check_request_images
    from hf2vllm.multimodal.prepare import check_processor_kwargs, is_vision_language, load_processor
    from hf2vllm.multimodal.sample_set import bundled_vl_prompts_path
    from hf2vllm.multimodal.tiny_vl import ensure_tiny_vl
    from hf2vllm.parity.run import model_context_length
    from hf2vllm.requests import load_requests

    model_path = ensure_tiny_vl("idefics3") if model is None else resolve_model(model)
    checks.model_config(model_path, "--model")
    if not is_vision_language(model_path):
        raise InputError(f"--model {model_path}: no vision_config in its config.json; `budget` is for "
                         "vision-language models (e.g. tiny-vl-idefics3)")
    prompts_path = prompts or bundled_vl_prompts_path()
    requests = load_requests(prompts_path)
    check_request_images(requests, prompts_path.parent, str(prompts_path))
    context = max_model_len or model_context_length(model_path)
    processor = load_processor(model_path)
    check_processor_kwargs(processor, overrides, "--mm-processor-kwargs")
    budgets = request_budgets(
        requests, processor, image_overrides=overrides, base_dir=prompts_path.parent,
        max_new_tokens=max_new_tokens, max_model_len=context,
    )
    if as_json:
        print(json.dumps([
            {**b.model_dump(), "prompt_tokens": b.prompt_tokens, "total_tokens": b.total_tokens, "fits": b.fits}
            for b in budgets
        ], indent=2))
    else:
        table = Table(title=f"token budget, max_model_len={context}, max_new_tokens={max_new_tokens}")
        for name, justify in (("request", "left"), ("images (w x h: tokens)", "left"), ("text", "right"),
                              ("image", "right"), ("prompt", "right"), ("+ new", "right"), ("fits", "left")):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for b in budgets:
            images = "\n".join(f"{c.width}x{c.height}: {c.placeholder_tokens} ({c.detail})" for c in b.images) or "-"
            table.add_row(b.request_id, images, str(b.text_tokens), str(b.image_placeholder_tokens),
                          str(b.prompt_tokens), str(b.total_tokens), "yes" if b.fits else "[red]NO[/red]")
        Console(width=160).print(table)
    err = Console(stderr=True)
    for b in budgets:
        if not b.fits:
            err.print(
                f"warning: request {b.request_id!r} needs {b.prompt_tokens} prompt tokens "
                f"({b.image_placeholder_tokens} for images) + {b.max_new_tokens} new = {b.total_tokens} "
                f"> max_model_len {b.max_model_len}; `hf2vllm compare` refuses it"
            )


def build_tiny_vl_command(
    family: str = typer.Option("idefics3", "--family", help="idefics3 (runs on CPU vLLM) or qwen2-vl (GPU only)."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if cached."),
) -> None:
    """Build a tiny random-weight VL checkpoint (fixed seed, real processor and chat template), cached."""
    quiet_model_libraries()
    from hf2vllm.multimodal.tiny_vl import FAMILIES, build_tiny_vl

    from hf2vllm import checks

    checks.choice(family, "--family", FAMILIES)
    with Console(stderr=True).status(f"building tiny-vl-{family}…"):
        path = build_tiny_vl(family, force=force)  # type: ignore[arg-type]
    print(path)


def register(app: typer.Typer) -> None:
    from hf2vllm.commands.models import models_app

    app.command("budget")(budget)
    models_app.command("build-tiny-vl")(build_tiny_vl_command)
