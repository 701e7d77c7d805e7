"""Every inline-SVG chart of the package, in one place: the day report, the backtest report and
the monitoring UI all draw through this module.

Every function returns markup as text: no script, no external asset. Every label is escaped
(:func:`escape`) and every number is formatted here (:func:`fmt`, :func:`tick_text`), so nothing
from the data can inject markup. Missing values (None, NaN, infinities) leave gaps.

Primitives (escaping, number formats, ticks, scales, axes, legend, colours), then the charts:
:func:`performance_chart` (estimated and realized metric over time, with the reference and the
tolerance), :func:`line_chart` (lines over a shared x axis, with thresholds, markers and
per-point marks), :func:`hbar_chart`, :func:`interval_chart`, :func:`confusion_matrix`,
:func:`histogram`, and the reference-vs-current :func:`shares_histogram` and
:func:`shares_bars` of the drift report. The core never imports the plugin, which only presents
what these functions draw. The module imports only the standard library.
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
    v = _performance_series(days, higher_is_better)
    n, names = len(days), v["names"]
    labels = short_days(names)
    left, right, bottom = 52, 20, 40
    legend_svg, rows = legend(_performance_legend(v, metric), x=left, max_x=width - right)
    top = 10 + 18 * max(rows, 1)
    inner_w, inner_h = width - left - right, height - top - bottom
    values = [x for x in (*v["estimate"], *v["low"], *v["high"], *v["realized"])
              if x is not None]
    y_low, y_high = domain(values, include=[*v["levels"], *v["bounds"]])
    px = linear(-0.5, max(n, 1) - 0.5, left, inner_w)
    py = linear(y_low, y_high, top + inner_h, -inner_h)
    out = [svg_open(width, height, f"{metric} per checked day: estimated with its interval, "
                    "realized on delayed labels, reference and tolerance", kind, xmlns=xmlns),
           y_grid(nice_ticks(y_low, y_high), py, left, inner_w)]
    column = inner_w / max(n, 1)
    out += [f'<rect x="{px(i) - column / 2:.1f}" y="{top}" width="{column:.1f}" '
            f'height="{inner_h}" fill="{RED}" fill-opacity="0.08" data-role="flagged-day"/>'
            for i, mark in enumerate(v["flagged"]) if mark]
    out += [x_axis_line(left, top + inner_h, inner_w),
            x_category_labels(labels, px, y=top + inner_h + 14, inner_w=inner_w,
                              right_edge=width, from_end=True),
            x_title_text(f"day ({names[0][:4]})" if labels != names else "day",
                         left + inner_w / 2, height - 6),
            y_title_text(metric, top + inner_h / 2)]
    out += _interval_band(v["band"], px, py)
    out.append(_steps(v["levels"], px, py, left, left + inner_w, colour=GREEN, role="reference"))
    out.append(_steps(v["bounds"], px, py, left, left + inner_w, colour=RED, role="tolerance",
                      dash="5 4"))
    out += _runs_polylines(v["estimate"], px, py, f'stroke="{BLUE}" stroke-width="1.8" '
                                                  'data-role="estimated"')
    out += _runs_polylines(v["realized"], px, py, f'stroke="{PURPLE}" stroke-width="1.6" '
                                                  'stroke-dasharray="4 3" data-role="realized"')
    out += _performance_points(v, metric, px, py, radius=3.2 if n <= 40 else 2.4)
    if not values:
        out.append(f'<text x="{left + inner_w / 2:.1f}" y="{top + inner_h / 2:.1f}" '
                   f'font-size="12" text-anchor="middle" fill="{MUTED}" data-state="empty">'
                   f"no estimated or realized {escape(metric)} yet</text>")
    out += [legend_svg, "</svg>"]
    return "".join(out)


def _performance_series(days: Sequence[Mapping[str, Any]],
                        higher_is_better: bool) -> dict[str, list[Any]]:
    """The per-day values :func:`performance_chart` draws (None where a day has none)."""
    low = [finite(d.get("estimated_low")) for d in days]
    high = [finite(d.get("estimated_high")) for d in days]
    return {
        "names": [str(d.get("day", "")) for d in days],
        "estimate": [finite(d.get("estimated_metric")) for d in days],
        "low": low,
        "high": high,
        "band": [(lo, hi) if lo is not None and hi is not None else None
                 for lo, hi in zip(low, high, strict=True)],
        "realized": [finite(d.get("realized_metric")) for d in days],
        "flagged": [d.get("estimated_flagged") is True for d in days],
        "realized_flagged": [d.get("concept_drift") == "drift" for d in days],
        "levels": [_level(d) for d in days],
        "bounds": [_boundary(d, higher_is_better) for d in days],
    }


def _performance_legend(v: Mapping[str, list[Any]], metric: str) -> list[dict[str, Any]]:
    """Legend entries for what the chart actually shows."""
    entries: list[dict[str, Any]] = []
    if any(x is not None for x in v["estimate"]):
        entries.append({"label": f"estimated {metric}", "colour": BLUE, "swatch": "line"})
    if any(b is not None for b in v["band"]):
        entries.append({"label": "estimate interval", "colour": BLUE, "swatch": "band"})
    if any(x is not None for x in v["realized"]):
        entries.append({"label": f"realized {metric} (labels)", "colour": PURPLE,
                        "swatch": "dash"})
    last_level = next((x for x in reversed(v["levels"]) if x is not None), None)
    last_bound = next((x for x in reversed(v["bounds"]) if x is not None), None)
    if last_level is not None:
        entries.append({"label": f"reference {fmt(last_level)}", "colour": GREEN,
                        "swatch": "line"})
    if last_bound is not None:
        entries.append({"label": f"tolerance boundary {fmt(last_bound)}", "colour": RED,
                        "swatch": "dash"})
    if any(v["flagged"]):
        entries.append({"label": "flagged", "colour": RED, "swatch": "dot"})
    return entries


def _interval_band(band: Sequence[tuple[float, float] | None], px: Scale,
                   py: Scale) -> list[str]:
    """The estimate's interval: a shaded band over each run of days (an error bar for a lone
    day)."""
    out = []
    for run in _runs(band):
        if len(run) == 1:
            lo, hi = band[run[0]] or (0.0, 0.0)
            x = px(run[0])
            out.append(f'<path d="M{x - 4:.1f},{py(hi):.1f}H{x + 4:.1f}M{x:.1f},{py(hi):.1f}'
                       f'V{py(lo):.1f}M{x - 4:.1f},{py(lo):.1f}H{x + 4:.1f}" stroke="{BLUE}" '
                       'stroke-opacity="0.5" stroke-width="1.5" fill="none" '
                       'data-role="interval"/>')
            continue
        upper = [f"{px(i):.1f},{py((band[i] or (0.0, 0.0))[1]):.1f}" for i in run]
        lower = [f"{px(i):.1f},{py((band[i] or (0.0, 0.0))[0]):.1f}" for i in reversed(run)]
        out.append(f'<polygon points="{" ".join(upper + lower)}" fill="{BLUE}" '
                   f'fill-opacity="0.15" stroke="none" data-role="interval"/>')
    return out


def _runs_polylines(values: Sequence[float | None], px: Scale, py: Scale,
                    attributes: str) -> list[str]:
    """One polyline per run of consecutive days with a value."""
    return [f'<polyline points="{" ".join(f"{px(i):.1f},{py(values[i] or 0.0):.1f}" for i in run)}"'
            f' fill="none" {attributes}/>' for run in _runs(values) if len(run) > 1]


def _performance_points(v: Mapping[str, list[Any]], metric: str, px: Scale, py: Scale, *,
                        radius: float) -> list[str]:
    """A point per day and value, with its tooltip (flagged estimates red and larger, realized
    points outlined, red under concept drift)."""
    out = []
    for i, name in enumerate(v["names"]):
        value, flagged = v["estimate"][i], v["flagged"][i]
        if value is not None:
            low, high = v["low"][i], v["high"][i]
            interval = f" [{fmt(low)}, {fmt(high)}]" if low is not None and high is not None \
                else ""
            tip = f"{name}: estimated {metric} {fmt(value)}{interval}" + (
                " \u2013 flagged" if flagged else "")
            colour, r = (RED, radius + 1.3) if flagged else (BLUE, radius)
            role = "flagged" if flagged else "estimated-point"
            out.append(f'<circle cx="{px(i):.1f}" cy="{py(value):.1f}" r="{r:.1f}" '
                       f'fill="{colour}" data-role="{role}"><title>{escape(tip)}</title>'
                       "</circle>")
        actual = v["realized"][i]
        if actual is not None:
            drift = v["realized_flagged"][i]
            tip = f"{name}: realized {metric} {fmt(actual)}" + (
                " \u2013 concept drift" if drift else "")
            out.append(f'<circle cx="{px(i):.1f}" cy="{py(actual):.1f}" r="{radius:.1f}" '
                       f'fill="#ffffff" stroke="{RED if drift else PURPLE}" stroke-width="1.8" '
                       f'data-role="realized-point"><title>{escape(tip)}</title></circle>')
    return out


# --------------------------------------------------------------------------- general charts


PALETTE = (BLUE, RED, GREEN, PURPLE, ORANGE, "#8c564b", "#e377c2", GREY, "#17becf", "#bcbd22")


def _hline(line: Mapping[str, Any], py: Scale, left: float, inner_w: float) -> str:
    value = finite(line.get("y"))
    if value is None:
        return ""
    colour, y = escape(line.get("colour", RED)), py(value)
    return (f'<line x1="{left}" y1="{y:.1f}" x2="{left + inner_w}" y2="{y:.1f}" '
            f'stroke="{colour}" stroke-dasharray="5 4" stroke-width="1.4" '
            f'data-role="threshold"/><text x="{left + inner_w - 2}" y="{y - 3:.1f}" '
            f'font-size="10" text-anchor="end" fill="{colour}">'
            f'{escape(line.get("label", ""))}</text>')


def _vline(line: Mapping[str, Any], px: Scale, left: float, top: float, inner_w: float,
           inner_h: float) -> str:
    value = finite(line.get("x"))
    if value is None:
        return ""
    colour, x = escape(line.get("colour", ORANGE)), px(value)
    text_x, anchor = (x - 3, "end") if x > left + inner_w * 0.75 else (x + 3, "start")
    return (f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + inner_h}" '
            f'stroke="{colour}" stroke-dasharray="3 3" stroke-width="1.4" '
            f'data-role="marker"/><text x="{text_x:.1f}" '
            f'y="{top + 10 + 12 * line.get("row", 0)}" font-size="10" '
            f'text-anchor="{anchor}" fill="{colour}">{escape(line.get("label", ""))}</text>')


def _series(s: Mapping[str, Any], px: Scale, py: Scale, floor_y: float) -> list[str]:
    """One series: its polyline segments (gaps at None), its points and its marks."""
    colour = escape(s.get("colour", BLUE))
    points = [(finite(x), finite(y)) for x, y in zip(s.get("x", []), s.get("y", []),
                                                    strict=False)]
    out, segment = [], []
    dash = ' stroke-dasharray="4 3"' if s.get("dash") else ""
    for x, y in [*points, (None, None)]:
        if x is None or y is None:
            if len(segment) > 1:
                out.append(f'<polyline points="{" ".join(segment)}" fill="none" '
                           f'stroke="{colour}" stroke-width="1.8"{dash}/>')
            segment = []
            continue
        segment.append(f"{px(x):.1f},{py(y):.1f}")
    if s.get("points", False):
        colours = s.get("point_colours") or []
        for i, (x, y) in enumerate(points):
            if x is not None and y is not None:
                dot = escape(colours[i]) if i < len(colours) and colours[i] else colour
                out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.2" fill="{dot}"/>')
    for mark in s.get("marks", []):  # {"i", "shape": circle (filled) | square (open), "title"}
        i = int(mark["i"])
        if not 0 <= i < len(points) or points[i][0] is None:
            continue
        x, y = px(points[i][0]), py(points[i][1]) if points[i][1] is not None else floor_y
        tip = f"<title>{escape(mark['title'])}</title>" if mark.get("title") else ""
        if mark.get("shape") == "square":
            out.append(f'<rect x="{x - 3.5:.1f}" y="{y - 3.5:.1f}" width="7" height="7" '
                       f'fill="white" stroke="{colour}" stroke-width="1.5" '
                       f'data-role="mark">{tip}</rect>')
        else:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.2" fill="{colour}" '
                       f'data-role="mark">{tip}</circle>')
    return out


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
            "point_colours": [...], "marks": [{"i", "shape", "title"}]}``; ``y`` may hold
            None (a gap); a mark is a filled circle or an open square on point ``i`` (at the
            bottom of the plot when that point has no value).
        kind: ``data-plot`` attribute (lets tests and scripts find the plot).
        label: accessible name (``aria-label`` and ``<title>``).
        x_labels: names of the integer x positions 0..n-1 (e.g. days); None: numeric x.
        hlines: horizontal reference lines ``{"y", "label", "colour"}`` (thresholds).
        vlines: vertical markers ``{"x", "label", "colour", "row"}`` (e.g. change points).
        y_from_zero: include 0 in the y range.
    """
    left, right, bottom = 52, 14, 40
    entries = [{"label": s["name"], "colour": s.get("colour", BLUE)}
               for s in series if s.get("name")] if legend else []
    legend_svg, rows = _legend_row(entries, x=left, max_x=width - right)
    top = 10 + 18 * max(rows, 1 if legend else 0)
    inner_w, inner_h = width - left - right, height - top - bottom
    xs = [finite(x) for s in series for x in s.get("x", [])]
    xs = [x for x in xs if x is not None] + [finite(v.get("x")) or 0.0 for v in vlines]
    ys = [y for y in (finite(y) for s in series for y in s.get("y", [])) if y is not None]
    extra = [h for h in (finite(line.get("y")) for line in hlines) if h is not None]
    x_low, x_high = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x_high == x_low:
        x_low, x_high = x_low - 0.5, x_high + 0.5
    y_low, y_high = domain(ys, include=[*extra, *([0.0] if y_from_zero else [])])
    if y_from_zero and y_low < 0 <= min(ys + extra + [0.0]):
        y_low = 0.0
    px = linear(x_low, x_high, left, inner_w)
    py = linear(y_low, y_high, top + inner_h, -inner_h)
    out = [svg_open(width, height, label, kind),
           y_grid(nice_ticks(y_low, y_high), py, left, inner_w),
           x_axis_line(left, top + inner_h, inner_w)]
    if x_labels is not None:
        out.append(x_category_labels(x_labels, px, y=top + inner_h + 14, inner_w=inner_w,
                                     right_edge=width - right))
    else:
        out += [f'<text x="{px(tick):.1f}" y="{top + inner_h + 14}" font-size="10" '
                f'text-anchor="middle" fill="{MUTED}">{tick_text(tick)}</text>'
                for tick in nice_ticks(x_low, x_high, 6)]
    if x_title:
        out.append(x_title_text(x_title, left + inner_w / 2, height - 6))
    if y_title:
        out.append(y_title_text(y_title, top + inner_h / 2))
    out += [_hline(line, py, left, inner_w) for line in hlines]
    out += [_vline(line, px, left, top, inner_w, inner_h) for line in vlines]
    for s in series:
        out += _series(s, px, py, top + inner_h)
    out += [legend_svg, "</svg>"]
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
        colour = escape((colours[i] if colours and i < len(colours) else None) or BLUE)
        out.append(f'<text x="{left - 6}" y="{y + 14}" font-size="11" text-anchor="end" '
                   f'fill="{DARK}">{escape(short(str(name), 26))}</text>')
        if value is None:
            out.append(f'<text x="{zero + 4:.1f}" y="{y + 14}" font-size="10" '
                       f'fill="{MUTED}">n/a</text>')
            continue
        x0, x1 = sorted((zero, px(value)))
        out.append(f'<rect x="{x0:.1f}" y="{y + 4}" width="{max(x1 - x0, 0.5):.1f}" '
                   f'height="{row - 8}" fill="{colour}" data-value="{escape(fmt(value, 4))}"/>')
        if errs[i]:
            ea, eb = px(value - errs[i]), px(value + errs[i])
            out.append(f'<line x1="{ea:.1f}" y1="{y + row / 2:.1f}" x2="{eb:.1f}" '
                       f'y2="{y + row / 2:.1f}" stroke="{DARK}" stroke-width="1"/>')
        out.append(f'<text x="{max(x1, px(value + errs[i])) + 4:.1f}" y="{y + 14}" '
                   f'font-size="10" fill="{MUTED}">{escape(fmt(value, value_digits))}</text>')
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
            text = escape(item.get("label", ""))
            weight = ' font-weight="700"' if item.get("highlight") else ""
            out.append(f'<text x="{x:.1f}" y="{top + inner_h + 15}" font-size="11" '
                       f'text-anchor="middle" fill="{DARK}"{weight}>{text}</text>')
    out.append(x_axis_line(left, top + inner_h, inner_w))
    out.append("</svg>")
    return "".join(out)


def _cell_colours(correct: bool, alpha: float) -> tuple[str, str]:
    """(fill, text colour) of a confusion-matrix cell: green on the diagonal, red off it."""
    base = (46, 125, 50) if correct else (198, 40, 40)
    return (f"rgba({base[0]},{base[1]},{base[2]},{alpha:.2f})",
            "#ffffff" if alpha > 0.55 else DARK)


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
                   f'text-anchor="middle" fill="{DARK}">{escape(short(name, 14))}</text>')
    layout = (("tn", 0, 0, "TN"), ("fp", 0, 1, "FP"), ("fn", 1, 0, "FN"), ("tp", 1, 1, "TP"))
    for i, name in enumerate((negative, positive)):
        out.append(f'<text x="{left - 8}" y="{top + size * (i + 0.5) + 4:.0f}" font-size="12" '
                   f'text-anchor="end" fill="{DARK}">actual {escape(short(name, 12))}</text>')
    for key, i, j, tag in layout:
        share = cells[key] / total
        fill, text = _cell_colours(i == j, 0.12 + 0.78 * min(1.0, share * 2))
        x, y = left + j * size, top + i * size
        out.append(f'<rect x="{x}" y="{y}" width="{size - 2}" height="{size - 2}" '
                   f'fill="{fill}" data-cell="{key}"/>'
                   f'<text x="{x + size / 2 - 1:.0f}" y="{y + size / 2 - 4:.0f}" font-size="18" '
                   f'font-weight="700" text-anchor="middle" fill="{text}">'
                   f'{cells[key]:,}</text><text x="{x + size / 2 - 1:.0f}" '
                   f'y="{y + size / 2 + 14:.0f}" font-size="11" text-anchor="middle" '
                   f'fill="{text}">{tag} '
                   f'{100 * share:.1f}%</text>')
    out.append("</svg>")
    return "".join(out)


def confusion_matrix_k(labels: Sequence[Any], matrix: Sequence[Sequence[Any]], *,
                       label: str = "confusion matrix on the test split") -> str:
    """A K x K matrix (rows: actual class, columns: predicted class), each cell shaded by its
    share of the actual class (the diagonal: each class's recall)."""
    names = [str(n) for n in labels]
    k = len(names)
    counts = [[int(finite(v) or 0) for v in row] for row in matrix]
    if k == 0 or len(counts) != k or any(len(row) != k for row in counts):
        return '<p class="muted">no confusion matrix stored</p>'
    size = max(34, min(72, 480 // k))
    left, top = 130, 70
    width, height = left + k * size + 20, top + k * size + 14
    out = [svg_open(width, height, label, "confusion-matrix")]
    out.append(f'<text x="{left + k * size / 2:.0f}" y="14" font-size="11" '
               f'text-anchor="middle" fill="{MUTED}">predicted</text>')
    for j, name in enumerate(names):
        x = left + size * (j + 0.5)
        out.append(f'<text x="{x:.0f}" y="{top - 8}" font-size="11" text-anchor="start" '
                   f'transform="rotate(-40 {x:.0f} {top - 8})" fill="{DARK}">'
                   f'{escape(short(name, 14))}</text>')
    for i, name in enumerate(names):
        total = sum(counts[i]) or 1
        out.append(f'<text x="{left - 8}" y="{top + size * (i + 0.5) + 4:.0f}" font-size="11" '
                   f'text-anchor="end" fill="{DARK}">actual {escape(short(name, 12))}</text>')
        for j in range(k):
            share = counts[i][j] / total
            fill, text = _cell_colours(i == j, 0.06 + 0.84 * min(1.0, share))
            x, y = left + j * size, top + i * size
            out.append(f'<rect x="{x}" y="{y}" width="{size - 2}" height="{size - 2}" '
                       f'fill="{fill}" data-cell="{i},{j}"><title>actual {escape(name)}, '
                       f'predicted {escape(names[j])}: {counts[i][j]:,} ({100 * share:.1f}% of '
                       f'actual {escape(name)})</title></rect><text x="{x + size / 2 - 1:.0f}" '
                       f'y="{y + size / 2 + 4:.0f}" font-size="{12 if size < 50 else 14}" '
                       f'text-anchor="middle" fill="{text}">{counts[i][j]:,}</text>')
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


# --------------------------------------------------------------------------- reference vs current


def shares_histogram(plot: dict[str, Any] | None, width: int = 500, height: int = 150) -> str:
    """Reference vs current shares on the reference-quantile bins, as inline SVG."""
    if not plot or not plot.get("reference"):
        return '<p class="muted">no plot</p>'
    ref = plot["reference"]
    cur = plot.get("current") or [0.0] * len(ref)
    cuts = plot.get("cuts", [])
    k = len(ref)
    left, bottom, top = 34, 26, 8
    inner_w, inner_h = width - left - 6, height - bottom - top
    peak = max(max(ref), max(cur), 1e-9)
    bw = inner_w / k
    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="histogram">']
    parts.append(f'<line x1="{left}" y1="{top + inner_h}" x2="{left + inner_w}" '
                 f'y2="{top + inner_h}" stroke="#999"/>')
    for frac in (0.5, 1.0):
        y = top + inner_h * (1 - frac)
        parts.append(f'<text x="{left - 3}" y="{y + 4:.1f}" font-size="9" text-anchor="end" '
                     f'fill="#666">{100 * peak * frac:.0f}%</text>')
    for i in range(k):
        x = left + i * bw
        hr = inner_h * ref[i] / peak
        hc = inner_h * cur[i] / peak
        parts.append(f'<rect x="{x + 1:.1f}" y="{top + inner_h - hr:.1f}" width="{bw - 2:.1f}" '
                     f'height="{hr:.1f}" fill="{GREY}"/>')
        parts.append(f'<rect x="{x + bw * 0.3:.1f}" y="{top + inner_h - hc:.1f}" '
                     f'width="{bw * 0.4:.1f}" height="{hc:.1f}" fill="{BLUE}" '
                     f'fill-opacity="0.85"/>')
    # ticks: below-range bin, a few interior cuts, above-range bin
    parts.append(f'<text x="{left + bw / 2:.1f}" y="{height - 4}" font-size="9" '
                 f'text-anchor="middle" fill="#666">&lt;min</text>')
    parts.append(f'<text x="{left + (k - 0.5) * bw:.1f}" y="{height - 4}" font-size="9" '
                 f'text-anchor="middle" fill="#666">&gt;max</text>')
    if len(cuts) >= 2:
        picks = sorted({1, len(cuts) // 2, len(cuts) - 1})
        for j in picks:
            x = left + (j + 1) * bw if j < len(cuts) - 1 else left + (k - 1) * bw
            parts.append(f'<text x="{x:.1f}" y="{height - 14}" font-size="9" '
                         f'text-anchor="middle" fill="#444">{fmt(cuts[j])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def shares_bars(plot: dict[str, Any] | None, width: int = 500) -> str:
    """Reference vs current category shares, horizontal bars, as inline SVG."""
    if not plot or not plot.get("labels"):
        return '<p class="muted">no plot</p>'
    labels, ref = plot["labels"], plot["reference"]
    cur = plot.get("current") or [0.0] * len(ref)
    unseen = set(plot.get("unseen", []))
    row, left = 16, 130
    height = row * len(labels) + 8
    inner = width - left - 50
    peak = max(max(ref), max(cur), 1e-9)
    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="category shares">']
    for i, label in enumerate(labels):
        y = 4 + i * row
        name = short(str(label), 18) + (" *" if label in unseen else "")
        parts.append(f'<text x="{left - 4}" y="{y + 11}" font-size="10" text-anchor="end" '
                     f'fill="#333">{escape(name)}</text>')
        wr, wc = inner * ref[i] / peak, inner * cur[i] / peak
        parts.append(f'<rect x="{left}" y="{y + 1}" width="{wr:.1f}" height="6" fill="{GREY}"/>')
        parts.append(f'<rect x="{left}" y="{y + 7}" width="{wc:.1f}" height="6" fill="{BLUE}"/>')
        parts.append(f'<text x="{left + max(wr, wc) + 4:.1f}" y="{y + 11}" font-size="9" '
                     f'fill="#666">{100 * ref[i]:.1f}% / {100 * cur[i]:.1f}%</text>')
    parts.append("</svg>")
    return "".join(parts)


_legend_row = legend  # line_chart's ``legend`` flag shadows the function inside it

__all__ = [
    "BLUE",
    "DARK",
    "FONT",
    "GREEN",
    "GREY",
    "GRID",
    "MUTED",
    "ORANGE",
    "PALETTE",
    "PURPLE",
    "RED",
    "confusion_matrix",
    "domain",
    "escape",
    "finite",
    "fmt",
    "hbar_chart",
    "histogram",
    "interval_chart",
    "label_picks",
    "legend",
    "line_chart",
    "linear",
    "nice_ticks",
    "performance_chart",
    "shares_bars",
    "shares_histogram",
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
