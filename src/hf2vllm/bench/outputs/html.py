"""``bench.html``: one self-contained page (inline CSS and SVG charts; no scripts, no CDN, no network).

Charts: offline tokens/s per mode, HF throughput vs batch size, serve throughput and latency
percentiles vs load, decay curves. Tables repeat every number the charts show.
"""

from __future__ import annotations

import math
from pathlib import Path

from jinja2 import Environment, select_autoescape

from hf2vllm.bench.outputs.svg import bar_chart, line_chart
from hf2vllm.bench.schema import BenchReport

_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>hf2vllm benchmark</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.ok{color:#17823b}.bad{color:#b3261e}.charts{display:flex;flex-wrap:wrap;gap:1em}
</style></head><body>
<h1>hf2vllm benchmark</h1>
<p id="machine">Machine: {{ r.machine.cpu_model }}, {{ r.machine.logical_cpus }} logical CPUs, {{ r.machine.memory_gib }} GiB
memory ({{ r.machine.hostname }}). Load average at start {{ r.machine.load_average_start }}, at end
{{ r.machine.load_average_end }}. Run {{ r.machine.started_at }} to {{ r.machine.finished_at or "?" }}.
Packages: {% for k, v in r.machine.packages.items() %}{{ k }} {{ v }}{% if not loop.last %}, {% endif %}{% endfor %}.</p>
{% for note in r.notes %}<p class="note">{{ note }}</p>{% endfor %}
{% if r.offline %}{% set off = r.offline %}
<h2 id="offline">Offline: {{ off.requests }} requests &times; {{ off.max_new_tokens }} new tokens</h2>
<p>{{ "Fixed output length (every request generates exactly max_new_tokens on both backends)" if off.fixed_output_length else "Generation stops at the model's stop tokens" }};
dtype {{ off.dtype }}; {{ off.repeats }} timed repetition(s) per mode (median shown). Best HF batch size: {{ off.best_hf_batch_size }}.</p>
<div class="charts">{{ charts.offline_bars | safe }}{{ charts.batch_sweep | safe }}</div>
<table id="offline-table"><tr><th>mode</th><th>tok/s</th><th>req/s</th><th>total s</th><th>peak RSS MiB</th><th>vs HF batched best</th><th>repeats tok/s</th><th>status</th></tr>
{% for m in off.modes %}<tr><td>{{ m.label }}</td><td>{{ "%.1f"|format(m.output_tokens_per_second) }}</td><td>{{ "%.2f"|format(m.requests_per_second) }}</td>
<td>{{ "%.2f"|format(m.total_seconds) }}</td><td>{{ "%.0f"|format(m.peak_rss_mib) }}</td><td>{{ ratios.get(m.label, "-") }}</td>
<td>{{ m.repeats|join(", ") }}</td><td>{{ m.status }}{% if m.note %} ({{ m.note }}){% endif %}</td></tr>
{% endfor %}</table>
{% if off.fairness %}{% set f = off.fairness %}<p id="fairness" class="{{ 'ok' if f.holds else 'bad' }}">Fairness: HF batched at bs={{ f.batch_size }}
{{ "%.1f"|format(f.hf_batched_tokens_per_second) }} tok/s vs a plain hand-written <code>model.generate</code> loop
{{ "%.1f"|format(f.plain_loop_tokens_per_second) }} tok/s ({{ f.explain() }}): {{ "holds" if f.holds else "does not hold" }}.</p>{% endif %}
{% endif %}
{% if r.serve %}{% set s = r.serve %}
<h2 id="serve">Served: {{ s.url }} ({{ s.model }})</h2>
<p>{{ s.output_tokens_per_request }} output tokens per request; {{ s.warmup_requests }} warm-up request(s) per level excluded.
{% if s.saturation_load is not none %}Saturation point: {{ s.saturation_profile }} {{ s.saturation_load }}.{% endif %}
{% if s.throughput_knee_load is not none %}Throughput knee: {{ s.saturation_profile }} {{ s.throughput_knee_load }}.{% endif %}</p>
<div class="charts">{{ charts.serve_throughput | safe }}{{ charts.serve_ttft | safe }}{{ charts.serve_e2e | safe }}</div>
<table id="serve-table"><tr><th>load</th><th>ok/sent</th><th>out tok/s</th><th>req/s</th><th>goodput req/s</th>
<th>TTFT mean/med/p90/p99 ms</th><th>TPOT med ms</th><th>ITL med/p99 ms</th><th>E2E med/p99 ms</th></tr>
{% for p in s.points %}<tr><td>{{ p.profile }} {{ p.load }}</td><td>{{ p.completed }}/{{ p.requests }}</td><td>{{ "%.1f"|format(p.output_tokens_per_second) }}</td>
<td>{{ "%.2f"|format(p.requests_per_second) }}</td><td>{{ "-" if p.goodput_requests_per_second is none else "%.2f"|format(p.goodput_requests_per_second) }}</td>
<td>{% if p.ttft_ms %}{{ "%.1f/%.1f/%.1f/%.1f"|format(p.ttft_ms.mean, p.ttft_ms.median, p.ttft_ms.p90, p.ttft_ms.p99) }}{% else %}-{% endif %}</td>
<td>{% if p.tpot_ms %}{{ "%.1f"|format(p.tpot_ms.median) }}{% else %}-{% endif %}</td>
<td>{% if p.itl_ms %}{{ "%.1f/%.1f"|format(p.itl_ms.median, p.itl_ms.p99) }}{% else %}-{% endif %}</td>
<td>{% if p.e2e_ms %}{{ "%.1f/%.1f"|format(p.e2e_ms.median, p.e2e_ms.p99) }}{% else %}-{% endif %}</td></tr>
{% endfor %}</table>{% endif %}
{% if r.decay %}<h2 id="decay">Long-generation decay</h2>
<div class="charts">{{ charts.decay | safe }}</div>
{% for c in r.decay %}<table class="decay-table"><tr><th>{{ c.source }}: positions</th><th>tok/s per sequence</th><th>aggregate tok/s</th><th>mean ITL ms</th></tr>
{% for b in c.buckets %}<tr><td>{{ b.start }}&ndash;{{ b.end - 1 }}</td><td>{{ "%.1f"|format(b.tokens_per_second_per_sequence) }}</td>
<td>{{ "%.1f"|format(b.aggregate_tokens_per_second) }}</td><td>{{ "%.1f"|format(b.mean_itl_ms) }}</td></tr>{% endfor %}</table>{% endfor %}{% endif %}
{% if r.crosscheck %}{% set c = r.crosscheck %}
<h2 id="crosscheck">Cross-check against <code>vllm bench serve</code></h2>
<p class="{{ 'ok' if c.holds else 'bad' }}">Output throughput differs by {{ "%.1f"|format(c.throughput_relative_difference * 100) }}%,
median TTFT by {{ "%.1f"|format(c.median_ttft_relative_difference * 100) }}% (tolerance {{ "%.0f"|format(c.tolerance * 100) }}%):
{{ "agree" if c.holds else "disagree" }}.</p>
<table><tr><th></th><th>out tok/s (runs)</th><th>median TTFT ms (runs)</th></tr>
<tr><td>hf2vllm bench serve</td><td>{{ c.ours.output_tokens_per_second|join(", ") }}</td><td>{{ c.ours.median_ttft_ms|join(", ") }}</td></tr>
<tr><td>vllm bench serve</td><td>{{ c.vllm_bench.output_tokens_per_second|join(", ") }}</td><td>{{ c.vllm_bench.median_ttft_ms|join(", ") }}</td></tr></table>
{% endif %}
</body></html>
"""


def _load_label(profile: str, load: float) -> str:
    if profile == "concurrency":
        return f"c={int(load)}"
    return "inf" if math.isinf(load) else f"{load:g}/s"


def charts(report: BenchReport) -> dict[str, str]:
    out: dict[str, str] = {}
    if report.offline is not None:
        ok = [m for m in report.offline.modes if m.status == "ok"]
        out["offline_bars"] = bar_chart("Output tokens/s per mode", [(m.label, m.output_tokens_per_second) for m in ok],
                                        y_label="output tokens/s")
        sweep = sorted((m for m in ok if m.mode == "hf_batched" and m.batch_size), key=lambda m: m.batch_size or 0)
        if sweep:
            series = [("HF batched", [(float(m.batch_size or 0), m.output_tokens_per_second) for m in sweep])]
            vllm = next((m for m in ok if m.mode == "vllm_all_at_once"), None)
            if vllm is not None:
                series.append(("vLLM all at once", [(float(m.batch_size or 0), vllm.output_tokens_per_second) for m in sweep]))
            out["batch_sweep"] = line_chart("Throughput vs HF batch size", series, x_label="batch size",
                                            y_label="output tokens/s")
    if report.serve is not None and report.serve.points:
        for kind in ("concurrency", "rate"):
            pts = sorted((p for p in report.serve.points if p.profile == kind), key=lambda p: p.load)
            if not pts:
                continue
            ticks = [(p.load, _load_label(kind, p.load)) for p in pts]
            suffix = "" if kind == "concurrency" else " (rate)"
            out.setdefault("serve_throughput", "")
            out["serve_throughput"] += line_chart(
                f"Output throughput vs {kind}", [("output tok/s", [(p.load, p.output_tokens_per_second) for p in pts])],
                x_label=kind, y_label="tokens/s", x_ticks=ticks)
            out.setdefault("serve_ttft", "")
            out["serve_ttft"] += line_chart(
                f"TTFT percentiles vs {kind}{suffix}",
                [(name, [(p.load, getattr(p.ttft_ms, field)) for p in pts if p.ttft_ms])
                 for name, field in (("median", "median"), ("p90", "p90"), ("p99", "p99"))],
                x_label=kind, y_label="ms", x_ticks=ticks)
            out.setdefault("serve_e2e", "")
            out["serve_e2e"] += line_chart(
                f"E2E latency percentiles vs {kind}{suffix}",
                [(name, [(p.load, getattr(p.e2e_ms, field)) for p in pts if p.e2e_ms])
                 for name, field in (("median", "median"), ("p90", "p90"), ("p99", "p99"))],
                x_label=kind, y_label="ms", x_ticks=ticks)
    if report.decay:
        starts = sorted({b.start for c in report.decay for b in c.buckets})
        ticks = [(float(s), str(s)) for s in starts]
        out["decay"] = line_chart(
            "Decode speed per output position (tokens/s per sequence)",
            [(c.source, [(float(b.start), b.tokens_per_second_per_sequence) for b in c.buckets]) for c in report.decay],
            x_label="output position (bucket start)", y_label="tokens/s", x_ticks=ticks)
    return out


def render_html(report: BenchReport) -> str:
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    ratios = {s.label: f"{s.ratio_vs_hf_batched_best:.2f}x" for s in (report.offline.speedups if report.offline else [])}
    return env.from_string(_TEMPLATE).render(r=report, charts=charts(report), ratios=ratios)


def write_html(report: BenchReport, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report), encoding="utf-8")
    return path
