"""Issue #19 on a GPU: teacher-forced verdicts vs full HF generate, clean and planted faults, per dtype.

For one dtype: ONE HF model on the GPU and ONE vLLM engine (default GPU mode: torch.compile + CUDA
graphs) serve every comparison below through the library API that `hf2vllm compare` calls:

- clean bundled set (50 requests, greedy, 64 new tokens), verdict by teacher forcing (compare's default)
  and by HF generate() on every request (--hf-generate); verdicts compared request by request;
- with --faults: each fault class the CPU tests plant (chat template off, doubled BOS, stop set,
  repetition penalty) on the first --fault-limit bundled prompts, and the two that need another engine
  (dtype, context too short) on ONE extra engine (float16 when the dtype is bfloat16, max_model_len 96);
- with --time: time to a verdict, each path with its own fresh loads (hf2vllm.bench.verdict_time).

    python3 scripts/gpu/gpu_verdicts.py --dtype bfloat16 --faults --time --out DIR
writes DIR/verdicts-<dtype>.json as it goes (and the full reports of the clean runs as .json.gz).
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path
from typing import Any

FAULTS = {  # name -> (per-side options as on the command line, expected cause)
    "chat_template_off": ({"no_chat_template": "vllm"}, "chat_template_differs"),
    "doubled_bos": ({"vllm_tokenize": True, "vllm_option": ["add_bos_token=true"]}, "bos_doubled"),
    "stop_set": ({"vllm_option": ["stop_token_ids=[0]"]}, "stop_sets_differ"),
    "repetition_penalty": ({"vllm_option": ["repetition_penalty=1.5"]}, "generation_settings_differ"),
}


def summary(report: Any, seconds: float) -> dict[str, Any]:
    s = report.summary
    rv = report.run_verdict
    return {
        "verdict_method": report.verdict_method,
        "requests": s.requests,
        "exact_matches": s.exact_matches,
        "verdicts": s.verdicts,
        "reference_generated": sum(r.reference_generated for r in report.requests),
        "teacher_forcing": s.teacher_forcing.model_dump() if s.teacher_forcing else None,
        "noise": report.noise.model_dump() if report.noise else None,
        "run_verdict": rv.statement if rv else None,
        "within_reference_noise": rv.within_reference_noise if rv else None,
        "collapse_flagged": rv.collapse.flagged if rv and rv.collapse else None,
        "causes": [{"id": c.id, "requests": len(c.requests), "evidence": c.evidence[:1]} for c in report.causes],
        "backends": [b.model_dump(exclude={"options"}) for b in report.backends],
        "logprobs_mode": report.logprobs_mode,
        "stage_seconds": report.stage_seconds,
        "wall_seconds": round(seconds, 3),
        "divergent": [
            {"id": r.id, "verdict": r.verdict, "position": r.first_divergence, "tf_fork": r.teacher_forced_fork,
             "ref": r.reference_token_at_divergence, "cand": r.candidate_token_at_divergence,
             "ref_margin": r.diagnosis.reference_margin if r.diagnosis else None,
             "cand_margin": r.diagnosis.candidate_margin if r.diagnosis else None,
             "noise": r.diagnosis.noise_floor if r.diagnosis else None,
             "noise_source": r.diagnosis.noise_source if r.diagnosis else None,
             "reason": r.diagnosis.reason if r.diagnosis else None}
            for r in report.requests if not r.exact_match
        ],
    }


def paths_agree(fast: Any, slow: Any) -> dict[str, Any]:
    """Request by request: the teacher-forced verdict against the full-generate verdict."""
    by_id = {r.id: r for r in fast.requests}
    differing = []
    for row in slow.requests:
        tf = by_id[row.id]
        if (tf.verdict, tf.reference_token_ids) != (row.verdict, row.reference_token_ids):
            differing.append({
                "id": row.id, "teacher_forcing": tf.verdict, "hf_generate": row.verdict,
                "tf_fork": tf.teacher_forced_fork, "generate_divergence": row.first_divergence,
                "same_reference_tokens": tf.reference_token_ids == row.reference_token_ids,
                "hf_generate_reason": row.diagnosis.reason if row.diagnosis else None,
            })
    same = sum(by_id[r.id].verdict == r.verdict for r in slow.requests)
    return {"requests": len(slow.requests), "same_verdict": same, "differing": differing}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--faults", action="store_true")
    parser.add_argument("--fault-limit", type=int, default=8)
    parser.add_argument("--time", action="store_true", help="time to a verdict, old vs new path, fresh loads")
    parser.add_argument("--only-time", action="store_true", help="skip the clean and fault runs")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.5)
    parser.add_argument("--eager", action="store_true", help="vLLM enforce_eager (skips torch.compile and CUDA graphs)")
    parser.add_argument("--device", default="cuda", help="cpu: a local smoke run of this script")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from hf2vllm.backends.base import create_backend
    from hf2vllm.options import per_side_choices
    from hf2vllm.models import resolve_model
    from hf2vllm.parity.run import BackendChoice, CompareOptions, run_compare

    result: dict[str, Any] = {"dtype": args.dtype, "device": args.device}
    target = args.out / f"verdicts-{args.dtype}.json"

    def save() -> None:
        target.write_text(json.dumps(result, indent=2))  # results as they go

    on_gpu = args.device != "cpu"
    model_path = resolve_model(None)
    if args.only_time:
        time_to_verdict(args, result, save)
        return
    hf_options = {"device": args.device, "batch_size": 32}
    vllm_options: dict[str, Any] = {"enforce_eager": args.eager or not on_gpu}
    if on_gpu:
        vllm_options["gpu_memory_utilization"] = args.gpu_memory_utilization
    start = time.perf_counter()
    hf = create_backend("hf", model=model_path, dtype=args.dtype, **hf_options)
    vllm = create_backend("vllm", model=model_path, dtype=args.dtype, **vllm_options)
    result["loads"] = {"hf": hf.load_seconds, "vllm": vllm.load_seconds, "wall": time.perf_counter() - start}
    reports = {}
    for path in ("teacher_forcing", "hf_generate"):
        options = CompareOptions(
            max_new_tokens=args.max_new_tokens, limit=args.limit, dtype=args.dtype,
            reference=BackendChoice(kind="hf", options=hf_options), candidate=BackendChoice(kind="vllm"),
            hf_generate=path == "hf_generate",
        )
        t0 = time.perf_counter()
        reports[path] = run_compare(options, backends={"reference": hf, "candidate": vllm})
        result[f"clean_{path}"] = summary(reports[path], time.perf_counter() - t0)
        with gzip.open(args.out / f"report-{args.dtype}-{path}.json.gz", "wt") as fh:
            fh.write(reports[path].model_dump_json())
        s = reports[path].summary
        print(f"[{args.dtype} {path}] exact {s.exact_matches}/{s.requests} {s.verdicts} "
              f"({time.perf_counter() - t0:.1f}s) {reports[path].run_verdict.statement if reports[path].run_verdict else ''}",
              flush=True)
        save()
    result["paths"] = paths_agree(reports["teacher_forcing"], reports["hf_generate"])
    print(f"[{args.dtype}] same verdict {result['paths']['same_verdict']}/{result['paths']['requests']}", flush=True)
    save()

    if args.faults:
        faults: dict[str, Any] = {}
        for name, (planted, expected) in FAULTS.items():
            reference, candidate = per_side_choices(
                [BackendChoice(kind="hf", options=hf_options), BackendChoice(kind="vllm")],
                [], list(planted.get("vllm_option", [])), planted.get("no_chat_template"),
                bool(planted.get("vllm_tokenize")),
            )
            options = CompareOptions(max_new_tokens=16, limit=args.fault_limit, dtype=args.dtype,
                                     reference=reference, candidate=candidate, batch_probe_limit=2)
            t0 = time.perf_counter()
            report = run_compare(options, backends={"reference": hf, "candidate": vllm})
            faults[name] = {"expected": expected, "named": expected in [c.id for c in report.causes],
                            **summary(report, time.perf_counter() - t0)}
            print(f"[{args.dtype} fault {name}] causes {[c.id for c in report.causes]} {report.summary.verdicts}",
                  flush=True)
            result["faults"] = faults
            save()
        # dtype and context length need another engine: one engine carries both faults.
        other = "float16" if args.dtype != "float16" else "bfloat16"
        vllm.close()
        extra = create_backend("vllm", model=model_path, dtype=other, max_model_len=96, **vllm_options)
        repo = Path(__file__).resolve().parents[2]
        options = CompareOptions(prompts=repo / "tests/explain/data/long_prompts.jsonl", max_new_tokens=16,
                                 dtype=args.dtype, reference=BackendChoice(kind="hf", options=hf_options),
                                 candidate=BackendChoice(kind="vllm"), batch_probe_limit=2)
        t0 = time.perf_counter()
        report = run_compare(options, backends={"reference": hf, "candidate": extra})
        ids = [c.id for c in report.causes]
        faults["dtype_and_context"] = {
            "expected": ["dtype_differs", "context_too_short"],
            "named": "dtype_differs" in ids and "context_too_short" in ids,
            "candidate_dtype": other, **summary(report, time.perf_counter() - t0),
        }
        print(f"[{args.dtype} fault dtype+context] causes {ids} {report.summary.verdicts}", flush=True)
        extra.close()
        save()
    else:
        vllm.close()
    hf.close()

    if args.time:
        time_to_verdict(args, result, save)


def time_to_verdict(args: argparse.Namespace, result: dict[str, Any], save: Any) -> None:
    from hf2vllm.bench.verdict_time import run_verdict_time

    timing = run_verdict_time(dtype=args.dtype, max_new_tokens=args.max_new_tokens, limit=args.limit,
                              device=args.device, repeats=args.repeats)
    result["time_to_verdict"] = timing.model_dump()
    print(f"[{args.dtype} time to verdict] old {timing.ratio_old:.2f} new {timing.ratio_new:.2f}", flush=True)
    for run in timing.runs:
        print(f"  {run.path} wall {run.wall_seconds} ratio {run.ratio} {run.stage_seconds}", flush=True)
    save()


if __name__ == "__main__":
    main()
