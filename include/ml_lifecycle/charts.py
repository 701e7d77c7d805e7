"""Inline-SVG chart primitives shared by the day report and the monitoring UI, and the
performance-over-time chart both of them show.

Every function returns markup as text: no script, no external asset. Every label is escaped
(:func:`escape`) and every number is formatted here (:func:`fmt`, :func:`tick_text`), so nothing
from the data can inject markup. Missing values (None, NaN, infinities) leave gaps.

The UI's plots (``plugins/ml_monitoring/svg.py``) are built from these primitives too; the core
never imports the plugin. The module imports only the standard library.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

BLUE = "#1f6feb"
RED = "#c62828"
GREEN = "#2e7d32"
ORANGE = "#e65100"
PURPLE = "#8250df"
GREY = "#9aa5b1"
DARK = "#1f2328"
MUTED = "#57606a"
GRID = "#e5e7eb"

FONT = 'font-family="system-ui,-apple-system,Segoe UI,Roboto,sans-serif"'

Scale = Callable[[float], float]


# --------------------------------------------------------------------------- text and numbers


def escape(value: Any) -> str:
    """``value`` as HTML/SVG text, escaped (quotes too)."""
    return html.escape(str(value), quote=True)


def finite(value: Any) -> float | None:
    """``value`` as a float, or None when missing, not a number, NaN or infinite."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def fmt(value: Any, digits: int = 3) -> str:
    """A compact number: ``0.485``, ``12.3``, ``1,234``, ``2.5e-05``; ``–`` when missing."""
    number = finite(value)
    if number is None:
        return "\u2013"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if number == 0:
        return "0"
    size = abs(number)
    if size < 10 ** -digits or size >= 1e6:
        return f"{number:.{max(digits - 1, 1)}e}"
    if size >= 100:
        return f"{number:,.0f}" if size >= 1000 else f"{number:.1f}"
    return f"{number:.{digits}f}" if size < 1 else f"{number:.{digits}g}"


def tick_text(value: float) -> str:
    """An axis tick label (4 significant digits, escaped)."""
    return escape(f"{value:.4g}")


def short(text: str, limit: int = 22) -> str:
    """``text`` cut to ``limit`` characters (with an ellipsis)."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def short_days(days: Sequence[str]) -> list[str]:
    """``YYYY-MM-DD`` labels without the year when every day is in the same year."""
    years = {d[:4] for d in days}
    if len(years) == 1 and all(len(d) == 10 and d[4] == "-" for d in days):
        return [d[5:] for d in days]
    return list(days)


# --------------------------------------------------------------------------- scales and axes


def nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    """About ``count`` round tick values covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high <= low:
        return [low]
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = magnitude
    for multiple in (1, 2, 2.5, 5, 10):
        step = multiple * magnitude
        if (high - low) / step <= count:
            break
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9 and len(ticks) < 50:
        ticks.append(0.0 if abs(value) < step * 1e-9 else value)
        value += step
    return ticks


def domain(values: Sequence[float], pad: float = 0.06,
           include: Sequence[float | None] = ()) -> tuple[float, float]:
    """The [low, high] range of ``values`` and ``include``, padded; (0, 1) when empty."""
    points = [v for v in (*values, *include) if v is not None]
    if not points:
        return 0.0, 1.0
    low, high = min(points), max(points)
    if high == low:
        spread = abs(high) * 0.1 or 1.0
        return low - spread, high + spread
    margin = (high - low) * pad
    return low - margin, high + margin


def linear(low: float, high: float, start: float, length: float) -> Scale:
    """The map of [low, high] onto [start, start + length] (a negative length flips it)."""
    span = high - low

    def scale(value: float) -> float:
        return start + (value - low) / span * length

    return scale


def svg_open(width: int, height: int, label: str, kind: str, *, xmlns: bool = True) -> str:
    """The opening ``<svg>`` tag with its accessible name and ``data-plot`` kind.

    ``xmlns=False`` leaves out the namespace (not needed inline in HTML): a page that holds no
    ``http`` text at all is easy to check for external references.
    """
    namespace = 'xmlns="http://www.w3.org/2000/svg" ' if xmlns else ""
    return (f'<svg {namespace}width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" '
            f'data-plot="{escape(kind)}" {FONT}><title>{escape(label)}</title>')


def y_grid(ticks: Sequence[float], py: Scale, left: float, inner_w: float) -> str:
    """Horizontal grid lines with their tick labels left of the plot area."""
    out = []
    for tick in ticks:
        y = py(tick)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + inner_w}" y2="{y:.1f}" '
                   f'stroke="{GRID}"/><text x="{left - 4}" y="{y + 3.5:.1f}" font-size="10" '
                   f'text-anchor="end" fill="{MUTED}">{tick_text(tick)}</text>')
    return "".join(out)


def x_axis_line(left: float, y: float, inner_w: float) -> str:
    """The base line of the plot area."""
    return f'<line x1="{left}" y1="{y}" x2="{left + inner_w}" y2="{y}" stroke="{GREY}"/>'


def label_picks(n: int, longest: int, inner_w: float, *, from_end: bool = False) -> list[int]:
    """Which of ``n`` category labels (``longest`` characters at most) fit along the x axis.

    Evenly spaced; by default from the first, always with the last; ``from_end``: counted back
    from the last (the newest day), so the spacing stays even at the right end too.
    """
    room = max(2, int(inner_w // (6.2 * longest + 10)))
    step = max(1, math.ceil(n / room))
    if from_end:
        return sorted(range(n - 1, -1, -step))
    picks = list(range(0, n, step)) if n else []
    if picks and picks[-1] != n - 1:
        if (n - 1 - picks[-1]) < step / 2 and len(picks) > 1:
            picks[-1] = n - 1
        else:
            picks.append(n - 1)
    return picks


def x_category_labels(labels: Sequence[Any], px: Scale, *, y: float, inner_w: float,
                      right_edge: float, from_end: bool = False) -> str:
    """The labels of integer x positions 0..n-1 that fit (see :func:`label_picks`),
    right-aligned near the right edge."""
    longest = max((len(str(t)) for t in labels), default=1)
    out = []
    for i in label_picks(len(labels), longest, inner_w, from_end=from_end):
        x = px(i)
        anchor = "end" if x > right_edge - 3.2 * len(str(labels[i])) else "middle"
        out.append(f'<text x="{x:.1f}" y="{y}" font-size="10" text-anchor="{anchor}" '
                   f'fill="{MUTED}">{escape(labels[i])}</text>')
    return "".join(out)


def x_title_text(text: str, x: float, y: float) -> str:
    """The title under the x axis."""
    return (f'<text x="{x:.1f}" y="{y}" font-size="11" text-anchor="middle" '
            f'fill="{MUTED}">{escape(text)}</text>')


def y_title_text(text: str, centre_y: float) -> str:
    """The title left of the y axis, rotated."""
    return (f'<text x="12" y="{centre_y:.1f}" font-size="11" text-anchor="middle" '
            f'fill="{MUTED}" transform="rotate(-90 12 {centre_y:.1f})">{escape(text)}</text>')


def legend(entries: Sequence[Mapping[str, Any]], *, x: float, y: float = 6,
           max_x: float | None = None, row_height: int = 18) -> tuple[str, int]:
    """Legend entries in a row (wrapping at ``max_x``; None: never).

    Args:
        entries: ``{"label", "colour", "swatch"}``; ``swatch`` is ``bar`` (default: a short
            thick stroke), ``line``, ``dash``, ``band`` (a light box) or ``dot``.
        x: where the first entry starts; y: the top of the first row.

    Returns:
        ``(svg, rows)``: the markup and how many rows it takes (0 without entries).
    """
    out = []
    start, rows = x, 1 if entries else 0
    for entry in entries:
        name = short(str(entry.get("label", "")), 40)
        advance = 28 + 6.5 * len(name)
        if max_x is not None and x > start and x + advance - 12 > max_x:
            x, y, rows = start, y + row_height, rows + 1
        colour = escape(entry.get("colour", BLUE))
        swatch = entry.get("swatch", "bar")
        if swatch == "line" or swatch == "dash":
            dash = ' stroke-dasharray="4 3"' if swatch == "dash" else ""
            out.append(f'<line x1="{x}" y1="{y + 1.5}" x2="{x + 12}" y2="{y + 1.5}" '
                       f'stroke="{colour}" stroke-width="2"{dash}/>')
        elif swatch == "band":
            out.append(f'<rect x="{x}" y="{y - 2}" width="12" height="8" fill="{colour}" '
                       f'fill-opacity="0.2" stroke="{colour}" stroke-opacity="0.4"/>')
        elif swatch == "dot":
            out.append(f'<circle cx="{x + 6}" cy="{y + 1.5}" r="4" fill="{colour}"/>')
        else:
            out.append(f'<rect x="{x}" y="{y}" width="12" height="3" fill="{colour}"/>')
        out.append(f'<text x="{x + 16}" y="{y + 5}" font-size="11" fill="{DARK}">'
                   f"{escape(name)}</text>")
        x += advance
    return "".join(out), rows


# --------------------------------------------------------------------------- performance


def _hib(day: Mapping[str, Any], default: bool) -> bool:
    value = day.get("higher_is_better")
    return value if isinstance(value, bool) else default


def _level(day: Mapping[str, Any]) -> float | None:
    """The reference level of a day: the estimator on the test split, else the realized test
    value (results older than the estimate)."""
    value = finite(day.get("estimated_reference"))
    return value if value is not None else finite(day.get("realized_reference"))


def _boundary(day: Mapping[str, Any], default_hib: bool) -> float | None:
    level, tolerance = _level(day), finite(day.get("tolerance"))
    if level is None or tolerance is None:
        return None
    return level - tolerance if _hib(day, default_hib) else level + tolerance


def _runs(values: Sequence[Any]) -> list[list[int]]:
    """Indices of consecutive non-None values."""
    runs: list[list[int]] = []
    current: list[int] = []
    for i, value in enumerate(values):
        if value is None:
            if current:
                runs.append(current)
            current = []
        else:
            current.append(i)
    if current:
        runs.append(current)
    return runs


def _steps(levels: Sequence[float | None], px: Scale, py: Scale, left: float, right: float, *,
           colour: str, role: str, dash: str = "") -> str:
    """Horizontal segments, one per run of equal levels across its days' columns (one straight
    line when the level never changes, e.g. no retrain in the window)."""
    out = []
    i = 0
    while i < len(levels):
        level = levels[i]
        if level is None:
            i += 1
            continue
        j = i
        while j + 1 < len(levels) and levels[j + 1] == level:
            j += 1
        x0, x1 = max(left, px(i - 0.5)), min(right, px(j + 0.5))
        y = py(level)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<line x1="{x0:.1f}" y1="{y:.1f}" x2="{x1:.1f}" y2="{y:.1f}" '
                   f'stroke="{colour}" stroke-width="1.5"{dash_attr} data-role="{role}"/>')
        i = j + 1
    return "".join(out)


def performance_chart(
    days: Sequence[Mapping[str, Any]],
    *,
    metric: str | None = None,
    higher_is_better: bool = True,
    width: int = 760,
    height: int = 260,
    kind: str = "performance",
    xmlns: bool = True,
) -> str:
    """The model's metric per checked day: estimated (with its interval) and realized, against
    the reference level and the tolerance boundary; days whose estimate is flagged are marked.

    Args:
        days: summaries of checked days, oldest first (:func:`~.drift.store.summarize`):
            ``day``, ``estimated_metric``/``estimated_low``/``estimated_high`` (the label-free
            estimate and its interval), ``estimated_flagged``, ``realized_metric`` (on the
            labelled trailing window), ``concept_drift`` (its status), ``estimated_reference``
            (else ``realized_reference``) and ``tolerance`` (metric units), ``watched_metric``,
            ``higher_is_better``. Missing or None values are skipped.
        metric: the metric's name (default: the days' ``watched_metric``).
        higher_is_better: the direction when the days do not say (the tolerance boundary is
            ``reference - tolerance``, else ``reference + tolerance``).
        kind: the ``data-plot`` attribute.
        xmlns: write the SVG namespace (see :func:`svg_open`).

    Returns:
        One ``<svg>`` element (with a "nothing to plot" note when no day has a value).
    """
    days = [d for d in days if isinstance(d, Mapping)]
    if metric is None:
        metric = next((str(d["watched_metric"]) for d in reversed(days)
                       if d.get("watched_metric")), None) or next(
            (str(d["performance_metric"]) for d in reversed(days)
             if d.get("performance_metric")), "metric")
    n = len(days)
    names = [str(d.get("day", "")) for d in days]
    labels = short_days(names)
    x_title = f"day ({names[0][:4]})" if labels != names else "day"
    estimate = [finite(d.get("estimated_metric")) for d in days]
    low = [finite(d.get("estimated_low")) for d in days]
    high = [finite(d.get("estimated_high")) for d in days]
    band = [(lo, hi) if lo is not None and hi is not None else None
            for lo, hi in zip(low, high, strict=True)]
    realized = [finite(d.get("realized_metric")) for d in days]
    flagged = [d.get("estimated_flagged") is True for d in days]
    realized_flagged = [d.get("concept_drift") == "drift" for d in days]
    levels = [_level(d) for d in days]
    bounds = [_boundary(d, higher_is_better) for d in days]

    entries: list[dict[str, Any]] = []
    if any(v is not None for v in estimate):
        entries.append({"label": f"estimated {metric}", "colour": BLUE, "swatch": "line"})
    if any(b is not None for b in band):
        entries.append({"label": "estimate interval", "colour": BLUE, "swatch": "band"})
    if any(v is not None for v in realized):
        entries.append({"label": f"realized {metric} (labels)", "colour": PURPLE,
                        "swatch": "dash"})
    last_level = next((v for v in reversed(levels) if v is not None), None)
    last_bound = next((v for v in reversed(bounds) if v is not None), None)
    if last_level is not None:
        entries.append({"label": f"reference {fmt(last_level)}", "colour": GREEN,
                        "swatch": "line"})
    if last_bound is not None:
        entries.append({"label": f"tolerance boundary {fmt(last_bound)}", "colour": RED,
                        "swatch": "dash"})
    if any(flagged):
        entries.append({"label": "flagged", "colour": RED, "swatch": "dot"})

    left, right, bottom = 52, 20, 40
    legend_svg, rows = legend(entries, x=left, max_x=width - right)
    top = 10 + 18 * max(rows, 1)
    inner_w, inner_h = width - left - right, height - top - bottom
    values = [v for v in (*estimate, *low, *high, *realized) if v is not None]
    y_low, y_high = domain(values, include=[*levels, *bounds])
    px = linear(-0.5, max(n, 1) - 0.5, left, inner_w)
    py = linear(y_low, y_high, top + inner_h, -inner_h)
    x_right = left + inner_w

    out = [svg_open(width, height, f"{metric} per checked day: estimated with its interval, "
                    "realized on delayed labels, reference and tolerance", kind, xmlns=xmlns)]
    out.append(y_grid(nice_ticks(y_low, y_high), py, left, inner_w))
    column = inner_w / max(n, 1)
    for i, mark in enumerate(flagged):
        if mark:
            out.append(f'<rect x="{px(i) - column / 2:.1f}" y="{top}" width="{column:.1f}" '
                       f'height="{inner_h}" fill="{RED}" fill-opacity="0.08" '
                       'data-role="flagged-day"/>')
    out.append(x_axis_line(left, top + inner_h, inner_w))
    out.append(x_category_labels(labels, px, y=top + inner_h + 14, inner_w=inner_w,
                                 right_edge=width, from_end=True))
    out.append(x_title_text(x_title, left + inner_w / 2, height - 6))
    out.append(y_title_text(metric, top + inner_h / 2))
    for run in _runs(band):
        if len(run) == 1:
            i = run[0]
            lo, hi = band[i] or (0.0, 0.0)
            x = px(i)
            out.append(f'<path d="M{x - 4:.1f},{py(hi):.1f}H{x + 4:.1f}M{x:.1f},{py(hi):.1f}'
                       f'V{py(lo):.1f}M{x - 4:.1f},{py(lo):.1f}H{x + 4:.1f}" stroke="{BLUE}" '
                       'stroke-opacity="0.5" stroke-width="1.5" fill="none" '
                       'data-role="interval"/>')
            continue
        upper = [f"{px(i):.1f},{py((band[i] or (0.0, 0.0))[1]):.1f}" for i in run]
        lower = [f"{px(i):.1f},{py((band[i] or (0.0, 0.0))[0]):.1f}" for i in reversed(run)]
        out.append(f'<polygon points="{" ".join(upper + lower)}" fill="{BLUE}" '
                   f'fill-opacity="0.15" stroke="none" data-role="interval"/>')
    out.append(_steps(levels, px, py, left, x_right, colour=GREEN, role="reference"))
    out.append(_steps(bounds, px, py, left, x_right, colour=RED, role="tolerance", dash="5 4"))
    for run in _runs(estimate):
        if len(run) > 1:
            points = " ".join(f"{px(i):.1f},{py(estimate[i] or 0.0):.1f}" for i in run)
            out.append(f'<polyline points="{points}" fill="none" stroke="{BLUE}" '
                       'stroke-width="1.8" data-role="estimated"/>')
    for run in _runs(realized):
        if len(run) > 1:
            points = " ".join(f"{px(i):.1f},{py(realized[i] or 0.0):.1f}" for i in run)
            out.append(f'<polyline points="{points}" fill="none" stroke="{PURPLE}" '
                       'stroke-width="1.6" stroke-dasharray="4 3" data-role="realized"/>')
    radius = 3.2 if n <= 40 else 2.4
    for i, name in enumerate(names):
        value = estimate[i]
        if value is not None:
            interval = (f" [{fmt(low[i])}, {fmt(high[i])}]"
                        if low[i] is not None and high[i] is not None else "")
            tip = f"{name}: estimated {metric} {fmt(value)}{interval}"
            if flagged[i]:
                tip += " \u2013 flagged"
            colour, r = (RED, radius + 1.3) if flagged[i] else (BLUE, radius)
            role = "flagged" if flagged[i] else "estimated-point"
            out.append(f'<circle cx="{px(i):.1f}" cy="{py(value):.1f}" r="{r:.1f}" '
                       f'fill="{colour}" data-role="{role}"><title>{escape(tip)}</title>'
                       "</circle>")
        actual = realized[i]
        if actual is not None:
            tip = f"{name}: realized {metric} {fmt(actual)}"
            if realized_flagged[i]:
                tip += " \u2013 concept drift"
            stroke = RED if realized_flagged[i] else PURPLE
            out.append(f'<circle cx="{px(i):.1f}" cy="{py(actual):.1f}" r="{radius:.1f}" '
                       f'fill="#ffffff" stroke="{stroke}" stroke-width="1.8" '
                       f'data-role="realized-point"><title>{escape(tip)}</title></circle>')
    if not values:
        out.append(f'<text x="{left + inner_w / 2:.1f}" y="{top + inner_h / 2:.1f}" '
                   f'font-size="12" text-anchor="middle" fill="{MUTED}" data-state="empty">'
                   f"no estimated or realized {escape(metric)} yet</text>")
    out.append(legend_svg)
    out.append("</svg>")
    return "".join(out)


__all__ = [
    "BLUE",
    "DARK",
    "FONT",
    "GREEN",
    "GREY",
    "GRID",
    "MUTED",
    "ORANGE",
    "PURPLE",
    "RED",
    "domain",
    "escape",
    "finite",
    "fmt",
    "label_picks",
    "legend",
    "linear",
    "nice_ticks",
    "performance_chart",
    "short",
    "short_days",
    "svg_open",
    "tick_text",
    "x_axis_line",
    "x_category_labels",
    "x_title_text",
    "y_grid",
    "y_title_text",
]
