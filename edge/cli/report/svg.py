"""Tiny inline-SVG charts: a histogram, a line chart and a horizontal bar chart.

Each function returns one ``<svg>`` element as a string, to be placed inside an HTML page:
no JavaScript, no fonts or files to fetch, so the page works offline and prints as it shows.
Text is escaped here; callers pass plain strings. Figures are drawn as given, never smoothed::

    svg = histogram([1.0, 1.1, 0.9, 1.3], unit="ms", marks={"p50": 1.05})
"""

from __future__ import annotations

import math
from html import escape

__all__ = ["PALETTE", "bar_chart", "histogram", "line_chart", "number", "tick", "ticks"]

# Okabe-Ito: tells series apart for the colour-blind too, and prints in grey distinguishably.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
AXIS = "#666"
GRID = "#e3e3e3"


def number(value: float) -> str:
    """A figure for a label: three significant digits, thousands separated, never exponent notation."""
    if isinstance(value, int):
        return f"{value:,}"
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    digits = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{value:.{digits}f}"


def tick(value: float) -> str:
    """A tick label: like ``number`` but without trailing zeros (0.045, not 0.0450)."""
    text = number(value)
    return text.rstrip("0").rstrip(".") if "." in text else text


def ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 times a power of ten) covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    out, value = [], first
    while value <= hi + step * 1e-9:
        out.append(round(value, 12))
        value += step
    return out


def _round_up(value: float) -> float:
    """The first round tick at or above ``value``, so an axis ends on a labelled line."""
    if value <= 0:
        return 1.0
    marks = ticks(0, value, 4)
    step = marks[1] - marks[0] if len(marks) > 1 else value
    return math.ceil(value / step - 1e-9) * step


def _svg(width: int, height: int, label: str, body: list[str]) -> str:
    return (f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'role="img" aria-label="{escape(label)}"><title>{escape(label)}</title>{"".join(body)}</svg>')


def _text(x: float, y: float, text: str, anchor: str = "start", cls: str = "", extra: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{c}{extra}>{escape(text)}</text>'


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _y_axis(body: list[str], top: float, bottom: float, left: float, right: float, lo: float, hi: float,
            fmt=tick) -> None:
    for t in ticks(lo, hi, 4):
        y = bottom - (t - lo) / (hi - lo) * (bottom - top)
        body.append(f'<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        body.append(_text(left - 4, y + 4, fmt(t), "end", "tick"))
    body.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{bottom}" stroke="{AXIS}"/>')


def histogram(values: list[float], *, bins: int = 30, lo: float | None = None, hi: float | None = None,
              unit: str = "ms", marks: dict[str, float] | None = None, width: int = 360, height: int = 170,
              color: str = PALETTE[0], label: str = "histogram") -> str:
    """Counts of ``values`` in ``bins`` equal bins over [lo, hi] (default: their range).

    Values outside [lo, hi] are not drawn; the caller says how many. ``marks`` draws a dashed
    vertical line per name (``{"p50": 1.0}``).
    """
    lo = min(values) if lo is None else lo
    hi = max(values) if hi is None else hi
    if hi <= lo:  # every sample equal: one bar, centred, in a window of 1 % around it
        pad = abs(lo) * 0.01 or 1e-3
        lo, hi, bins = lo - pad, hi + pad, 1
    counts = [0] * bins
    for v in values:
        if lo <= v <= hi:
            counts[min(int((v - lo) / (hi - lo) * bins), bins - 1)] += 1
    left, right, top, bottom = 44, width - 10, 16, height - 32
    top_count = max(max(counts), 1)
    body: list[str] = []
    _y_axis(body, top, bottom, left, right, 0, top_count, fmt=lambda t: f"{t:g}")
    x_of = lambda v: left + (v - lo) / (hi - lo) * (right - left)
    bar_w = (right - left) / bins
    for i, n in enumerate(counts):
        if n:
            h = n / top_count * (bottom - top)
            a, b = lo + i * (hi - lo) / bins, lo + (i + 1) * (hi - lo) / bins
            body.append(f'<rect x="{left + i * bar_w + 0.5:.1f}" y="{bottom - h:.1f}" width="{max(bar_w - 1, 0.5):.1f}" '
                        f'height="{h:.1f}" fill="{color}"><title>{n} in {number(a)}–{number(b)} {escape(unit)}</title></rect>')
    for t in ticks(lo, hi, 5):
        body.append(_text(x_of(t), bottom + 14, tick(t), "middle", "tick"))
        body.append(f'<line x1="{x_of(t):.1f}" x2="{x_of(t):.1f}" y1="{bottom}" y2="{bottom + 3}" stroke="{AXIS}"/>')
    body.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="{AXIS}"/>')
    body.append(_text((left + right) / 2, height - 4, unit, "middle", "axis"))
    for i, (name, value) in enumerate((marks or {}).items()):
        if lo <= value <= hi:
            x = x_of(value)
            body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}" stroke="#222" stroke-dasharray="3 3"/>')
            near_right = x > right - 30  # keep the label inside the chart
            body.append(_text(x - 3 if near_right else x + 3, top - 4 + 10 * (i % 2), name,
                              "end" if near_right else "start", "mark"))
    return _svg(width, height, label, body)


def line_chart(series: dict[str, list[tuple[float, float]]], *, x_label: str, y_label: str,
               width: int = 720, plot_height: int = 240, label: str = "line chart") -> str:
    """One line with dots per named series of (x, y) points; y starts at 0 so slopes read honestly.

    The x ticks are the x values that occur, which suits small integer axes such as thread counts.
    """
    xs = sorted({x for points in series.values() for x, _ in points})
    hi = _round_up(max((y for points in series.values() for _, y in points), default=1.0))
    left, right, top = 56, width - 16, 12
    bottom = top + plot_height
    height = bottom + 44 + 18 * len(series)
    x_lo, x_hi = (xs[0], xs[-1]) if len(xs) > 1 else (xs[0] - 1, xs[0] + 1)
    x_of = lambda v: left + 12 + (v - x_lo) / (x_hi - x_lo) * (right - left - 24)
    y_of = lambda v: bottom - v / hi * (bottom - top)
    body: list[str] = []
    _y_axis(body, top, bottom, left, right, 0, hi)
    body.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="{AXIS}"/>')
    for x in xs:
        body.append(_text(x_of(x), bottom + 14, f"{x:g}", "middle", "tick"))
    body.append(_text((left + right) / 2, bottom + 30, x_label, "middle", "axis"))
    body.append(_text(14, (top + bottom) / 2, y_label, "middle", "axis",
                      f' transform="rotate(-90 14 {(top + bottom) / 2:.1f})"'))
    for i, (name, points) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        dash = "" if i < len(PALETTE) else ' stroke-dasharray="6 3"'
        points = sorted(points)
        path = " ".join(f"{x_of(x):.1f},{y_of(y):.1f}" for x, y in points)
        body.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        for x, y in points:
            body.append(f'<circle cx="{x_of(x):.1f}" cy="{y_of(y):.1f}" r="3.5" fill="{color}">'
                        f'<title>{escape(name)}: {x:g} → {number(y)}</title></circle>')
        ly = bottom + 48 + 18 * i
        body.append(f'<line x1="{left}" x2="{left + 22}" y1="{ly - 4}" y2="{ly - 4}" stroke="{color}" stroke-width="2"{dash}/>')
        body.append(_text(left + 28, ly, _short(name, 110), "start", "legend"))
    return _svg(width, height, label, body)


def bar_chart(bars: list[tuple[str, float, str]], *, unit: str, width: int = 720,
              label: str = "bar chart") -> str:
    """Horizontal bars from 0, one per (label, value, note); a note such as "estimated" draws the bar
    hollow and is printed after the value, so an estimate never looks like a measurement."""
    row, label_w = 24, 280
    left, right, top = label_w + 8, width - 130, 8
    bottom = top + row * len(bars)
    height = bottom + 34
    hi = _round_up(max((v for _, v, _ in bars), default=1.0))
    x_of = lambda v: left + v / hi * (right - left)
    body: list[str] = []
    for t in ticks(0, hi, 4):
        body.append(f'<line x1="{x_of(t):.1f}" x2="{x_of(t):.1f}" y1="{top}" y2="{bottom}" stroke="{GRID}"/>')
        body.append(_text(x_of(t), bottom + 14, tick(t), "middle", "tick"))
    for i, (name, value, note) in enumerate(bars):
        y = top + i * row
        fill = f'fill="{PALETTE[0]}"' if not note else f'fill="#fff" stroke="{PALETTE[0]}" stroke-dasharray="4 2"'
        body.append(_text(label_w, y + row / 2 + 4, _short(name, 44), "end", "legend", f' data-full="{escape(name)}"'))
        body.append(f'<rect x="{left}" y="{y + 4}" width="{max(x_of(value) - left, 1):.1f}" height="{row - 8}" {fill}>'
                    f'<title>{escape(name)}: {number(value)} {escape(unit)}{escape(" (" + note + ")") if note else ""}</title></rect>')
        text = f"{number(value)} {unit}" + (f" ({note})" if note else "")
        body.append(_text(x_of(value) + 6, y + row / 2 + 4, text, "start", "value"))
    body.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{bottom}" stroke="{AXIS}"/>')
    body.append(_text((left + right) / 2, height - 4, unit, "middle", "axis"))
    return _svg(width, height, label, body)


def scatter(points: list[tuple[float, float, str, str]], *, x_label: str, y_label: str, width: int = 720,
            plot_height: int = 280, label: str = "scatter") -> str:
    """Dots at (x, y), both axes from 0; ``points`` are (x, y, name, kind) where kind "front" draws a
    filled dot joined to the others of the front, "chosen" a larger ringed one, anything else a hollow dot."""
    x_hi = _round_up(max((x for x, _, _, _ in points), default=1.0))
    y_hi = _round_up(max((y for _, y, _, _ in points), default=1.0))
    left, right, top = 56, width - 16, 12
    bottom = top + plot_height
    height = bottom + 40
    x_of = lambda v: left + v / x_hi * (right - left)
    y_of = lambda v: bottom - v / y_hi * (bottom - top)
    body: list[str] = []
    _y_axis(body, top, bottom, left, right, 0, y_hi)
    body.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="{AXIS}"/>')
    for t in ticks(0, x_hi, 5):
        body.append(_text(x_of(t), bottom + 14, tick(t), "middle", "tick"))
    body.append(_text((left + right) / 2, bottom + 30, x_label, "middle", "axis"))
    body.append(_text(14, (top + bottom) / 2, y_label, "middle", "axis",
                      f' transform="rotate(-90 14 {(top + bottom) / 2:.1f})"'))
    front = sorted((x, y) for x, y, _, kind in points if kind in ("front", "chosen"))
    if len(front) > 1:
        path = " ".join(f"{x_of(x):.1f},{y_of(y):.1f}" for x, y in front)
        body.append(f'<polyline points="{path}" fill="none" stroke="{PALETTE[1]}" stroke-width="1.5" stroke-dasharray="4 3"/>')
    for x, y, name, kind in points:
        title = f"<title>{escape(name)}: {number(x)}, {number(y)}</title>"
        if kind == "chosen":
            body.append(f'<circle cx="{x_of(x):.1f}" cy="{y_of(y):.1f}" r="7" fill="none" stroke="{PALETTE[2]}" stroke-width="2.5">{title}</circle>')
        fill = PALETTE[1] if kind in ("front", "chosen") else "#fff"
        body.append(f'<circle cx="{x_of(x):.1f}" cy="{y_of(y):.1f}" r="4" fill="{fill}" stroke="{PALETTE[1]}">{title}</circle>')
    return _svg(width, height, label, body)
