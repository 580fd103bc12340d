"""Terminal view of a ``PoolingReport`` (Rich)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from hf2vllm.pooling.report import PoolingReport


def render_pooling_report(report: PoolingReport, console: Console, *, max_rows: int = 12) -> None:
    console.print(f"[bold]{report.task}[/bold] parity, {report.model} ({report.dtype})")
    if report.vllm_api:
        api = report.vllm_api
        console.print(
            f"vLLM {api.vllm_version}: task={report.vllm_pooler.get('task')}, "
            f"{api.normalise_field}={report.vllm_pooler.get('normalise')}"
            + (f", pooling {report.sequence_pooling}" if report.sequence_pooling else "")
        )
    side = report.vllm_side
    if side and (side.separate_checkpoint or side.dtype_reason):
        console.print(f"vLLM side: {side.checkpoint} ({side.dtype}{': ' + side.dtype_reason if side.dtype_reason else ''})")
    if report.overall:
        o = report.overall
        table = Table(title=f"per request (worst {max_rows} by min cosine)")
        for col in ("id", "rows", "cos min", "cos mean", "rel L2", "norm ratio", "|HF|", "|vLLM|"):
            table.add_column(col, justify="left" if col == "id" else "right")
        for row in sorted(report.requests, key=lambda r: r.agreement.cosine_min)[:max_rows]:
            a = row.agreement
            table.add_row(
                row.id, str(row.tokens), f"{a.cosine_min:.6f}", f"{a.cosine_mean:.6f}", f"{a.relative_l2_error:.2e}",
                f"{a.norm_ratio_mean:.4f}", f"{a.reference_norm_mean:.2f}", f"{a.candidate_norm_mean:.2f}",
            )
        table.add_row(
            "[bold]overall[/bold]", str(o.rows), f"{o.cosine_min:.6f}", f"{o.cosine_mean:.6f}", f"{o.relative_l2_error:.2e}",
            f"{o.norm_ratio_mean:.4f}", f"{o.reference_norm_mean:.2f}", f"{o.candidate_norm_mean:.2f}",
        )
        console.print(table)
    if report.normalisation:
        n = report.normalisation
        console.print(
            f"normalisation: HF {'L2-normalised' if n.reference_normalised else 'raw'} (mean norm {n.reference_norm_mean:.3f}), "
            f"vLLM {'L2-normalised' if n.candidate_normalised else 'raw'} (mean norm {n.candidate_norm_mean:.3f})"
        )
    if report.probe:
        p = report.probe
        line = f"probe {p.source} ({p.pooling}): agreement {p.agreement_rate:.4f} over {p.rows} rows"
        if p.labelled_spans:
            line += f"; labelled spans {p.labelled_spans}: accuracy HF {p.reference_accuracy:.4f}, vLLM {p.candidate_accuracy:.4f}"
        console.print(line)
        for d in p.disagreements[:5]:
            console.print(f"  {d.request_id}@{d.position} {d.token!r}: HF {d.reference} vs vLLM {d.candidate}")
    if report.lora:
        lora = report.lora
        ins = lora.inspection
        console.print(
            f"LoRA {ins.adapter_dir}: r={ins.rank} alpha={ins.alpha:g} targets={ins.target_modules} layout={ins.layout} "
            f"({ins.matched_modules} modules matched; vLLM max_lora_rank {ins.required_max_lora_rank})"
        )
        for f in ins.findings:
            console.print(f"  {f.severity}: {f.message}")
        for side in lora.sides:
            if side.base_vs_adapter is not None:
                detail = f"base->adapter relative L2 {side.base_vs_adapter.relative_l2_error:.3f}, min cosine {side.base_vs_adapter.cosine_min:.4f}"
            else:
                detail = f"{side.changed_generations} greedy outputs changed"
            console.print(f"  {side.backend}: {'applied' if side.applied else '[red]NOT applied[/red]'} ({detail})")
        if lora.adapter_parity:
            console.print(f"  HF+adapter vs vLLM+adapter: min cosine {lora.adapter_parity.cosine_min:.6f}, rel L2 {lora.adapter_parity.relative_l2_error:.2e}")
        if lora.adapter_generation_exact_match_rate is not None:
            console.print(f"  HF+adapter vs vLLM+adapter greedy exact match: {lora.adapter_generation_exact_match_rate:.4f}")
    if report.quantisation:
        q = report.quantisation
        m = q.measured
        shape = ", ".join(x for x in (f"{q.bits}-bit" if q.bits else "", f"group {q.group_size}" if q.group_size else "") if x)
        console.print(
            f"quantisation {q.method} (vLLM ran {q.engine_method}{', ' + shape if shape else ''}; activations vLLM "
            f"{q.vllm_dtype} vs HF {q.reference_dtype}): measured cosine min {m.cosine_min:.6f}, mean {m.cosine_mean:.6f}, "
            f"relative L2 {m.relative_l2_error:.4f} (largest row {m.relative_l2_max:.4f}), norm ratio {m.norm_ratio_mean:.4f}"
        )
        console.print(f"  cosine gate {q.gate}; typical: {q.expected}")
    if report.passed:
        console.print("[green]PASS[/green]")
    for failure in report.failures:
        console.print(f"[red]FAIL[/red] {failure}")
