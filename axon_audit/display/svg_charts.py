"""Inline SVG charts for the HTML report: stacked bars, a line, horizontal bars.

Each builder takes already-aggregated values (a month's days, a few operations,
the top users: tens of points, never the events) and returns an `Html` fragment:
one ``<svg>`` element with its own styling, no script and no external reference,
so a page holding it is self-contained. Every label is escaped (`html.escape`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

from axon_audit.display.html import Html

__all__ = ["PALETTE", "hbars", "line_chart", "stacked_bars"]

#: Series colours (colour-blind friendly, Okabe-Ito), in order; they repeat past the end.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999",
           "#332288", "#88CCEE", "#117733", "#AA4499")

_FONT = "font-family:system-ui,sans-serif"
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 12, 30, 34


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 x 10^k at least `value` (an axis' top: five even steps)."""
    if value <= 0:
        return 1.0
    base = 10 ** math.floor(math.log10(value))
    return next(m * base for m in (1, 2, 5, 10) if m * base >= value)


def _percent_digits(step: float) -> int:
    """Decimals a share axis with this step needs, so that no two ticks read the same
    (0.04 %, 1.5 %, 20 %)."""
    pct = step * 100
    if pct <= 0:
        return 0
    digits = max(0, -math.floor(math.log10(pct)))
    return digits + (abs(pct * 10 ** digits - round(pct * 10 ** digits)) > 1e-9)


def _tick(value: float, percent: bool, step: float = 0.0) -> str:
    if percent:
        return f"{value:.{_percent_digits(step)}%}" if step else f"{value:.0%}"
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1_000:
        return f"{value / 1_000:g}k"
    return f"{value:g}"


def _frame(width: int, height: int, title: str, body: str) -> Html:
    return Html(
        f"<svg viewBox='0 0 {width} {height}' width='100%' "
        f"role='img' aria-label='{_e(title)}' style='max-width:{width}px;{_FONT};font-size:11px'>"
        f"<title>{_e(title)}</title>"
        f"<text x='{_LEFT}' y='16' font-size='13' font-weight='600' fill='#223'>{_e(title)}</text>"
        f"{body}</svg>")


def _y_axis(top: float, width: int, height: int, percent: bool) -> str:
    """Six grid lines with their values, from 0 to `top`."""
    plot_h = height - _TOP - _BOTTOM
    out = []
    for i in range(6):
        value = top * i / 5
        y = _TOP + plot_h - plot_h * i / 5
        out.append(f"<line x1='{_LEFT}' x2='{width - _RIGHT}' y1='{y:.1f}' y2='{y:.1f}' "
                   f"stroke='{'#99a' if i == 0 else '#e3e5ee'}'/>"
                   f"<text x='{_LEFT - 6}' y='{y + 4:.1f}' text-anchor='end' fill='#556'>"
                   f"{_e(_tick(value, percent, top / 5))}</text>")
    return "".join(out)


def _x_labels(labels: Sequence[str], width: int, height: int) -> str:
    """Every label if they fit, else every k-th (a month's 31 days stay readable)."""
    n = len(labels)
    step = (width - _LEFT - _RIGHT) / max(n, 1)
    every = max(1, math.ceil(n * 34 / (width - _LEFT - _RIGHT)))
    return "".join(
        f"<text x='{_LEFT + step * (i + 0.5):.1f}' y='{height - _BOTTOM + 14}' text-anchor='middle' "
        f"fill='#556'>{_e(label)}</text>"
        for i, label in enumerate(labels) if i % every == 0)


def _legend(names: Sequence[str], width: int, height: int) -> str:
    out, x = [], float(_LEFT)
    for i, name in enumerate(names):
        if x > width - 80:
            break  # more series than the width holds: the table below lists them all
        out.append(f"<rect x='{x:.1f}' y='{height - 12}' width='10' height='10' fill='{PALETTE[i % len(PALETTE)]}'/>"
                   f"<text x='{x + 14:.1f}' y='{height - 3}' fill='#334'>{_e(name)}</text>")
        x += 24 + 7 * len(name)
    return "".join(out)


def stacked_bars(labels: Sequence[str], series: Mapping[str, Sequence[float]], *, title: str,
                 width: int = 900, height: int = 280) -> Html:
    """One bar per label, the series stacked in order (each as long as `labels`).

    Example:
        >>> from axon_audit.display.svg_charts import stacked_bars
        >>> svg = stacked_bars(["d1", "d2"], {"STORE": [3, 1], "<x>": [1, 0]}, title="events")
        >>> svg.startswith("<svg"), svg.count("<rect"), "&lt;x&gt;" in svg
        (True, 5, True)
    """
    names = list(series)
    totals = [sum(series[s][i] for s in names) for i in range(len(labels))]
    top = _nice_max(max(totals, default=0))
    plot_h = height - _TOP - _BOTTOM - 14  # room for the legend
    h = height - 14
    step = (width - _LEFT - _RIGHT) / max(len(labels), 1)
    bars = []
    for i, label in enumerate(labels):
        y = float(_TOP + plot_h)
        for k, name in enumerate(names):
            value = series[name][i]
            if value <= 0:
                continue
            bar_h = plot_h * value / top
            y -= bar_h
            bars.append(f"<rect x='{_LEFT + step * i + step * 0.12:.1f}' y='{y:.1f}' width='{step * 0.76:.1f}' "
                        f"height='{bar_h:.1f}' fill='{PALETTE[k % len(PALETTE)]}'>"
                        f"<title>{_e(label)} {_e(name)}: {value:,.0f}</title></rect>")
    body = _y_axis(top, width, h, False) + "".join(bars) + _x_labels(labels, width, h) + _legend(names, width, height)
    return _frame(width, height, title, body)


def line_chart(labels: Sequence[str], values: Sequence[float | None], *, title: str, percent: bool = True,
               width: int = 900, height: int = 220) -> Html:
    """A line through one value per label (None: a gap), with a dot at each point.

    Example:
        >>> from axon_audit.display.svg_charts import line_chart
        >>> svg = line_chart(["a", "b", "c"], [0.1, None, 0.2], title="failure rate")
        >>> svg.count("<polyline"), svg.count("<circle")
        (2, 2)
    """
    top = _nice_max(max((v for v in values if v is not None), default=0))
    plot_h = height - _TOP - _BOTTOM
    step = (width - _LEFT - _RIGHT) / max(len(labels), 1)
    runs: list[list[str]] = [[]]
    dots = []
    for i, value in enumerate(values):
        if value is None:
            runs.append([])
            continue
        x, y = _LEFT + step * (i + 0.5), _TOP + plot_h - plot_h * value / top
        runs[-1].append(f"{x:.1f},{y:.1f}")
        shown = f"{value:.2%}" if percent else f"{value:,g}"
        dots.append(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3' fill='#D55E00'>"
                    f"<title>{_e(labels[i])}: {shown}</title></circle>")
    lines = "".join(f"<polyline points='{' '.join(run)}' fill='none' stroke='#D55E00' stroke-width='2'/>"
                    for run in runs if run)
    body = _y_axis(top, width, height, percent) + lines + "".join(dots) + _x_labels(labels, width, height)
    return _frame(width, height, title, body)


def hbars(labels: Sequence[str], values: Sequence[float], *, title: str, width: int = 900,
          bar: int = 18, label_width: int = 190) -> Html:
    """One horizontal bar per label, top to bottom, its value at its end.

    Example:
        >>> from axon_audit.display.svg_charts import hbars
        >>> svg = hbars(["<script>", "bob"], [10, 4], title="top users")
        >>> svg.count("<rect"), "<script>" in svg
        (2, False)
    """
    height = _TOP + bar * len(labels) + 10
    top = max(values, default=0) or 1
    room = width - label_width - 70
    rows = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = _TOP + bar * i
        text = str(label) if len(str(label)) <= 28 else str(label)[:27] + "…"
        w = room * value / top
        rows.append(f"<text x='{label_width - 6}' y='{y + bar * 0.7:.1f}' text-anchor='end' fill='#334'>"
                    f"{_e(text)}<title>{_e(label)}</title></text>"
                    f"<rect x='{label_width}' y='{y + 2}' width='{w:.1f}' height='{bar - 4}' fill='#0072B2'/>"
                    f"<text x='{label_width + w + 5:.1f}' y='{y + bar * 0.7:.1f}' fill='#334'>{value:,.0f}</text>")
    return _frame(width, height, title, "".join(rows))
