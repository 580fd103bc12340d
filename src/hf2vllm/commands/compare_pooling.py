"""The ``--task hidden-states|embed`` and ``--lora`` branches of ``hf2vllm compare`` (kept apart from
the generation path so that file stays small); parse -> library -> render."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

POOLING_TASKS = ("hidden-states", "embed")
TASKS = ("generate", *POOLING_TASKS)


def run_pooling_command(
    *,
    task: str,
    model: str | None,
    prompts: Path | None,
    limit: int | None,
    dtype: str,
    max_model_len: int | None,
    kv_cache_gib: float | None,
    max_new_tokens: int,
    probe: Path | None,
    lora: Path | None,
    vllm_normalise: str,
    min_cosine: float,
    quantization: str | None,
    out: Path | None,
    vllm_model: str | None = None,
    hf_option: list[str] | None = None,
) -> None:
    """Run the pooling (or LoRA generation) comparison, render it, write JSON, and fail loudly.

    Exit 1 (``ParityGateError``) on a normalisation mismatch, a parity/probe/LoRA failure; exit 2 on
    bad input (an adapter that cannot match is refused before any model loads).
    """
    from hf2vllm.errors import InputError, ParityGateError
    from hf2vllm.pooling.checks import NormalisationMismatchError
    from hf2vllm.pooling.terminal import render_pooling_report

    if task not in TASKS:
        raise InputError(f"--task {task!r}: choose one of {', '.join(TASKS)}")
    if vllm_normalise not in ("auto", "off", "on", "default"):
        raise InputError(f"--vllm-normalise {vllm_normalise!r}: choose auto, off, on or default")
    if task == "generate" and probe:
        raise InputError("--probe needs --task hidden-states or --task embed")
    if task == "generate" and vllm_model:
        raise InputError("--vllm-model needs --task hidden-states or --task embed")
    placement = _hf_placement(hf_option or [])
    if task == "generate" and placement:
        raise InputError("--hf-option device_map/max_memory with --lora generation: not supported; use --task hidden-states")
    console = Console()
    if task == "generate":
        from hf2vllm.pooling.lora_generation import run_lora_generation_compare

        assert lora is not None
        with console.status("LoRA generation check: HF then vLLM"):
            report = run_lora_generation_compare(
                lora, model=model, prompts=prompts, limit=limit, max_new_tokens=max_new_tokens, dtype=dtype,
                kv_cache_gib=kv_cache_gib,
            )
    else:
        from hf2vllm.pooling.run import PoolingOptions, run_pooling_compare

        options = PoolingOptions(
            task=task, model=model, prompts=prompts, limit=limit, dtype=dtype, max_model_len=max_model_len,
            kv_cache_gib=kv_cache_gib, vllm_normalise=vllm_normalise, probe=probe, lora=lora,
            min_cosine=min_cosine, quantization=quantization, vllm_model=vllm_model, hf_placement=placement,
        )
        with console.status("starting") as spinner:
            report = run_pooling_compare(options, on_status=lambda m: spinner.update(m))
    render_pooling_report(report, console)
    if out:
        out.mkdir(parents=True, exist_ok=True)
        path = out / "pooling-report.json"
        path.write_text(report.model_dump_json(indent=2))
        console.print(f"report written to {path}")
    if report.failures:
        first = report.failures[0]
        if report.normalisation and report.normalisation.mismatch:
            raise NormalisationMismatchError(first)
        raise ParityGateError("; ".join(report.failures))


PLACEMENT_KEYS = ("device_map", "max_memory", "offload_folder")


def _hf_placement(assignments: list[str]) -> dict[str, object]:
    """``--hf-option`` of a pooling run: only where the HF model's layers go (docs/scale.md)."""
    from hf2vllm.errors import InputError
    from hf2vllm.parity.overrides import parse_assignment

    placement = dict(parse_assignment(text, "--hf-option") for text in assignments)
    other = [key for key in placement if key not in PLACEMENT_KEYS]
    if other:
        raise InputError(f"--hf-option {other[0]}: pooling runs take only {', '.join(PLACEMENT_KEYS)} on the HF side")
    return placement
