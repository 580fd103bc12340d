"""Small self-contained SVG charts (no scripts, no external assets) so the HTML report works with no network."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
WIDTH, HEIGHT = 640, 320
LEFT, RIGHT, TOP, BOTTOM = 64, 160, 24, 48


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        top = step * 10**exponent
        if top >= value:
            return top
    return 10 ** (exponent + 1)


def _fmt(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _frame(title: str, x_label: str, y_label: str, y_max: float) -> list[str]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{LEFT}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    for i in range(5):
        y = TOP + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{_fmt(y_max * i / 4)}</text>')
    parts.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 8}" font-size="12" text-anchor="middle">{escape(x_label)}</text>')
    parts.append(f'<text x="14" y="{TOP + plot_h / 2}" font-size="12" text-anchor="middle" '
                 f'transform="rotate(-90 14 {TOP + plot_h / 2})">{escape(y_label)}</text>')
    return parts


def line_chart(title: str, series: Sequence[tuple[str, Sequence[tuple[float, float]]]], *, x_label: str,
               y_label: str, x_ticks: Sequence[tuple[float, str]] | None = None) -> str:
    """Lines with markers; x positions are categorical (evenly spaced, in the order of ``x_ticks`` or
    of the sorted x values), which suits batch sizes, load levels and buckets."""
    xs = sorted({x for _, points in series for x, _ in points})
    ticks = list(x_ticks) if x_ticks else [(x, _fmt(x)) for x in xs]
    index = {x: i for i, (x, _) in enumerate(ticks)}
    y_max = _nice_max(max((y for _, points in series for _, y in points if math.isfinite(y)), default=1.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(ticks) - 1, 1)

    def pos(x: float, y: float) -> tuple[float, float]:
        px = LEFT + (index[x] * step if len(ticks) > 1 else plot_w / 2)
        return px, TOP + plot_h - plot_h * (y / y_max)

    parts = _frame(title, x_label, y_label, y_max)
    for x, text in ticks:
        px, _ = pos(x, 0)
        parts.append(f'<text x="{px:.1f}" y="{TOP + plot_h + 16}" font-size="11" text-anchor="middle">{escape(text)}</text>')
    for n, (name, points) in enumerate(series):
        color = PALETTE[n % len(PALETTE)]
        coords = [pos(x, y) for x, y in points if x in index and math.isfinite(y)]
        if len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            parts.append(f'<polyline class="series" fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
        for x, y in coords:
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>')
        ly = TOP + 14 + 16 * n
        parts.append(f'<rect x="{WIDTH - RIGHT + 12}" y="{ly - 9}" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{WIDTH - RIGHT + 26}" y="{ly}" font-size="11">{escape(name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def bar_chart(title: str, bars: Sequence[tuple[str, float]], *, y_label: str) -> str:
    """Vertical bars, one per label, value printed on top."""
    y_max = _nice_max(max((v for _, v in bars), default=1.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = _frame(title, "", y_label, y_max)
    slot = plot_w / max(len(bars), 1)
    for n, (label, value) in enumerate(bars):
        h = plot_h * value / y_max
        x = LEFT + n * slot + slot * 0.15
        color = PALETTE[n % len(PALETTE)]
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{slot * 0.7:.1f}" '
                     f'height="{h:.1f}" fill="{color}"><title>{escape(label)}: {value:.1f}</title></rect>')
        parts.append(f'<text x="{x + slot * 0.35:.1f}" y="{TOP + plot_h - h - 4:.1f}" font-size="10" '
                     f'text-anchor="middle">{_fmt(value)}</text>')
        ly = TOP + 14 + 16 * n
        parts.append(f'<rect x="{WIDTH - RIGHT + 12}" y="{ly - 9}" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{WIDTH - RIGHT + 26}" y="{ly}" font-size="10">{escape(label[:24])}</text>')
    parts.append("</svg>")
    return "\n".join(parts)
