"""Small inline-SVG plots for the monitoring pages (no script, no external asset).

Every function returns one ``<svg>`` element as text. Every label is escaped; every number is
formatted here, so nothing from the data can inject markup. Missing values (None, NaN) leave gaps.

The primitives (escaping, number formats, ticks, scales, axes, legend, colours) and the
performance chart come from the core's :mod:`ml_lifecycle.charts`, which the day reports use too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ml_lifecycle.charts import (
    BLUE,
    DARK,
    FONT,
    GREEN,
    GREY,
    GRID,
    MUTED,
    ORANGE,
    PURPLE,
    RED,
    domain,
    finite,
    fmt,
    linear,
    nice_ticks,
    performance_chart,
    svg_open,
    tick_text,
    x_axis_line,
    x_category_labels,
    x_title_text,
    y_grid,
    y_title_text,
)
from ml_lifecycle.charts import escape as _e
from ml_lifecycle.charts import legend as legend_row
from ml_lifecycle.charts import short as _short

__all__ = [
    "BLUE", "DARK", "FONT", "GREEN", "GREY", "GRID", "MUTED", "ORANGE", "PURPLE", "RED",
    "confusion_matrix", "finite", "fmt", "hbar_chart", "histogram", "interval_chart",
    "line_chart", "nice_ticks", "performance_chart",
]

def line_chart(
    series: list[dict[str, Any]],
    *,
    kind: str,
    label: str,
    width: int = 560,
    height: int = 220,
    x_labels: Sequence[str] | None = None,
    x_title: str = "",
    y_title: str = "",
    hlines: Sequence[dict[str, Any]] = (),
    vlines: Sequence[dict[str, Any]] = (),
    y_from_zero: bool = False,
    legend: bool = True,
) -> str:
    """Lines (and points) over a shared x axis.

    Args:
        series: ``{"name", "x": [...], "y": [...], "colour", "dash": bool, "points": bool,
            "point_colours": [...]}``; ``y`` may hold None (a gap).
        kind: ``data-plot`` attribute (lets tests and scripts find the plot).
        label: accessible name (``aria-label`` and ``<title>``).
        x_labels: names of the integer x positions 0..n-1 (e.g. days); None: numeric x.
        hlines: horizontal reference lines ``{"y", "label", "colour"}`` (thresholds).
        vlines: vertical markers ``{"x", "label", "colour"}`` (e.g. the early-stopping point).
        y_from_zero: include 0 in the y range.
    """
    left, right, top, bottom = 52, 14, 10 + (18 if legend else 0), 40
    inner_w, inner_h = width - left - right, height - top - bottom
    xs = [finite(x) for s in series for x in s.get("x", [])]
    xs = [x for x in xs if x is not None] + [finite(v.get("x")) or 0.0 for v in vlines]
    ys = [finite(y) for s in series for y in s.get("y", [])]
    ys = [y for y in ys if y is not None]
    extra = [h for h in (finite(line.get("y")) for line in hlines) if h is not None]
    x_low, x_high = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x_high == x_low:
        x_low, x_high = x_low - 0.5, x_high + 0.5
    y_low, y_high = domain(ys, include=[*extra, *([0.0] if y_from_zero else [])])
    if y_from_zero and y_low < 0 <= min(ys + extra + [0.0]):
        y_low = 0.0
    px = linear(x_low, x_high, left, inner_w)
    py = linear(y_low, y_high, top + inner_h, -inner_h)

    out = [svg_open(width, height, label, kind), y_grid(nice_ticks(y_low, y_high), py, left,
                                                        inner_w)]
    out.append(x_axis_line(left, top + inner_h, inner_w))
    if x_labels is not None:
        out.append(x_category_labels(x_labels, px, y=top + inner_h + 14, inner_w=inner_w,
                                     right_edge=width - right))
    else:
        for tick in nice_ticks(x_low, x_high, 6):
            out.append(f'<text x="{px(tick):.1f}" y="{top + inner_h + 14}" font-size="10" '
                       f'text-anchor="middle" fill="{MUTED}">{tick_text(tick)}</text>')
    if x_title:
        out.append(x_title_text(x_title, left + inner_w / 2, height - 6))
    if y_title:
        out.append(y_title_text(y_title, top + inner_h / 2))
    for line in hlines:
        value = finite(line.get("y"))
        if value is None:
            continue
        colour = line.get("colour", RED)
        y = py(value)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + inner_w}" y2="{y:.1f}" '
                   f'stroke="{_e(colour)}" stroke-dasharray="5 4" stroke-width="1.4" '
                   f'data-role="threshold"/><text x="{left + inner_w - 2}" y="{y - 3:.1f}" '
                   f'font-size="10" text-anchor="end" fill="{_e(colour)}">'
                   f'{_e(line.get("label", ""))}</text>')
    for line in vlines:
        value = finite(line.get("x"))
        if value is None:
            continue
        colour = line.get("colour", ORANGE)
        x = px(value)
        right_side = x > left + inner_w * 0.75
        text_x, anchor = (x - 3, "end") if right_side else (x + 3, "start")
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + inner_h}" '
                   f'stroke="{_e(colour)}" stroke-dasharray="3 3" stroke-width="1.4" '
                   f'data-role="marker"/><text x="{text_x:.1f}" '
                   f'y="{top + 10 + 12 * line.get("row", 0)}" font-size="10" '
                   f'text-anchor="{anchor}" fill="{_e(colour)}">{_e(line.get("label", ""))}</text>')
    for s in series:
        colour = _e(s.get("colour", BLUE))
        points = [(finite(x), finite(y)) for x, y in zip(s.get("x", []), s.get("y", []),
                                                        strict=False)]
        segment: list[str] = []
        segments: list[list[str]] = []
        for x, y in points:
            if x is None or y is None:
                if segment:
                    segments.append(segment)
                segment = []
                continue
            segment.append(f"{px(x):.1f},{py(y):.1f}")
        if segment:
            segments.append(segment)
        dash = ' stroke-dasharray="4 3"' if s.get("dash") else ""
        for seg in segments:
            if len(seg) > 1:
                out.append(f'<polyline points="{" ".join(seg)}" fill="none" stroke="{colour}" '
                           f'stroke-width="1.8"{dash}/>')
        if s.get("points", False):
            colours = s.get("point_colours") or []
            for i, (x, y) in enumerate(points):
                if x is None or y is None:
                    continue
                dot = _e(colours[i]) if i < len(colours) and colours[i] else colour
                out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.2" fill="{dot}"/>')
    if legend:
        entries = [{"label": s["name"], "colour": s.get("colour", BLUE)}
                   for s in series if s.get("name")]
        out.append(legend_row(entries, x=left)[0])
    out.append("</svg>")
    return "".join(out)


def hbar_chart(
    labels: Sequence[str],
    values: Sequence[Any],
    *,
    kind: str,
    label: str,
    errors: Sequence[Any] | None = None,
    width: int = 560,
    colours: Sequence[str] | None = None,
    value_digits: int = 3,
) -> str:
    """Horizontal bars from a zero axis (negative values go left), with optional +-error."""
    row, left, right, top = 20, 170, 70, 6
    height = top + row * len(labels) + 22
    inner = width - left - right
    nums = [finite(v) for v in values]
    errs = [finite(e) or 0.0 for e in (errors or [0.0] * len(labels))]
    lows = [min(0.0, (v or 0.0) - e) for v, e in zip(nums, errs, strict=False)]
    highs = [max(0.0, (v or 0.0) + e) for v, e in zip(nums, errs, strict=False)]
    low, high = (min(lows), max(highs)) if labels else (0.0, 1.0)
    if high == low:
        high = low + 1.0

    def px(x: float) -> float:
        return left + (x - low) / (high - low) * inner

    zero = px(0.0)
    out = [svg_open(width, height, label, kind)]
    for tick in nice_ticks(low, high, 5):
        x = px(tick)
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - 18}" '
                   f'stroke="{GRID}"/><text x="{x:.1f}" y="{height - 5}" font-size="10" '
                   f'text-anchor="middle" fill="{MUTED}">{tick_text(tick)}</text>')
    for i, name in enumerate(labels):
        y = top + i * row
        value = nums[i]
        colour = _e((colours[i] if colours and i < len(colours) else None) or BLUE)
        out.append(f'<text x="{left - 6}" y="{y + 14}" font-size="11" text-anchor="end" '
                   f'fill="{DARK}">{_e(_short(str(name), 26))}</text>')
        if value is None:
            out.append(f'<text x="{zero + 4:.1f}" y="{y + 14}" font-size="10" '
                       f'fill="{MUTED}">n/a</text>')
            continue
        x0, x1 = sorted((zero, px(value)))
        out.append(f'<rect x="{x0:.1f}" y="{y + 4}" width="{max(x1 - x0, 0.5):.1f}" '
                   f'height="{row - 8}" fill="{colour}" data-value="{_e(fmt(value, 4))}"/>')
        if errs[i]:
            ea, eb = px(value - errs[i]), px(value + errs[i])
            out.append(f'<line x1="{ea:.1f}" y1="{y + row / 2:.1f}" x2="{eb:.1f}" '
                       f'y2="{y + row / 2:.1f}" stroke="{DARK}" stroke-width="1"/>')
        out.append(f'<text x="{max(x1, px(value + errs[i])) + 4:.1f}" y="{y + 14}" '
                   f'font-size="10" fill="{MUTED}">{_e(fmt(value, value_digits))}</text>')
    out.append(f'<line x1="{zero:.1f}" y1="{top}" x2="{zero:.1f}" y2="{height - 18}" '
               f'stroke="{GREY}"/>')
    out.append("</svg>")
    return "".join(out)


def interval_chart(
    items: Sequence[dict[str, Any]],
    *,
    kind: str,
    label: str,
    y_title: str = "",
    width: int = 560,
    height: int = 200,
) -> str:
    """One point with its interval per item (``{"label", "value", "low", "high", "highlight"}``)."""
    left, right, top, bottom = 52, 14, 12, 34
    inner_w, inner_h = width - left - right, height - top - bottom
    values = [finite(v) for it in items for v in (it.get("value"), it.get("low"), it.get("high"))]
    y_low, y_high = domain([v for v in values if v is not None], pad=0.1)
    py = linear(y_low, y_high, top + inner_h, -inner_h)
    n = max(len(items), 1)
    step = inner_w / n
    out = [svg_open(width, height, label, kind), y_grid(nice_ticks(y_low, y_high), py, left,
                                                        inner_w)]
    if y_title:
        out.append(y_title_text(y_title, top + inner_h / 2))
    show_every = max(1, math.ceil(len(items) / 12))
    for i, item in enumerate(items):
        x = left + step * (i + 0.5)
        colour = GREEN if item.get("highlight") else BLUE
        value, low, high = (finite(item.get(k)) for k in ("value", "low", "high"))
        if low is not None and high is not None:
            out.append(f'<line x1="{x:.1f}" y1="{py(low):.1f}" x2="{x:.1f}" y2="{py(high):.1f}" '
                       f'stroke="{colour}" stroke-width="2"/>'
                       f'<line x1="{x - 5:.1f}" y1="{py(low):.1f}" x2="{x + 5:.1f}" '
                       f'y2="{py(low):.1f}" stroke="{colour}"/><line x1="{x - 5:.1f}" '
                       f'y1="{py(high):.1f}" x2="{x + 5:.1f}" y2="{py(high):.1f}" '
                       f'stroke="{colour}"/>')
        if value is not None:
            radius = 5 if item.get("highlight") else 4
            out.append(f'<circle cx="{x:.1f}" cy="{py(value):.1f}" r="{radius}" '
                       f'fill="{colour}"/>')
        if i % show_every == 0 or i == len(items) - 1:
            text = _e(item.get("label", ""))
            weight = ' font-weight="700"' if item.get("highlight") else ""
            out.append(f'<text x="{x:.1f}" y="{top + inner_h + 15}" font-size="11" '
                       f'text-anchor="middle" fill="{DARK}"{weight}>{text}</text>')
    out.append(x_axis_line(left, top + inner_h, inner_w))
    out.append("</svg>")
    return "".join(out)


def confusion_matrix(counts: dict[str, Any], *, negative: str, positive: str,
                     label: str = "confusion matrix on the test split") -> str:
    """The 2x2 matrix (rows: actual, columns: predicted), shaded by each cell's share."""
    cells = {k: int(finite(counts.get(k)) or 0) for k in ("tn", "fp", "fn", "tp")}
    total = sum(cells.values()) or 1
    size, left, top = 96, 120, 42
    width, height = left + 2 * size + 20, top + 2 * size + 14
    out = [svg_open(width, height, label, "confusion-matrix")]
    out.append(f'<text x="{left + size:.0f}" y="14" font-size="11" text-anchor="middle" '
               f'fill="{MUTED}">predicted</text>')
    for j, name in enumerate((negative, positive)):
        out.append(f'<text x="{left + size * (j + 0.5):.0f}" y="32" font-size="12" '
                   f'text-anchor="middle" fill="{DARK}">{_e(_short(name, 14))}</text>')
    layout = (("tn", 0, 0, "TN"), ("fp", 0, 1, "FP"), ("fn", 1, 0, "FN"), ("tp", 1, 1, "TP"))
    for i, name in enumerate((negative, positive)):
        out.append(f'<text x="{left - 8}" y="{top + size * (i + 0.5) + 4:.0f}" font-size="12" '
                   f'text-anchor="end" fill="{DARK}">actual {_e(_short(name, 12))}</text>')
    for key, i, j, short in layout:
        share = cells[key] / total
        correct = i == j
        base = (46, 125, 50) if correct else (198, 40, 40)
        alpha = 0.12 + 0.78 * min(1.0, share * 2)
        fill = f"rgba({base[0]},{base[1]},{base[2]},{alpha:.2f})"
        text = "#ffffff" if alpha > 0.55 else DARK
        x, y = left + j * size, top + i * size
        out.append(f'<rect x="{x}" y="{y}" width="{size - 2}" height="{size - 2}" '
                   f'fill="{fill}" data-cell="{key}"/>'
                   f'<text x="{x + size / 2 - 1:.0f}" y="{y + size / 2 - 4:.0f}" font-size="18" '
                   f'font-weight="700" text-anchor="middle" fill="{text}">'
                   f'{cells[key]:,}</text><text x="{x + size / 2 - 1:.0f}" '
                   f'y="{y + size / 2 + 14:.0f}" font-size="11" text-anchor="middle" '
                   f'fill="{text}">{short} '
                   f'{100 * share:.1f}%</text>')
    out.append("</svg>")
    return "".join(out)


def histogram(counts: Sequence[Any], edges: Sequence[Any], *, kind: str, label: str,
              x_title: str = "", width: int = 560, height: int = 200,
              marker: float | None = 0.0) -> str:
    """Bars of a stored histogram (``len(edges) == len(counts) + 1``), with a marker at 0."""
    nums = [finite(c) or 0.0 for c in counts]
    cuts = [finite(e) for e in edges]
    if not nums or len(cuts) != len(nums) + 1 or any(c is None for c in cuts):
        return '<p class="muted">no histogram stored</p>'
    bounds = [c for c in cuts if c is not None]
    left, right, top, bottom = 52, 14, 10, 38
    inner_w, inner_h = width - left - right, height - top - bottom
    x_low, x_high = bounds[0], bounds[-1]
    if x_high == x_low:
        x_high = x_low + 1.0
    peak = max(nums) or 1.0

    px = linear(x_low, x_high, left, inner_w)
    py = linear(0.0, peak, top + inner_h, -inner_h)
    out = [svg_open(width, height, label, kind), y_grid(nice_ticks(0.0, peak), py, left,
                                                        inner_w)]
    for count, a, b in zip(nums, bounds[:-1], bounds[1:], strict=False):
        h = count / peak * inner_h
        out.append(f'<rect x="{px(a) + 0.5:.1f}" y="{top + inner_h - h:.1f}" '
                   f'width="{max(px(b) - px(a) - 1, 0.5):.1f}" height="{h:.1f}" fill="{BLUE}"/>')
    for tick in nice_ticks(x_low, x_high, 6):
        out.append(f'<text x="{px(tick):.1f}" y="{top + inner_h + 14}" font-size="10" '
                   f'text-anchor="middle" fill="{MUTED}">{tick_text(tick)}</text>')
    if marker is not None and x_low <= marker <= x_high:
        x = px(marker)
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + inner_h}" '
                   f'stroke="{ORANGE}" stroke-dasharray="3 3" data-role="marker"/>')
    if x_title:
        out.append(x_title_text(x_title, left + inner_w / 2, height - 5))
    out.append(x_axis_line(left, top + inner_h, inner_w))
    out.append("</svg>")
    return "".join(out)
