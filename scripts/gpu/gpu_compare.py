"""GPU parity run: HF Transformers on CUDA vs offline vLLM (CUDA build), one dtype, several vLLM-side
batch sizes, through the library API (``hf2vllm compare`` has no per-side device option yet, and its
HF side defaults to CPU).

Each batch size reuses one HF model and one vLLM engine, so only the submission chunking changes.
The vLLM engine runs in its default GPU mode (torch.compile + CUDA graphs), as users run it; pass
--eager for enforce_eager=True.

    python3 scripts/gpu/gpu_compare.py --dtype bfloat16 --batch-sizes 1,8,64 --out DIR
writes DIR/compare-<dtype>-b<N>.json (full CompareReport) and DIR/summary-compare-<dtype>.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def summarise(report, batch_size: int, seconds: float) -> dict:  # type: ignore[no-untyped-def]
    s = report.summary
    rows = []
    for r in report.requests:
        if r.exact_match:
            continue
        d = r.diagnosis
        rows.append({
            "id": r.id,
            "verdict": r.verdict,
            "first_divergence": r.first_divergence,
            "reference_token": r.reference_token_at_divergence,
            "candidate_token": r.candidate_token_at_divergence,
            "reference_margin": d.reference_margin if d else None,
            "candidate_margin": d.candidate_margin if d else None,
            "noise_floor": d.noise_floor if d else None,
            "reason": d.reason if d else None,
            "batch_probe": r.batch_probe.model_dump() if r.batch_probe else None,
        })
    return {
        "dtype": report.dtype,
        "vllm_batch_size": batch_size,
        "requests": s.requests,
        "exact_matches": s.exact_matches,
        "exact_match_rate": s.exact_match_rate,
        "verdicts": s.verdicts,
        "mean_common_prefix_fraction": s.mean_common_prefix_fraction,
        "teacher_forcing": s.teacher_forcing.model_dump() if s.teacher_forcing else None,
        "causes": [{"id": c.id, "title": c.title, "requests": len(c.requests)} for c in report.causes],
        "backends": [b.model_dump() for b in report.backends],
        "divergent_requests": rows,
        "wall_seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--batch-sizes", default="1,8,64")
    parser.add_argument("--hf-batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.5)
    parser.add_argument("--eager", action="store_true")
    parser.add_argument("--model", default=None)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda", help="cpu: a local smoke run of this script")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from hf2vllm.backends.base import create_backend
    from hf2vllm.models import resolve_model
    from hf2vllm.parity.run import BackendChoice, CompareOptions, run_compare
    from hf2vllm.report.json_file import write_report

    model_path = resolve_model(args.model)
    hf = create_backend("hf", model=model_path, dtype=args.dtype, device=args.device, batch_size=args.hf_batch_size)
    vllm = create_backend("vllm", model=model_path, dtype=args.dtype, enforce_eager=args.eager,
                          gpu_memory_utilization=args.gpu_memory_utilization)
    summaries = []
    summary_path = args.out / f"summary-compare-{args.dtype}.json"
    for size in [int(x) for x in args.batch_sizes.split(",")]:
        vllm.batch_size = size
        options = CompareOptions(
            model=args.model, max_new_tokens=args.max_new_tokens, limit=args.limit, dtype=args.dtype,
            reference=BackendChoice(kind="hf", options={"device": args.device, "batch_size": args.hf_batch_size}),
            candidate=BackendChoice(kind="vllm", options={"batch_size": size, "enforce_eager": args.eager}),
        )
        start = time.perf_counter()
        report = run_compare(options, backends={"reference": hf, "candidate": vllm})
        seconds = time.perf_counter() - start
        run_dir = args.out / f"compare-{args.dtype}-b{size}"
        write_report(report, run_dir)
        summaries.append(summarise(report, size, seconds))
        summary_path.write_text(json.dumps(summaries, indent=2))  # results as they go
        s = report.summary
        print(f"[{args.dtype} vllm batch {size}] exact {s.exact_matches}/{s.requests} verdicts {s.verdicts} "
              f"tf {s.teacher_forcing.model_dump() if s.teacher_forcing else None} ({seconds:.1f}s)", flush=True)
    vllm.close()
    hf.close()


if __name__ == "__main__":
    main()
