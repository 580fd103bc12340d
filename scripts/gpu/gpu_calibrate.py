"""GPU calibration of the planner: plan for this GPU, start `vllm serve` with the planned flags, read the
KV capacity vLLM logs, compare. (``hf2vllm calibrate`` plans for the CPU build only.)

Two starts: (a) memory left to vLLM (``--gpu-memory-utilization``): the planner predicts the KV bytes
from device memory minus weights/activations/overheads; (b) ``--kv-cache-memory-bytes`` set to the
planned bytes: checks the bytes->tokens arithmetic alone.

    python3 scripts/gpu/gpu_calibrate.py --gpu H100-80GB --dtype bfloat16 --out DIR
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

# vLLM 0.26 (this GPU build) logs the KV size and the concurrency on two lines
# ("GPU KV cache size: N tokens" / "Maximum concurrency for L tokens per request: X.XXx"); the
# project's parser (deploy/vllm_logs.py) expects vLLM 0.32's single line, so this script reads them itself.
KV_TOKENS = re.compile(r"(?P<device>[A-Z]+) KV cache size: (?P<tokens>[\d,]+) tokens")
CONCURRENCY = re.compile(r"Maximum concurrency for (?P<length>[\d,]+) tokens per request: (?P<x>[\d.]+)x")
# Profiled start: "Available KV cache memory: X GiB"; with --kv-cache-memory-bytes vLLM 0.26 skips the
# profile and logs "reserved X GiB memory for KV Cache as specified by kv_cache_memory_bytes" instead.
KV_MEMORY = re.compile(r"(?:Available KV cache memory: |reserved )(?P<gib>[\d.]+) GiB(?: memory for KV Cache)?")


def parse(text: str) -> dict | None:
    found = [KV_TOKENS.search(text), CONCURRENCY.search(text), KV_MEMORY.search(text)]
    if not all(found):
        return None
    tokens, conc, mem = found
    return {"kv_cache_tokens": int(tokens["tokens"].replace(",", "")), "device": tokens["device"],
            "max_model_len": int(conc["length"].replace(",", "")), "max_concurrency": float(conc["x"]),
            "kv_memory_gib": float(mem["gib"])}


def run_until_logged(command: list[str], log_path: Path, timeout_s: float) -> dict:
    from hf2vllm.deploy.calibrate import _stop

    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            figures = parse(log_path.read_text(errors="replace"))
            if figures:
                return figures
            if process.poll() is not None:
                raise SystemExit(f"vllm serve exited ({process.returncode}) before logging its KV size: {log_path}")
            time.sleep(0.5)
        raise SystemExit(f"no KV size logged within {timeout_s:.0f} s: {log_path}")
    finally:
        _stop(process)


def main() -> None:
    import signal

    # `timeout` sends SIGTERM: turn it into SystemExit so the server (its own session) is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser()
    parser.add_argument("--gpu", default="auto", help="planner accelerator name; auto: from torch")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--model", default=None)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from hf2vllm.deploy.architecture import load_architecture
    from hf2vllm.deploy.calibrate import _free_port
    from hf2vllm.deploy.hardware import GIB
    from hf2vllm.deploy.kv_cache import kv_capacity, layer_caches
    from hf2vllm.deploy.plan import PlanRequest, make_plan
    from hf2vllm.models import resolve_model

    model = str(resolve_model(args.model))
    if args.gpu == "auto":
        import torch

        args.gpu = "H200" if "H200" in torch.cuda.get_device_name(0) else "H100-80GB"
    results = []
    for label in ("gpu_memory_utilization", "kv_cache_memory_bytes"):
        plan = make_plan(PlanRequest(model=model, device="gpu", gpu=args.gpu, dtype=args.dtype,
                                     max_model_len=args.max_model_len, port=_free_port()))
        serve_args = list(plan.vllm_serve_args)
        planned_bytes = plan.memory.kv_cache_bytes_per_rank
        if label == "kv_cache_memory_bytes":
            serve_args += ["--kv-cache-memory-bytes", str(planned_bytes)]
        command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model, *serve_args]
        log = args.out / f"calibrate-{args.dtype}-{label}.log"
        logged = run_until_logged(command, log, 420)
        caches = layer_caches(load_architecture(model), model_dtype=plan.dtype, kv_cache_dtype=plan.kv_cache_dtype)
        from_logged = kv_capacity(caches, available_bytes=int((logged["kv_memory_gib"] or 0) * GIB),
                                  block_size=plan.block_size, max_model_len=plan.max_model_len,
                                  max_num_batched_tokens=plan.max_num_batched_tokens)
        row = {
            "mode": label,
            "command": command,
            "planned_memory": plan.memory.model_dump(),
            "planned_kv_gib": planned_bytes / GIB,
            "logged": logged,
            "predicted_kv_cache_tokens": plan.capacity.kv_cache_tokens,
            "predicted_max_concurrency": plan.capacity.max_concurrency,
            "relative_error_tokens": (plan.capacity.kv_cache_tokens - logged["kv_cache_tokens"]) / logged["kv_cache_tokens"],
            "relative_error_kv_memory": (planned_bytes / GIB - logged["kv_memory_gib"]) / logged["kv_memory_gib"],
            "predicted_from_logged_memory_tokens": from_logged.kv_cache_tokens,
            "relative_error_from_logged_memory": (from_logged.kv_cache_tokens - logged["kv_cache_tokens"])
            / logged["kv_cache_tokens"],
        }
        results.append(row)
        (args.out / f"calibrate-{args.dtype}.json").write_text(json.dumps(results, indent=2))
        print(f"[{label}] predicted {row['predicted_kv_cache_tokens']:,} tokens ({row['planned_kv_gib']:.2f} GiB) "
              f"logged {logged['kv_cache_tokens']:,} ({logged['kv_memory_gib']} GiB) err {row['relative_error_tokens']:+.2%}; "
              f"from logged memory {row['predicted_from_logged_memory_tokens']:,} "
              f"({row['relative_error_from_logged_memory']:+.2%})", flush=True)


if __name__ == "__main__":
    main()
