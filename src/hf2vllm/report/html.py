"""Self-contained ``report.html``: one Jinja2 template, inline CSS/JS, charts as inline SVG.

Works offline (no CDN, no external resource). The charts are built here as SVG strings by small pure
functions so the page needs no plotting library; tokens carry their logprobs in ``title`` attributes
(hover) and a short inline script adds a verdict filter and a hover panel.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hf2vllm.backends.base import StepLogprobs
from hf2vllm.report.schema import CompareReport, RequestComparison, SurvivalPoint
from hf2vllm.report.terminal import longest_output, verdict_method_text

HTML_FILE = "report.html"
VERDICT_COLOURS = {"match": "#2e7d32", "near_tie": "#b7791f", "mismatch": "#c62828"}


@dataclass(frozen=True)
class TokenCell:
    """One output token as the page shows it."""

    text: str
    title: str
    css: str


def _visible(text: str) -> str:
    return text.replace("\n", "⏎").replace("\t", "⇥") or "∅"


def token_cells(
    token_ids: Sequence[int],
    steps: Sequence[StepLogprobs] | None,
    divergence: int | None,
    strings: dict[int, str],
) -> list[TokenCell]:
    """Token spans for one side: the divergence token marked, later tokens dimmed, logprobs in the title."""
    cells = []
    for pos, tok in enumerate(token_ids):
        text = strings.get(tok, f"<{tok}>")
        title = f"#{pos} id {tok} {text!r}"
        if steps is not None and pos < len(steps):
            step = steps[pos]
            alternatives = ", ".join(f"{strings.get(t, t)!r} {lp:.3f}" for t, lp in step.top.items())
            title += f"\nlogprob {step.logprob:.4f}\ntop: {alternatives}"
        css = "tok"
        if divergence is not None and pos == divergence:
            css += " div"
        elif divergence is not None and pos > divergence:
            css += " after"
        cells.append(TokenCell(text=_visible(text), title=title, css=css))
    return cells


def line_chart_svg(series: Sequence[float], *, width: int = 640, height: int = 160, label: str = "") -> str:
    """A line of ``series`` over positions 0..n-1, y from 0 to its max, with axis labels."""
    pad_l, pad_b, pad_t = 48, 22, 10
    if not series:
        return f'<svg class="chart" width="{width}" height="{height}" role="img" aria-label="{label}"></svg>'
    top = max(max(series), 1e-9)
    inner_w, inner_h = width - pad_l - 8, height - pad_b - pad_t
    step = inner_w / max(len(series) - 1, 1)
    points = " ".join(
        f"{pad_l + i * step:.1f},{pad_t + inner_h - (v / top) * inner_h:.1f}" for i, v in enumerate(series)
    )
    return (
        f'<svg class="chart" width="{width}" height="{height}" role="img" aria-label="{label}">'
        f'<line x1="{pad_l}" y1="{pad_t + inner_h}" x2="{width - 8}" y2="{pad_t + inner_h}" class="axis"/>'
        f'<line x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{pad_t + inner_h}" class="axis"/>'
        f'<text x="{pad_l - 4}" y="{pad_t + 8}" text-anchor="end">{top:.3g}</text>'
        f'<text x="{pad_l - 4}" y="{pad_t + inner_h}" text-anchor="end">0</text>'
        f'<text x="{pad_l}" y="{height - 4}">0</text>'
        f'<text x="{width - 8}" y="{height - 4}" text-anchor="end">{len(series) - 1}</text>'
        f'<polyline fill="none" stroke="#1565c0" stroke-width="1.5" points="{points}"/></svg>'
    )


def histogram_svg(
    positions: dict[str, list[int]], max_position: int, *, bins: int = 16, width: int = 640, height: int = 160
) -> str:
    """Stacked bars of first-divergence positions per verdict (``{"near_tie": [3, 9], ...}``)."""
    pad_l, pad_b, pad_t = 32, 22, 10
    size = max(1, -(-(max_position + 1) // bins))
    counts = {v: [0] * bins for v in positions}
    for verdict, values in positions.items():
        for p in values:
            counts[verdict][min(p // size, bins - 1)] += 1
    totals = [sum(counts[v][b] for v in counts) for b in range(bins)]
    top = max(max(totals, default=0), 1)
    inner_w, inner_h = width - pad_l - 8, height - pad_b - pad_t
    bar_w = inner_w / bins
    parts = [
        f'<svg class="chart" width="{width}" height="{height}" role="img" aria-label="divergence positions">',
        f'<line x1="{pad_l}" y1="{pad_t + inner_h}" x2="{width - 8}" y2="{pad_t + inner_h}" class="axis"/>',
        f'<text x="{pad_l - 4}" y="{pad_t + 8}" text-anchor="end">{top}</text>',
    ]
    for b in range(bins):
        y = pad_t + inner_h
        for verdict in counts:
            n = counts[verdict][b]
            if not n:
                continue
            h = n / top * inner_h
            y -= h
            parts.append(
                f'<rect class="bar" x="{pad_l + b * bar_w + 1:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" '
                f'height="{h:.1f}" fill="{VERDICT_COLOURS.get(verdict, "#555")}">'
                f"<title>{verdict}: {n} at positions {b * size}–{(b + 1) * size - 1}</title></rect>"
            )
        if b % 4 == 0:
            parts.append(f'<text x="{pad_l + b * bar_w:.1f}" y="{height - 4}">{b * size}</text>')
    parts.append("</svg>")
    return "".join(parts)


def survival_chart_svg(
    points: Sequence[SurvivalPoint], longest: int, *, width: int = 640, height: int = 180
) -> str:
    """Step chart of the share of answers still identical (y, 0..1, 1 at the top) through each output
    position (x, 0..``longest``): one ``<path class="step">`` per survival point (the level since the previous
    point, then the drop at this point), a tail to ``longest``, and axis labels."""
    pad_l, pad_b, pad_t, pad_r = 48, 34, 10, 12
    label = "share of answers identical by output position"
    if not points:
        return f'<svg class="chart survival" width="{width}" height="{height}" role="img" aria-label="{label}"></svg>'
    longest = max(longest, max(p.position for p in points), 1)
    inner_w, inner_h = width - pad_l - pad_r, height - pad_b - pad_t
    bottom = pad_t + inner_h

    def x(position: int) -> float:
        return pad_l + position / longest * inner_w

    def y(share: float) -> float:
        return pad_t + (1.0 - min(max(share, 0.0), 1.0)) * inner_h

    parts = [
        f'<svg class="chart survival" width="{width}" height="{height}" role="img" aria-label="{label}">',
        f'<line x1="{pad_l}" y1="{bottom}" x2="{width - pad_r}" y2="{bottom}" class="axis x-axis"/>',
        f'<line x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{bottom}" class="axis y-axis"/>',
        f'<line x1="{pad_l}" y1="{y(0.5):.1f}" x2="{width - pad_r}" y2="{y(0.5):.1f}" class="grid"/>',
        f'<text x="{pad_l - 4}" y="{pad_t + 8}" text-anchor="end">1</text>',
        f'<text x="{pad_l - 4}" y="{y(0.5) + 4:.1f}" text-anchor="end">0.5</text>',
        f'<text x="{pad_l - 4}" y="{bottom}" text-anchor="end">0</text>',
        f'<text x="{pad_l}" y="{bottom + 12}" text-anchor="middle">0</text>',
        f'<text x="{width - pad_r}" y="{bottom + 12}" text-anchor="end">{longest}</text>',
        f'<text x="{pad_l + inner_w / 2:.1f}" y="{height - 4}" text-anchor="middle" class="axis-title">'
        "output position</text>",
        f'<text x="12" y="{pad_t + inner_h / 2:.1f}" text-anchor="middle" class="axis-title" '
        f'transform="rotate(-90 12 {pad_t + inner_h / 2:.1f})">share identical</text>',
    ]
    prev_position, prev_share = 0, 1.0
    for point in points:
        parts.append(
            f'<path class="step" data-position="{point.position}" data-identical="{point.identical:g}" '
            f'd="M{x(prev_position):.1f},{y(prev_share):.1f} H{x(point.position):.1f} V{y(point.identical):.1f}">'
            f"<title>through position {point.position}: {point.identical:.1%} identical "
            f"({point.at_risk} at risk)</title></path>"
        )
        prev_position, prev_share = point.position, point.identical
    parts.append(
        f'<path class="tail" d="M{x(prev_position):.1f},{y(prev_share):.1f} H{x(longest):.1f}"/></svg>'
    )
    return "".join(parts)


def max_abs_diff_by_position(rows: Sequence[RequestComparison]) -> list[float]:
    """Largest teacher-forced |Δlogprob| at each output position over all requests."""
    worst: list[float] = []
    for row in rows:
        if row.teacher_forcing is None:
            continue
        for series in (row.teacher_forcing.reference_output_diff, row.teacher_forcing.candidate_output_diff):
            for pos, value in enumerate(series):
                if pos >= len(worst):
                    worst.append(0.0)
                worst[pos] = max(worst[pos], abs(value))
    return worst


def render_html(report: CompareReport) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("hf2vllm.report", "templates"), autoescape=select_autoescape(["html", "j2"]))
    strings = report.token_strings
    requests = []
    for row in report.requests:
        div = row.first_divergence
        series = []
        if row.teacher_forcing is not None:
            series = [abs(v) for v in row.teacher_forcing.reference_output_diff]
        requests.append(
            {
                "row": row,
                "reference": token_cells(row.reference_token_ids, row.reference_logprobs, div, strings),
                "candidate": token_cells(row.candidate_token_ids, row.candidate_logprobs, div, strings),
                "sparkline": line_chart_svg(series, width=420, height=90, label=f"{row.id} |Δlogprob|")
                if series
                else "",
            }
        )
    positions: dict[str, list[int]] = {"near_tie": [], "mismatch": []}
    for row in report.requests:
        if row.diagnosis is not None and row.verdict in positions:
            positions[row.verdict].append(row.diagnosis.position)
    longest = longest_output(report)
    order = {"mismatch": 0, "near_tie": 1, "match": 2}
    requests.sort(key=lambda r: (order[r["row"].verdict], r["row"].id))
    return env.get_template("report.html.j2").render(
        report=report,
        requests=requests,
        colours=VERDICT_COLOURS,
        delta_chart=line_chart_svg(max_abs_diff_by_position(report.requests), label="max |Δlogprob| by position"),
        position_chart=histogram_svg(positions, longest),
        method_text=verdict_method_text(report),
        group_of={rid: g.name for g in report.groups for rid in g.request_ids},
        survival_chart=survival_chart_svg(report.run_verdict.survival, longest - 1)
        if report.run_verdict is not None and report.run_verdict.survival
        else "",
    )


def write_html(report: CompareReport, target: Path) -> Path:
    """Write the page atomically; ``target`` is a file path or a directory (gets ``report.html``)."""
    if target.is_dir() or target.suffix == "":
        target = target / HTML_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".html", dir=target.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(render_html(report))
    os.replace(tmp, target)
    return target
