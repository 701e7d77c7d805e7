"""Reports of a drift check: stable JSON and a self-contained HTML page.

The HTML opens with no network (inline CSS and inline SVG, no script, no external link), puts the
verdict and the retrain decision first, then the model's performance (the label-free estimate
with its interval against the reference level and the tolerance, the realized metric once labels
arrived, the estimate's reliability and assumptions, and the chart of both over the checked
days), then data quality, then -- as the explanation of why the inputs moved -- per feature a
reference-vs-current plot with statistic, p-value, adjusted p-value, effect size and importance,
then prediction drift. It embeds aggregated shares only, never raw rows.

Numeric plots use the reference-quantile bins of the profile, drawn with equal widths: the
reference is (nearly) flat by construction, so wherever the current bars rise or fall is where
the mass moved. The outer bins hold the values below / above the reference range.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..charts import BLUE, GREY, escape, fmt, performance_chart, shares_bars, shares_histogram
from ..io import dumps_json
from .store import summarize

STATUS_COLOURS = {
    "drift": "#c62828", "no_drift": "#2e7d32", "insufficient_data": "#8d6e00",
    "unavailable": "#6b7280", "critical": "#b71c1c", "high": "#c62828", "medium": "#e65100",
    "low": "#8d6e00", "none": "#2e7d32", "ok": "#2e7d32", "warning": "#e65100", "info": "#6b7280",
    "flagged": "#c62828", "reliable": "#2e7d32", "unreliable": "#e65100", "open": "#c62828",
    "reminder": "#e65100", "escalated": "#b71c1c", "resolved": "#2e7d32",
}
METHODS = {
    "cbpe": "confidence-based performance estimation (CBPE) on the calibrated scores",
    "dle": "direct loss estimation (DLE) by loss models fitted on the validation split",
}
MAX_CHART_DAYS = 90  # the report's chart shows at most this many checked days (the newest)
MAX_OUTSIDE_FEATURES = 12

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1f2328;
max-width:1100px}
h1{font-size:22px;margin:0 0 8px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.badge{display:inline-block;padding:3px 10px;border-radius:12px;color:#fff;font-weight:600;
font-size:13px;margin-right:6px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #ddd;border-radius:6px;padding:8px;width:520px}
.card h3{font-size:14px;margin:0 0 4px}.muted{color:#6b7280;font-size:12px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
ul{margin:4px 0 4px 18px;padding:0}
h3{font-size:15px;margin:16px 0 6px}
.perf{display:flex;flex-wrap:wrap;gap:12px;margin:8px 0}
.perf .card{width:500px}.big{font-size:20px;font-weight:700}
tr.watched td{font-weight:600;background:#f6f8fa}
svg{max-width:100%;height:auto}
"""


def to_json(result: dict[str, Any]) -> str:
    """The result as stable JSON text (sorted keys, NaN/inf -> null)."""
    return dumps_json(result) + "\n"


_e = escape


def _num(value: Any, digits: int = 3) -> str:
    """A number for the report (:func:`~ml_lifecycle.charts.fmt`; yes/no for flags, escaped
    text for anything else)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None or isinstance(value, (int, float)):
        return fmt(value, digits)
    return _e(value)


def _pct(value: Any) -> str:
    return "&ndash;" if value is None else f"{100 * float(value):.1f}%"


def _badge(status: Any, text: str | None = None) -> str:
    colour = STATUS_COLOURS.get(str(status), "#6b7280")
    return f'<span class="badge" style="background:{colour}">{_e(text or status)}</span>'


def _short(label: str, n: int = 18) -> str:
    return label if len(label) <= n else label[: n - 1] + "\u2026"


def _legend() -> str:
    return (f'<span class="legend muted"><span style="background:{GREY}"></span>reference '
            f'(training)<span style="background:{BLUE}"></span>current batch</span>')


def _per_class_rows(pred: dict[str, Any]) -> str:
    """Multiclass: each class's probability drift and its predicted share (reference:
    validation), under the summary rows of the class that moved most."""
    per_class = pred.get("per_class") or {}
    if not per_class:
        return ""
    shares = pred.get("predicted_shares") or {}
    ref, cur = shares.get("reference") or {}, shares.get("current") or {}
    rows = "".join(
        f"<tr><td>{_e(name)}</td><td>{_badge(r.get('status') or 'unavailable')}</td>"
        f"<td class=num>{_num(r.get('p_value_adjusted'), 4)}</td>"
        f"<td class=num>{_num(r.get('effect_size'), 4)}</td>"
        f"<td class=num>{_num(r.get('reference_mean'), 4)}</td>"
        f"<td class=num>{_num(r.get('current_mean'), 4)}</td>"
        f"<td class=num>{_pct(ref.get(name))}</td><td class=num>{_pct(cur.get(name))}</td></tr>"
        for name, r in per_class.items())
    return ("</table><h3>Per class</h3><table><tr><th>class</th><th>status</th>"
            "<th>adjusted p</th><th>effect</th><th>mean P (validation)</th>"
            "<th>mean P (batch)</th><th>predicted share (validation)</th>"
            f"<th>predicted share (batch)</th></tr>{rows}")


def _feature_order(features: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rank = {"drift": 0, "no_drift": 1, "insufficient_data": 2}
    return sorted(features, key=lambda f: (rank.get(f["status"], 3),
                                           -(f.get("importance_share") or 0.0), f["feature"]))


def _summary_rows(result: dict[str, Any]) -> str:
    data = result.get("data_drift") or {}
    pred = result.get("prediction_drift") or {}
    perf = result.get("concept_drift") or {}
    est = _dict(result.get("estimated_performance"))
    quality = result.get("quality") or {}
    model = result.get("model") or {}
    batch = result.get("batch") or {}
    rows = [
        ("model", f"{_e(model.get('name', ''))} v{_e(model.get('version'))} "
                  f"({_e(model.get('task'))})"),
        ("batch", f"{_num(batch.get('n_rows'))} rows"),
    ]
    if est:
        rows.append(("estimated performance", f"{_badge(est.get('status') or 'unavailable')} "
                                              f"{_e(est.get('reason') or '')}"))
    rows += [
        ("realized performance", f"{_badge(perf.get('status', 'unavailable'))} "
                                 f"{_e(perf.get('reason', ''))}"),
        ("data drift", f"{_badge(data.get('verdict', 'unavailable'))} {_num(data.get('n_drifted'))}"
                       f" of {_num(data.get('n_tested'))} tested features drifted "
                       f"({_pct(data.get('drifted_share'))}; threshold "
                       f"{_pct(data.get('share_threshold'))}); importance-weighted "
                       f"{_pct(data.get('weighted_drift'))} (threshold "
                       f"{_pct(data.get('weighted_threshold'))})"),
        ("prediction drift", f"{_badge(pred.get('status', 'unavailable'))} "
                             f"{_e(pred.get('reason', ''))}"),
        ("data quality", f"{_badge(quality.get('severity', 'unavailable'))} "
                         f"{_num(quality.get('n_critical'))} critical, "
                         f"{_num(quality.get('n_warnings'))} warning(s)"),
    ]
    alert = _dict(result.get("alert"))
    if alert.get("action"):
        episode = ", ".join(f"{_e(k)}: {_e(v)}" for k, v in _dict(alert.get("episode")).items()
                            if isinstance(v, (str, int, float, bool)))
        detail = f' <span class="muted">episode {episode}</span>' if episode else ""
        rows.append(("alert", f"{_badge(alert['action'])}{detail}"))
    return "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)


# --------------------------------------------------------------------------- performance


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _boundary(reference: Any, tolerance: Any, higher_is_better: Any) -> float | None:
    """Where the tolerance ends: ``reference - tolerance`` (``+`` for lower-is-better)."""
    if not isinstance(reference, (int, float)) or not isinstance(tolerance, (int, float)):
        return None
    return reference + tolerance if higher_is_better is False else reference - tolerance


def _estimate_card(est: dict[str, Any]) -> str:
    if not est:
        return ('<div class="card" id="estimated"><h3>Estimated (no labels needed)</h3>'
                '<p class="muted">No label-free estimate in this result: it was checked before '
                "performance estimation existed, or the model has no estimator.</p></div>")
    metric = est.get("metric") or "metric"
    method = str(est.get("method") or "")
    confidence = est.get("confidence")
    level = f"{100 * float(confidence):.0f}% " if isinstance(confidence, (int, float)) else ""
    boundary = _boundary(est.get("reference_value"), est.get("tolerance"),
                         est.get("higher_is_better"))
    flag = _badge("flagged", "flagged") if est.get("flagged") else ""
    rows = [
        ("reference (estimator on the test split)", _num(est.get("reference_value"), 4)),
        ("realized on the test split", _num(est.get("reference_realized"), 4)),
        ("drop", _num(est.get("drop"), 4)),
        ("tolerance", f"{_num(est.get('tolerance'), 4)} &rarr; boundary {_num(boundary, 4)}"),
        ("rows", _num(est.get("n_rows"))),
    ]
    table = "".join(f"<tr><th>{k}</th><td class=num>{v}</td></tr>" for k, v in rows)
    return (
        f'<div class="card" id="estimated"><h3>Estimated {_e(metric)} (no labels needed) '
        f"{_badge(est.get('status', 'unavailable'))}{flag}</h3>"
        f'<div><span class="big">{_num(est.get("value"), 4)}</span> '
        f"[{_num(est.get('low'), 4)}, {_num(est.get('high'), 4)}] "
        f'<span class="muted">{level}interval for a batch of this size</span></div>'
        f'<div class="muted">{_e(METHODS.get(method, method))}</div>'
        f"<table>{table}</table><p>{_e(est.get('reason') or '')}</p></div>"
    )


def _realized_card(perf: dict[str, Any]) -> str:
    metric = perf.get("metric") or "metric"
    boundary = _boundary(perf.get("reference_value"), perf.get("tolerance"),
                         perf.get("higher_is_better"))
    if perf.get("value") is None:
        return (f'<div class="card" id="realized"><h3>Realized {_e(metric)} (delayed labels) '
                f"{_badge(perf.get('status', 'unavailable'))}</h3>"
                f'<p class="muted">No realized value: the labels of the scored batches have not '
                f"arrived (or too few did). {_e(perf.get('reason') or '')}</p></div>")
    rows = [
        ("test value", _num(perf.get("reference_value"), 4)),
        ("drop", f"{_num(perf.get('drop'), 4)} [{_num(perf.get('drop_low'), 4)}, "
                 f"{_num(perf.get('drop_high'), 4)}]"),
        ("tolerance", f"{_num(perf.get('tolerance'), 4)} &rarr; boundary {_num(boundary, 4)}"),
        ("labelled rows", _num(perf.get("n_labelled"))),
        ("positive rate", _num(perf.get("positive_rate"), 4)),
    ]
    cal = _dict(perf.get("calibration"))
    if cal.get("ratio") is not None:
        rows.append(("observed / expected positives",
                     f"{_num(cal.get('ratio'), 3)} [{_num(cal.get('low'), 3)}, "
                     f"{_num(cal.get('high'), 3)}] {_badge(cal.get('status') or 'unavailable')}"))
    table = "".join(f"<tr><th>{k}</th><td class=num>{v}</td></tr>" for k, v in rows)
    flag = _badge("flagged", "flagged") if perf.get("flagged") or cal.get("flagged") else ""
    return (
        f'<div class="card" id="realized"><h3>Realized {_e(metric)} (delayed labels) '
        f"{_badge(perf.get('status', 'unavailable'))}{flag}</h3>"
        f'<div><span class="big">{_num(perf.get("value"), 4)}</span> '
        '<span class="muted">on the labelled rows of the trailing window</span></div>'
        f"<table>{table}</table><p>{_e(perf.get('reason') or '')}</p>"
        + (f"<p>Calibration: {_e(cal.get('reason') or '')}</p>" if cal.get("reason") else "")
        + "</div>"
    )


def _reliability_block(est: dict[str, Any]) -> str:
    if not est or est.get("reliability") is None:
        return ""
    reliable = est.get("reliable")
    state = "reliable" if reliable or reliable is None else "unreliable"
    outside = {str(k): v for k, v in _dict(est.get("outside_support")).items()
               if isinstance(v, (int, float)) and v > 0}
    ordered = sorted(outside.items(), key=lambda kv: (-kv[1], kv[0]))
    rows = "".join(f"<tr><td>{_e(name)}</td><td class=num>{_pct(share)}</td></tr>"
                   for name, share in ordered[:MAX_OUTSIDE_FEATURES])
    more = len(ordered) - MAX_OUTSIDE_FEATURES
    table = ("<table><tr><th>feature</th><th>rows outside the reference</th></tr>"
             f"{rows}</table>" + (f'<p class="muted">and {more} more</p>' if more > 0 else "")
             if rows else '<p class="muted">Every row lies inside the reference\'s range and '
             "categories.</p>")
    return (
        f"<h3>Reliability of the estimate {_badge(state)}</h3>"
        f"<p>{_pct(est.get('reliability'))} of the batch (weighted by feature importance) lies "
        f"inside the training data's support; the estimate is trusted from "
        f"{_pct(est.get('min_reliability'))}.</p>{table}"
    )


def _assumptions(est: dict[str, Any]) -> str:
    items = [a for a in est.get("assumptions") or [] if a]
    if not items:
        return ""
    return ("<h3>Assumptions of the estimate</h3><ul>"
            + "".join(f"<li>{_e(a)}</li>" for a in items) + "</ul>")


def _metrics_table(est: dict[str, Any]) -> str:
    metrics = _dict(est.get("metrics"))
    if not metrics:
        return ""
    watched = est.get("metric")
    rows = []
    for name in sorted(metrics, key=lambda n: (n != watched, str(n))):
        m = _dict(metrics[name])
        rows.append(
            f'<tr class="{"watched" if name == watched else ""}"><td>{_e(name)}</td>'
            f"<td class=num>{_num(m.get('value'), 4)}</td>"
            f"<td class=num>[{_num(m.get('low'), 4)}, {_num(m.get('high'), 4)}]</td>"
            f"<td class=num>{_num(m.get('reference_value'), 4)}</td>"
            f"<td class=num>{_num(m.get('reference_realized'), 4)}</td></tr>")
    return ("<h3>Every estimated metric</h3><table id=\"estimated-metrics\"><tr><th>metric</th>"
            "<th>estimated</th><th>interval</th><th>reference (estimated on test)</th>"
            f"<th>realized on test</th></tr>{''.join(rows)}</table>")


def chart_days(result: dict[str, Any],
               history: Sequence[Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The days of the performance chart: ``history`` (summaries of earlier days) and the
    summary of ``result``, one entry per day (today's result replaces a stored summary of the
    same day), oldest first, at most the newest :data:`MAX_CHART_DAYS`."""
    today = summarize(result)
    by_day: dict[str, dict[str, Any]] = {}
    for entry in history or []:
        if isinstance(entry, Mapping) and entry.get("day") is not None:
            by_day[str(entry["day"])] = dict(entry)
    if today.get("day") is None:
        days = [by_day[k] for k in sorted(by_day)] + [today]
    else:
        by_day[str(today["day"])] = today
        days = [by_day[k] for k in sorted(by_day)]
    return days[-MAX_CHART_DAYS:]


def _performance_section(result: dict[str, Any],
                         history: Sequence[Mapping[str, Any]] | None) -> str:
    est = _dict(result.get("estimated_performance"))
    perf = _dict(result.get("concept_drift"))
    if est.get("flagged") or perf.get("flagged"):
        status = "drift"
    elif est.get("status") not in (None, "unavailable"):
        status = est["status"]
    else:
        status = perf.get("status") or est.get("status") or "unavailable"
    days = chart_days(result, history)
    plotted = any(d.get(k) is not None for d in days
                  for k in ("estimated_metric", "realized_metric"))
    metric = est.get("metric") or perf.get("metric")
    hib = est.get("higher_is_better", perf.get("higher_is_better", True))
    chart = (performance_chart(days, metric=str(metric) if metric else None,
                               higher_is_better=hib is not False, xmlns=False)
             if plotted else '<p class="muted">Nothing to plot yet: no checked day has an '
             "estimated or a realized metric.</p>")
    return (
        f'<h2 id="performance">Model performance {_badge(status)}</h2>'
        '<p class="muted">Does the model still perform? The estimate needs no labels (it '
        "judges today's batch); the realized metric needs the delayed labels (it judges the "
        "trailing window). Both are compared with the model's level on its test split; a drop "
        "beyond the tolerance whose interval excludes no drop is flagged.</p>"
        f'<div class="perf">{_estimate_card(est)}{_realized_card(perf)}</div>'
        f"<h3>Over the checked days</h3>{chart}"
        '<p class="muted">Blue: the estimate with its interval (shaded); purple: the realized '
        "metric once labels arrived; green: the reference level; red dashes: the tolerance "
        "boundary; red: days whose estimate was flagged.</p>"
        f"{_metrics_table(est)}{_reliability_block(est)}{_assumptions(est)}"
    )


def _quality_section(quality: dict[str, Any]) -> str:
    issues = quality.get("issues") or []
    if not issues:
        return "<p>No data-quality issue.</p>"
    rows = "".join(
        f"<tr><td>{_badge(i['severity'])}</td><td>{_e(i['check'])}</td>"
        f"<td>{_e(i['column'] or '')}</td><td>{_e(i['message'])}</td></tr>"
        for i in issues)
    return ("<table><tr><th>severity</th><th>check</th><th>column</th><th>finding</th></tr>"
            f"{rows}</table>")


def _features_table(features: list[dict[str, Any]]) -> str:
    head = ("<tr><th>feature</th><th>kind</th><th>status</th><th>test</th><th>statistic</th>"
            "<th>p-value</th><th>adjusted p</th><th>effect size</th><th>threshold</th>"
            "<th>importance</th><th>SHAP share</th><th>n current</th></tr>")
    rows = []
    for f in features:
        sig = f.get("tests", {}).get(f.get("significance_test"), {})
        rows.append(
            f'<tr><td><a href="#f-{_e(f["feature"])}">{_e(f["feature"])}</a></td>'
            f"<td>{_e(f['kind'])}</td><td>{_badge(f['status'])}</td>"
            f"<td>{_e(f.get('significance_test'))}</td>"
            f"<td class=num>{_num(sig.get('statistic'))}</td>"
            f"<td class=num>{_num(f.get('p_value'))}</td>"
            f"<td class=num>{_num(f.get('p_value_adjusted'))}</td>"
            f"<td class=num>{_e(f.get('effect_test'))} {_num(f.get('effect_size'))}</td>"
            f"<td class=num>{_num(f.get('effect_threshold'))}</td>"
            f"<td class=num>{_pct(f.get('importance_share'))}</td>"
            f"<td class=num>{_pct(f.get('shap_share'))}</td>"
            f"<td class=num>{_num(f.get('n_current'))}</td></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _feature_card(f: dict[str, Any]) -> str:
    plot = f.get("plot") or {}
    svg = shares_histogram(plot) if plot.get("type") == "hist" else shares_bars(plot)
    tests = "".join(
        f"<tr><td>{_e(name)}</td><td class=num>{_num(t.get('statistic'))}</td>"
        f"<td class=num>{_num(t.get('p_value'))}</td><td class=num>{_num(t.get('effect_size'))}"
        f"</td><td class=num>{_num(t.get('threshold'))}</td></tr>"
        for name, t in (f.get("tests") or {}).items())
    table = ("<table><tr><th>test</th><th>statistic</th><th>p-value</th><th>effect</th>"
             f"<th>threshold</th></tr>{tests}</table>") if tests else ""
    return (f'<div class="card" id="f-{_e(f["feature"])}"><h3>{_e(f["feature"])} '
            f"{_badge(f['status'])}</h3><div class=muted>{_e(f.get('reason', ''))}; missing "
            f"{_pct(f.get('missing_rate_reference'))} &rarr; {_pct(f.get('missing_rate_current'))}"
            f"; importance {_pct(f.get('importance_share'))}</div>{svg}{_legend()}{table}</div>")


def render_html(result: dict[str, Any],
                history: Sequence[Mapping[str, Any]] | None = None) -> str:
    """The self-contained HTML report of one check result.

    Args:
        result: the JSON-able result of :func:`~.check.evaluate_batch` /
            :func:`~.check.run_drift_check`.
        history: :func:`~.store.summarize` dicts of earlier checked days, oldest first (e.g.
            :func:`~.store.drift_history`); the performance chart shows them with this day.

    Returns:
        HTML text (UTF-8; no script, no external resource).
    """
    data = result.get("data_drift") or {}
    pred = result.get("prediction_drift") or {}
    features = _feature_order(data.get("features") or [])
    decision = result.get("decision") or {}
    retrain = result.get("retrain")
    action = ("retrain recommended" if retrain else "no retrain") if retrain is not None \
        else "no policy applied"
    reasons = "".join(f"<li>{_e(r)}</li>" for r in result.get("reasons") or [])
    notes = "".join(f"<li>{_e(n)}</li>" for n in decision.get("notes") or [])
    pred_plot = shares_histogram(pred.get("plot")) if pred.get("plot") else ""
    pred_rows = "".join(
        f"<tr><th>{_e(k)}</th><td class=num>{_num(pred.get(k), 4)}</td></tr>"
        for k in ("p_value", "effect_test", "effect_size", "effect_threshold", "reference_mean",
                  "current_mean", "reference_positive_rate", "current_positive_rate",
                  "n_current"))
    pred_rows += _per_class_rows(pred)
    settings = result.get("settings", {}).get("drift", {})
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>Drift report {_e(result.get('day', ''))}</title><style>{CSS}</style></head><body>"
        f"<h1>Drift report &mdash; {_e(result.get('day', ''))}</h1>"
        f"<p>{_badge(result.get('verdict', 'unavailable'))}"
        f"{_badge(result.get('severity', 'none'), 'severity: ' + str(result.get('severity')))}"
        f"{_badge('high' if retrain else 'none', action)}</p>"
        f"<ul>{reasons}</ul>{('<p class=muted>Notes:</p><ul>' + notes + '</ul>') if notes else ''}"
        f"<table>{_summary_rows(result)}</table>"
        f"<p class=muted>checked at {_e(result.get('checked_at', ''))}.</p>"
        f"{_performance_section(result, history)}"
        f"<h2>Data quality</h2>{_quality_section(result.get('quality') or {})}"
        f'<h2 id="data-drift">Why the inputs moved: data drift '
        f"{_badge(data.get('verdict', 'unavailable'))}</h2>"
        "<p class=muted>Drift explains a change of performance; it is not harm by itself. A "
        "feature drifts when its test is significant after Benjamini-Hochberg at "
        f"q={_e(settings.get('fdr_q', ''))} AND its effect size reaches the threshold.</p>"
        f"<h3>Features</h3>{_features_table(features)}"
        f"<div class=cards>{''.join(_feature_card(f) for f in features)}</div>"
        f"<h2>Why the scores moved: prediction drift {_badge(pred.get('status', 'unavailable'))}"
        f"</h2><p>{_e(pred.get('reason', ''))}</p><table>{pred_rows}</table>{pred_plot}"
        f"{_legend() if pred_plot else ''}"
        "</body></html>\n"
    )
