"""GPU offline benchmark through the library API: ``hf2vllm bench offline``'s modes with the HF side
on CUDA (the command builds its HF backend on CPU) and vLLM in its default GPU mode (torch.compile +
CUDA graphs; --eager for enforce_eager=True).

    python3 scripts/gpu/gpu_bench.py --dtype bfloat16 --out DIR [--model DIR] [--tag NAME]
writes DIR/bench-<tag>-<dtype>.json (the OfflineReport).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


class _OnDevice:
    """The fairness loop builds its input tensors on the CPU; move them to the model's device."""

    def __init__(self, model: Any) -> None:
        self._model = model

    def generate(self, **kwargs: Any) -> Any:
        device = self._model.device
        moved = {k: (v.to(device) if hasattr(v, "to") and hasattr(v, "device") else v) for k, v in kwargs.items()}
        return self._model.generate(**moved)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--model", default=None)
    parser.add_argument("--tag", default="smollm2-135m")
    parser.add_argument("--limit", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-sizes", default="1,4,8,16,32,64")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.5)
    parser.add_argument("--eager", action="store_true")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda", help="cpu: a local smoke run of this script")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    import hf2vllm.bench.offline as offline
    from hf2vllm.backends.hf import HFBackend
    from hf2vllm.backends.vllm_offline import VLLMBackend
    from hf2vllm.bench.offline import OfflineBenchOptions, run_offline
    from hf2vllm.models import resolve_model

    original_plain = offline.plain_hf_batched_generate
    offline.plain_hf_batched_generate = lambda model, *a, **k: original_plain(_OnDevice(model), *a, **k)

    model_path = resolve_model(args.model)
    options = OfflineBenchOptions(
        model=str(model_path), limit=args.limit, max_new_tokens=args.max_new_tokens, dtype=args.dtype,
        batch_sizes=[int(x) for x in args.batch_sizes.split(",")], repeats=args.repeats, sweep_time_cap_s=240,
    )
    target = args.out / f"bench-{args.tag}-{args.dtype}.json"
    start = time.perf_counter()
    # Both stay loaded (small next to 80 GB); run_offline times HF modes first, then vLLM's.
    hf = HFBackend(model_path, dtype=args.dtype, device=args.device, batch_size=1)
    vllm = VLLMBackend(model_path, dtype=args.dtype, enforce_eager=args.eager,
                       gpu_memory_utilization=args.gpu_memory_utilization)

    report = run_offline(options, hf_backend=hf, vllm_backend=vllm,
                         on_status=lambda m: print("  ", m, flush=True))
    vllm.close()
    hf.close()
    import torch

    payload = json.loads(report.model_dump_json())
    payload["gpu_name"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    payload["vllm_mode"] = "eager" if args.eager else "compiled+cudagraphs"
    payload["wall_seconds"] = time.perf_counter() - start
    target.write_text(json.dumps(payload, indent=2))
    for m in report.modes:
        print(f"{m.label:32s} {m.output_tokens_per_second:10.1f} tok/s  {m.status}")
    for s in report.speedups:
        print(f"{s.label:32s} x{s.ratio_vs_hf_batched_best:.2f} vs HF batched best")


if __name__ == "__main__":
    main()
