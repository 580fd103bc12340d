"""Prove the planner against vLLM itself: start ``vllm serve`` with the planned settings, read the
KV capacity it logs, and compare with the prediction.

On the CPU build the KV memory is whatever ``--kv-cache-memory-bytes`` says (or, when left to vLLM,
what it found free at start-up, which changes run to run), so the comparison is made twice: from the
planned bytes, and from the memory figure vLLM logged (``Explicitly set (X/Y) GiB for KV cache``).
The engine is stopped as soon as both lines are in its log.

Usage::

    result = calibrate(CalibrationRequest(model=str(bundled_model_path())))
    print(result.relative_error_tokens)
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel, Field

from hf2vllm import interrupt
from hf2vllm.deploy.hardware import GIB
from hf2vllm.deploy.kv_cache import kv_capacity, layer_caches
from hf2vllm.deploy.plan import Plan, PlanRequest, make_plan
from hf2vllm.deploy.architecture import load_architecture
from hf2vllm.deploy.vllm_logs import StartupFigures, parse_startup
from hf2vllm.errors import BackendUnavailableError, InputError
from hf2vllm.server.launch import ServerConfig, VLLMServer, free_port


class CalibrationRequest(BaseModel):
    """Settings for one calibration start (CPU build: eager mode, small explicit KV space)."""

    model: str
    max_model_len: int = 2048
    kv_cache_memory_gib: float | None = Field(
        default=0.25, description="KV space to plan and pass to vLLM; None lets vLLM size it (CPU 'Auto set')."
    )
    dtype: str = "float32"
    max_num_seqs: int | None = None
    block_size: int | None = None
    timeout_s: float = 300.0
    log_path: Path | None = None


class CalibrationResult(BaseModel):
    """Predicted versus logged KV capacity for one engine start."""

    model: str
    command: list[str]
    log_path: str
    planned_kv_memory_bytes: int | None
    logged: StartupFigures
    predicted_kv_cache_tokens: int
    predicted_max_concurrency: float
    predicted_from_logged_memory_tokens: int
    predicted_from_logged_memory_concurrency: float
    relative_error_tokens: float
    relative_error_from_logged_memory: float
    memory_note: str
    plan: Plan


def run_until_capacity_logged(server: VLLMServer, timeout_s: float) -> StartupFigures:
    """Launch ``server``, wait for the KV size and KV memory lines, stop it; returns what it logged."""
    log_path = server.log_path
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text("")  # the server appends: figures from an earlier run must not count
    server.launch()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            text = log_path.read_text(errors="replace")
            figures = parse_startup(text)
            if figures.complete:
                return figures
            if "Application startup complete" in text:
                raise BackendUnavailableError(
                    f"vllm serve started without logging its KV cache size (log: {log_path}); is "
                    "VLLM_LOGGING_LEVEL above INFO?"
                )
            if not server.running():
                tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
                raise BackendUnavailableError(
                    f"vllm serve exited with code {server.returncode} before logging its KV cache size "
                    f"(log: {log_path}; last line: {tail[-1] if tail else 'empty'})"
                )
            time.sleep(0.5)
        raise BackendUnavailableError(f"vllm serve did not log its KV cache size within {timeout_s:.0f} s (log: {log_path})")
    finally:
        server.stop()


def calibrate(request: CalibrationRequest) -> CalibrationResult:
    """Plan for the CPU build, start vLLM with that plan, compare predicted and logged capacity."""
    plan = make_plan(
        PlanRequest(
            model=request.model,
            device="cpu",
            kv_cache_memory_gib=request.kv_cache_memory_gib,
            max_model_len=request.max_model_len,
            dtype=request.dtype,
            max_num_seqs=request.max_num_seqs,
            block_size=request.block_size,
            enforce_eager=True,
            port=free_port(),
            goal="balanced",
        )
    )
    args = list(plan.vllm_serve_args)
    if request.kv_cache_memory_gib is None:
        index = args.index("--kv-cache-memory-bytes")
        del args[index : index + 2]
    host, port = args[args.index("--host") + 1], int(args[args.index("--port") + 1])
    for flag in ("--host", "--port"):  # the launcher adds them itself
        index = args.index(flag)
        del args[index : index + 2]
    model_dir = request.model if Path(request.model).is_dir() else str(Path(request.model).parent)
    log_path = request.log_path or Path(f"hf2vllm-calibrate-{int(time.time())}.log")
    server = VLLMServer(ServerConfig(
        model=Path(model_dir), host=host, port=port, extra_args=args, log_path=log_path,
        # The legacy variable would override --kv-cache-memory-bytes (vllm/platforms/cpu.py); the
        # capacity figures are INFO lines, which a quieter inherited level would hide.
        env={"VLLM_CPU_KVCACHE_SPACE": None, "VLLM_LOGGING_LEVEL": "INFO", "VLLM_CONFIGURE_LOGGING": "1"},
    ))
    command = server.command()
    interrupt.doing("vllm serve starting, for its KV cache figures")
    interrupt.saves(log_path, "the vLLM log {path}")
    logged = run_until_capacity_logged(server, request.timeout_s)
    if logged.kv_cache_tokens is None or logged.max_concurrency is None:
        raise InputError(f"{log_path}: no 'KV cache size' line found")

    # Recompute from the memory figure vLLM logged (rounded to 0.01 GiB by vLLM's format_gib).
    arch = load_architecture(request.model)
    caches = layer_caches(arch, model_dtype=plan.dtype, kv_cache_dtype=plan.kv_cache_dtype)
    from_logged = kv_capacity(
        caches,
        available_bytes=int((logged.kv_memory_gib or 0) * GIB),
        block_size=plan.block_size,
        max_model_len=plan.max_model_len,
        max_num_batched_tokens=plan.max_num_batched_tokens,
    )
    if request.kv_cache_memory_gib is None:
        predicted = from_logged
        note = (
            "CPU, memory left to vLLM: it sized the KV cache from the memory free at start "
            f"('Auto set ({logged.kv_memory_gib}/...) GiB'), so the prediction uses that logged figure"
        )
    else:
        predicted = plan.capacity
        note = (
            f"CPU, KV memory set explicitly to {plan.memory.kv_cache_bytes_per_rank:,} bytes "
            f"(vLLM logged {logged.kv_memory_gib} GiB, rounded to 0.01 GiB)"
        )
    logged_tokens = logged.kv_cache_tokens
    return CalibrationResult(
        model=request.model,
        command=command,
        log_path=str(log_path),
        planned_kv_memory_bytes=plan.memory.kv_cache_bytes_per_rank if request.kv_cache_memory_gib is not None else None,
        logged=logged,
        predicted_kv_cache_tokens=predicted.kv_cache_tokens,
        predicted_max_concurrency=predicted.max_concurrency,
        predicted_from_logged_memory_tokens=from_logged.kv_cache_tokens,
        predicted_from_logged_memory_concurrency=from_logged.max_concurrency,
        relative_error_tokens=(predicted.kv_cache_tokens - logged_tokens) / logged_tokens,
        relative_error_from_logged_memory=(from_logged.kv_cache_tokens - logged_tokens) / logged_tokens,
        memory_note=note,
        plan=plan,
    )
