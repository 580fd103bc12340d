"""Issue #23 item 3 on a GPU: the HF reference split by a memory cap (Accelerate ``device_map="auto"``)
against vLLM on the same GPU, beside the unsplit reference, through the library API `hf2vllm compare` calls.

ONE vLLM engine (default GPU mode) is the candidate of two comparisons on the bundled set (greedy):

- ``unsplit``: HF on one device (``device=cuda``), as in scripts/gpu/gpu_verdicts.py;
- ``split``: HF loaded with ``max_memory={"0": --gpu-cap, "cpu": --cpu-cap}``: the layers over the GPU cap
  are offloaded to CPU memory and streamed to the GPU for each forward pass (Accelerate's cpu offload);
  with ``--gpus 2`` the cap is put on each of two GPUs instead (a split across GPUs, no offload).

Each comparison runs with HF generating every request (``--hf-generate`` path, so the reference's generate
time is the cost of the split) and by teacher forcing (compare's default). Written: verdicts and causes per
side, whether the split reference produced the unsplit reference's tokens request by request, the placement
the report recorded, and the HF stage times (split / unsplit = the time cost of the split).

    python3 scripts/gpu/gpu_device_map.py --dtype bfloat16 --gpu-cap 150MiB --out DIR
    python3 scripts/gpu/gpu_device_map.py --device cpu --dtype float32 --limit 4 --max-new-tokens 4 --out DIR
(on CPU the split is CPU + disk: ``--cpu-cap`` caps CPU memory and the rest is offloaded to files)
writes DIR/device-map-<dtype>.json as it goes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


def summary(report: Any, seconds: float) -> dict[str, Any]:
    s = report.summary
    rv = report.run_verdict
    reference = next(b for b in report.backends if b.name == "hf")
    return {
        "verdict_method": report.verdict_method,
        "requests": s.requests,
        "exact_matches": s.exact_matches,
        "verdicts": s.verdicts,
        "run_verdict": rv.statement if rv else None,
        "within_reference_noise": rv.within_reference_noise if rv else None,
        "causes": [c.id for c in report.causes],
        "noise": report.noise.noise if report.noise else None,
        "reference_backend": reference.model_dump(),  # options carry the placement (HFBackend.describe)
        "stage_seconds": report.stage_seconds,
        "wall_seconds": round(seconds, 3),
    }


def hf_seconds(stages: dict[str, float]) -> float:
    """Seconds the reference spent generating or scoring (every stage whose name starts with "reference")."""
    return round(sum(v for k, v in stages.items() if k.startswith("reference") and "load" not in k), 3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--gpu-cap", default="150MiB", help="max_memory per GPU of the split reference")
    parser.add_argument("--cpu-cap", default="64GiB", help="max_memory for CPU (on --device cpu: the cap that forces disk)")
    parser.add_argument("--gpus", type=int, default=1, help="2: cap each of two GPUs (a split across GPUs)")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.5)
    parser.add_argument("--device", default="cuda", help="cpu: a local smoke run of this script")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from hf2vllm.backends.base import create_backend
    from hf2vllm.models import resolve_model
    from hf2vllm.parity.run import BackendChoice, CompareOptions, run_compare

    on_gpu = args.device != "cpu"
    cap = {str(g): args.gpu_cap for g in range(args.gpus)} if on_gpu else {}
    cap["cpu"] = args.cpu_cap
    result: dict[str, Any] = {"dtype": args.dtype, "device": args.device, "max_memory": cap,
                              "max_new_tokens": args.max_new_tokens, "limit": args.limit}
    target = args.out / f"device-map-{args.dtype}.json"

    def save() -> None:
        target.write_text(json.dumps(result, indent=2))  # results as they go

    model_path = resolve_model(None)
    vllm_options: dict[str, Any] = {"enforce_eager": not on_gpu}
    vllm_options["gpu_memory_utilization" if on_gpu else "kv_cache_gib"] = args.gpu_memory_utilization if on_gpu else 1.0
    sides = {
        "unsplit": {"device": args.device, "batch_size": 32},
        "split": {"device": args.device, "batch_size": 32, "max_memory": cap},  # offload folder: a temporary one
    }
    vllm = create_backend("vllm", model=model_path, dtype=args.dtype, **vllm_options)
    result["vllm_load_seconds"] = vllm.load_seconds
    tokens: dict[str, dict[str, list[int]]] = {}
    for name, hf_options in sides.items():
        hf = create_backend("hf", model=model_path, dtype=args.dtype, **hf_options)
        side: dict[str, Any] = {"load_seconds": hf.load_seconds, "describe": hf.describe()}
        print(f"[{name}] placement {side['describe'].get('placement', side['describe']['device'])}", flush=True)
        for path in ("hf_generate", "teacher_forcing"):
            options = CompareOptions(
                max_new_tokens=args.max_new_tokens, limit=args.limit, dtype=args.dtype,
                reference=BackendChoice(kind="hf", options=hf_options), candidate=BackendChoice(kind="vllm"),
                hf_generate=path == "hf_generate",
            )
            t0 = time.perf_counter()
            report = run_compare(options, backends={"reference": hf, "candidate": vllm})
            side[path] = summary(report, time.perf_counter() - t0)
            side[path]["reference_seconds"] = hf_seconds(report.stage_seconds)
            if path == "hf_generate":
                tokens[name] = {r.id: r.reference_token_ids for r in report.requests}
            s = report.summary
            print(f"[{name} {path}] exact {s.exact_matches}/{s.requests} {s.verdicts} causes "
                  f"{[c.id for c in report.causes]} reference {side[path]['reference_seconds']}s", flush=True)
            result[name] = side
            save()
        hf.close()
    vllm.close()
    same = sum(tokens["split"][rid] == ids for rid, ids in tokens["unsplit"].items())
    result["split_tokens_equal_unsplit"] = {"requests": len(tokens["unsplit"]), "same": same}
    result["split_time_cost"] = {
        path: round(result["split"][path]["reference_seconds"] / max(result["unsplit"][path]["reference_seconds"], 1e-9), 2)
        for path in ("hf_generate", "teacher_forcing")
    }
    print(f"split tokens == unsplit: {same}/{len(tokens['unsplit'])}; HF time split/unsplit "
          f"{result['split_time_cost']}", flush=True)
    save()


if __name__ == "__main__":
    main()
