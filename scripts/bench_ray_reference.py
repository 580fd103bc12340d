"""Reference throughput of `hf2vllm record` with 1 vs 2 Ray workers on this machine (issue #23's benchmark).

Each run records the bundled set into a fresh directory on a local Ray cluster and times the generation
phase only: from the first batch handed to the workers to the last answer journaled (worker start-up and
the noise pass, which runs on one worker either way, are left out; the run stops after generation).
Runs alternate 1, 2, 2, 1 workers (--order; 0 = one process without Ray, torch's default thread count) so
drift on a shared machine falls on both sides.

    .venv/bin/python scripts/bench_ray_reference.py --out runs/bench-ray --max-new-tokens 32
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


class GenerationDone(Exception):
    """Raised from the progress callback once every request is journaled: the benchmark ends there."""


def timed_record(workers: int, max_new_tokens: int, batch_size: int, cpus: float, limit: int | None) -> dict:
    from hf2vllm.reference.record import record
    from hf2vllm.reference.store import read_manifest, read_requests

    marks: dict[str, float] = {}

    def progress(label: str, total: int) -> Callable[[int], None]:
        marks["start"] = time.perf_counter()
        seen = [0]

        def advance(n: int) -> None:
            seen[0] += n
            if seen[0] >= total:
                marks["end"] = time.perf_counter()
                raise GenerationDone

        return advance

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ref"
        try:
            record(out, max_new_tokens=max_new_tokens, hf_batch_size=batch_size, limit=limit,
                   ray_workers=workers or None, ray_worker_cpus=cpus, progress=progress)
        except GenerationDone:
            pass
        recorded = read_requests(out, read_manifest(out).run_key)
        tokens = sum(len(r.result.output_token_ids) for r in recorded.values())
    seconds = marks["end"] - marks["start"]
    return {"workers": workers, "requests": len(recorded), "output_tokens": tokens, "seconds": round(seconds, 2),
            "output_tok_s": round(tokens / seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--worker-cpus", type=float, default=1)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--order", default="1,2,2,1", help="workers per run, in order (0: one process, no Ray)")
    args = parser.parse_args()
    import ray

    ray.init(include_dashboard=False, log_to_driver=False)
    runs = []
    order = [int(w) for w in args.order.split(",")]
    for workers in order:
        runs.append(timed_record(workers, args.max_new_tokens, args.batch_size, args.worker_cpus, args.limit))
        print(json.dumps(runs[-1]), flush=True)
    ray.shutdown()
    rate = {w: statistics.median(r["output_tok_s"] for r in runs if r["workers"] == w) for w in sorted(set(order))}
    base = 1 if 1 in rate else min(rate)
    ratios = {f"{w}_over_{base}": round(rate[w] / rate[base], 3) for w in rate if w != base}
    summary = {"runs": runs, "median_output_tok_s": rate, "ratios": ratios,
               "settings": vars(args) | {"out": str(args.out)}}
    args.out.mkdir(parents=True, exist_ok=True)
    name = "ray_reference.json" if args.order == "1,2,2,1" else f"ray_reference_{args.order.replace(',', '')}.json"
    (args.out / name).write_text(json.dumps(summary, indent=2) + "\n")
    print("workers 0 = one process; " + ", ".join(f"{k}: {v}" for k, v in ratios.items()), flush=True)


if __name__ == "__main__":
    main()
