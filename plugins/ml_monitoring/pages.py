"""Server-rendered HTML of the monitoring pages.

Rules: every value from the registry or the store goes through :func:`e` (HTML-escaped) or is a
number formatted by :func:`~ml_monitoring.svg.fmt`; every URL part is percent-quoted; there is no
script and no external asset (the app also sends a Content-Security-Policy forbidding both).
Links are relative, so the pages work under any base URL of the api-server. A model's pages live
under ``models/<name>/``: ``base`` is the way from a page to its model's root (``""``, ``"../"``
or ``"../../"``), :data:`UP` the way from a model's root to the app's root (the model list), and
the Airflow UI is one level above the app's root.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from ml_lifecycle import charts as svg
from ml_lifecycle.charts import short_days

fmt = svg.fmt
UP = "../../"  # from models/<name>/ to the app's root

CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1f2328;
font-size:14px;background:#fff}
header{display:flex;gap:18px;align-items:baseline;padding:10px 20px;border-bottom:1px solid #d0d7de;
background:#f6f8fa;flex-wrap:wrap}
header a{color:#1f2328;text-decoration:none;font-weight:600;padding:4px 2px}
header a.active{border-bottom:3px solid #1f6feb}
header .where{margin-left:auto}
main{padding:12px 20px 28px;max-width:1280px}
h1{font-size:21px;margin:8px 0 10px}h2{font-size:16px;margin:24px 0 8px;padding-bottom:3px;
border-bottom:1px solid #d8dee4}
a{color:#0969da}
table{border-collapse:collapse;margin:6px 0;font-size:13px}
td,th{border:1px solid #d8dee4;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.when{white-space:nowrap;font-size:12px}
tr.champion td{background:#eef8f0}
.badge{display:inline-block;padding:1px 9px;border-radius:10px;color:#fff;font-weight:600;
font-size:12px;white-space:nowrap}
.muted{color:#57606a;font-size:12px}
.small{font-size:12px}
.box{border:1px solid #d0d7de;border-radius:8px;padding:10px 14px;margin:8px 0 12px;
background:#fff}
.box.champion{border-color:#2e7d32;background:#f3faf4}
.box.empty{border-color:#bf8700;background:#fff8e5;font-size:15px}
.box.error{border-color:#c62828;background:#fdecea}
.big{font-size:22px;font-weight:700}
.grid{display:flex;flex-wrap:wrap;gap:12px}
.panel{border:1px solid #d8dee4;border-radius:6px;padding:6px 8px}
.panel h3{font-size:13px;margin:0 0 2px}
ul.reasons{margin:2px 0 0 16px;padding:0}
dl.kv{display:grid;grid-template-columns:max-content auto;gap:3px 14px;margin:6px 0}
dl.kv dt{color:#57606a}dl.kv dd{margin:0}
code{font-size:12px;background:#f6f8fa;padding:0 3px;border-radius:3px}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(580px,1fr));gap:0 28px}
.cols section{min-width:0}
.cols svg{max-width:100%;height:auto}
"""

COLOURS = {
    "drift": svg.RED, "no_drift": svg.GREEN, "insufficient_data": "#8d6e00",
    "unavailable": "#6b7280", "unreadable": "#6b7280", "champion": svg.GREEN,
    "former champion": "#57606a", "rejected by the gate": svg.RED, "not promoted": "#8d6e00",
    "passed": svg.GREEN, "rejected": svg.RED, "critical": "#b71c1c", "high": svg.RED,
    "medium": svg.ORANGE, "low": "#8d6e00", "none": svg.GREEN, "error": svg.RED,
    "warning": svg.ORANGE, "info": "#6b7280", "retrain": svg.RED, "no retrain": "#57606a",
    "flagged": svg.RED, "open": svg.RED, "reminder": svg.ORANGE, "escalated": "#b71c1c",
    "resolved": svg.GREEN,
}


def e(value: Any) -> str:
    """HTML-escaped text (quotes too); None becomes an en dash."""
    return "\u2013" if value is None else svg.escape(value)


def q(value: Any) -> str:
    """One URL path segment, percent-quoted."""
    return quote(str(value), safe="")


def badge(status: Any, text: Any = None) -> str:
    colour = COLOURS.get(str(status), "#6b7280")
    return f'<span class="badge" style="background:{colour}">{e(text or status)}</span>'


def when(value: Any) -> str:
    """An ISO timestamp as ``YYYY-MM-DD HH:MM UTC`` (the raw text when it is not one)."""
    if not value:
        return "\u2013"
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return e(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
        return e(moment.strftime("%Y-%m-%d %H:%M UTC"))
    return e(moment.strftime("%Y-%m-%d %H:%M"))


def interval(entry: dict[str, Any] | None, *, inline: bool = False) -> str:
    """A metric value with its interval below (or beside) it."""
    if not entry or entry.get("value") is None:
        return "\u2013"
    text = fmt(entry["value"])
    if entry.get("low") is not None and entry.get("high") is not None:
        text += (f'{" " if inline else "<br>"}<span class="muted">[{fmt(entry["low"])}, '
                 f'{fmt(entry["high"])}]</span>')
    return text


def dag_run_link(base: str, dag_id: Any, run_id: Any) -> str:
    """A link to the DAG run's page in the Airflow UI.

    No ``target``: Airflow's plugin frame is sandboxed without ``allow-top-navigation`` and
    ``allow-popups``, so ``_top``/``_blank`` links are blocked there; the link opens in the frame
    (or in a new tab from the browser's context menu).
    """
    if not dag_id or not run_id:
        return '<span class="muted">not from a DAG run</span>'
    href = f"{base}{UP}../dags/{q(dag_id)}/runs/{q(run_id)}"
    return (f'<a href="{e(href)}" class="dag-run" title="DAG run in Airflow">{e(dag_id)}</a>'
            f'<br><span class="muted">{e(run_id)}</span>')


def api_link(base: str, model: Any, path: str, text: str) -> str:
    """A link from a model's page to its JSON under ``api/models/<name>/``."""
    href = f"{base}{UP}api/models/{q(model)}/{path}"
    return f'<a href="{e(href)}">{e(text)}</a>'


def layout(title: str, body: str, *, base: str | None, active: str, context: str = "") -> str:
    """The page frame. ``base`` None: the model list (the app's root); else a model's page."""
    if base is None:
        tabs: tuple[tuple[str, str, str], ...] = (("all", "./", "All models"),)
    else:
        tabs = (("all", f"{base}{UP}", "All models"), ("models", base or "./", "Versions"),
                ("drift", f"{base}drift", "Drift history"))
    nav = "".join(f'<a href="{e(href)}" class="{"active" if key == active else ""}">{label}</a>'
                  for key, href, label in tabs)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} \u00b7 ML monitoring</title><style>{CSS}</style></head><body>"
        f'<header>{nav}<span class="where muted">{context}</span></header>'
        f"<main>{body}</main></body></html>"
    )


def error_page(title: str, message: str, *, base: str | None = "") -> str:
    body = (f"<h1>{e(title)}</h1><div class='box error'>{e(message)}</div>"
            '<p class="muted">The pages read the model configs of the configs folder '
            "(ML_LIFECYCLE_CONFIGS, default configs/) and the registries they name.</p>")
    return layout(title, body, base=base, active="")


def _context(view: dict[str, Any]) -> str:
    name = view.get("model_name")
    root = view.get("registry_root")
    parts = []
    if name:
        parts.append(f"model <b>{e(name)}</b>")
    if root:
        parts.append(f"registry <code>{e(root)}</code>")
    return " \u00b7 ".join(parts)


# --------------------------------------------------------------------------- models


def _empty_models(base: str, message: str, training_dag: str) -> str:
    return (f'<div class="box empty" data-state="empty">{e(message)}<br>'
            f'<a href="{e(base)}{UP}../dags/{q(training_dag)}">Open the '
            f"{e(training_dag)} DAG</a>, unpause it and use <b>Trigger</b>.</div>")


def _champion_box(view: dict[str, Any], base: str) -> str:
    champion = view.get("champion")
    if champion is None:
        return ('<div class="box empty" data-state="no-champion">No champion: no version has '
                "passed the gate and been promoted yet.</div>")
    summary = next((v for v in view["versions"] if v["version"] == champion), None) or {}
    event = view.get("champion_event") or {}
    primary = summary.get("primary_metric")
    metric = (summary.get("metrics") or {}).get(primary)
    how = "rolled back to" if event.get("event") == "rollback" else "promoted"
    return (
        f'<div class="box champion" id="champion" data-version="{e(champion)}">'
        f'<span class="muted">Champion (serving)</span><br>'
        f'<a class="big" href="{e(base)}versions/{q(champion)}">v{e(champion)}</a> '
        f"{badge('champion')} &nbsp;{e(primary)} <b>{interval(metric, inline=True)}</b>"
        f'<div class="small">{e(how)} {when(event.get("at"))} by {e(event.get("actor"))}'
        f'{": " + e(event.get("reason")) if event.get("reason") else ""}; trained '
        f"{when(summary.get('created_at'))} ({e(summary.get('trigger_reason'))})</div></div>"
    )


def _metric_chart(view: dict[str, Any]) -> str:
    versions = list(reversed(view["versions"]))  # oldest first
    if not versions:
        return ""
    primary = versions[-1].get("primary_metric")
    items = []
    for v in versions:
        entry = (v.get("metrics") or {}).get(primary) or {}
        items.append({"label": f"v{v['version']}", "value": entry.get("value"),
                      "low": entry.get("low"), "high": entry.get("high"),
                      "highlight": v.get("is_champion")})
    chart = svg.interval_chart(items, kind="version-metrics", y_title=str(primary),
                               label=f"{primary} of each version on its test split, with its "
                                     "bootstrap interval")
    return (f"<h2>{e(primary)} per version</h2><div>{chart}</div>"
            '<p class="muted">Point: the test-split value; bar: its bootstrap interval; green: '
            "the champion. Each version is scored on its own test split.</p>")


def _versions_table(view: dict[str, Any], base: str) -> str:
    versions = view["versions"]
    names: list[str] = []
    for v in versions:
        for name in v.get("metrics") or {}:
            if name not in names:
                names.append(name)
    head = ("<tr><th>version</th><th>created</th><th>trigger reason</th><th>produced by</th>"
            + "".join(f"<th>{e(n)}</th>" for n in names)
            + "<th>gate</th><th>status</th></tr>")
    rows = []
    for v in versions:
        gate = v.get("gate_passed")
        gate_html = badge("passed" if gate else "rejected") if gate is not None else "\u2013"
        if v.get("gate_reasons"):
            gate_html += ('<ul class="reasons small">'
                          + "".join(f"<li>{e(r)}</li>" for r in v["gate_reasons"]) + "</ul>")
        metrics = "".join(f'<td class="num">{interval((v.get("metrics") or {}).get(n))}</td>'
                          for n in names)
        rows.append(
            f'<tr class="{"champion" if v.get("is_champion") else ""}" '
            f'data-version="{e(v["version"])}">'
            f'<td><a href="{e(base)}versions/{q(v["version"])}"><b>v{e(v["version"])}</b></a>'
            f"</td><td class=when>{when(v.get('created_at'))}</td>"
            f"<td>{e(v.get('trigger_reason'))}</td>"
            f"<td class=small>{dag_run_link(base, v.get('dag_id'), v.get('run_id'))}</td>"
            f"{metrics}<td>{gate_html}</td><td>{badge(v.get('status'))}</td></tr>")
    return f'<table id="versions">{head}{"".join(rows)}</table>'


def _history_table(history: list[dict[str, Any]], base: str) -> str:
    if not history:
        return '<p class="muted">No promotion yet.</p>'
    rows = "".join(
        f"<tr><td class=when>{when(h.get('at'))}</td><td>{e(h.get('event'))}</td>"
        f'<td><a href="{e(base)}versions/{q(h.get("version"))}">v{e(h.get("version"))}</a></td>'
        f"<td>{'v' + e(h['previous']) if h.get('previous') is not None else chr(8211)}</td>"
        f"<td>{e(h.get('actor'))}</td><td>{e(h.get('reason'))}</td></tr>"
        for h in reversed(history))
    return ('<table id="history"><tr><th>at</th><th>event</th><th>champion</th><th>previous'
            f"</th><th>by</th><th>reason</th></tr>{rows}</table>")


def _model_list_row(row: dict[str, Any]) -> str:
    name = row["name"]
    home = f"models/{q(name)}/"
    ids = row.get("dag_ids") or {}
    dags = " \u00b7 ".join(f'<a href="../dags/{q(ids[k])}">{e(k)}</a>'
                            for k in ("training", "scoring", "drift") if k in ids)
    link = f'<a href="{e(home)}"><b>{e(name)}</b></a><br><span class="small">{dags}</span>'
    if row.get("error"):
        return (f'<tr data-model="{e(name)}"><td>{link}</td>'
                f'<td colspan="4" class="small">{badge("error")} {e(row["error"])}</td></tr>')
    champ = row.get("champion")
    if champ:
        metric = champ.get("primary_metric")
        champ_cell = (f'<a href="{e(home)}versions/{q(champ["version"])}"><b>v'
                      f'{e(champ["version"])}</b></a> {e(metric)} '
                      f'{interval((champ.get("metrics") or {}).get(metric), inline=True)}')
    else:
        champ_cell = '<span class="muted">none yet</span>'
    check = row.get("last_check")
    check_cell = (f'<a href="{e(home)}drift">{e(check.get("day"))}</a> '
                  f'{badge(check.get("verdict"))} {badge(check.get("severity"))}'
                  if check else '<span class="muted">never checked</span>')
    retrain = row.get("last_retrain")
    retrain_cell = (f'v{e(retrain["version"])} {when(retrain.get("created_at"))} '
                    f'{badge(retrain.get("status"))}<br><span class="small">'
                    f'{e(retrain.get("trigger_reason"))}</span>'
                    if retrain else '<span class="muted">never trained</span>')
    alert = row.get("open_alert")
    alert_cell = (f'{badge("open", "1 open")} {badge(alert.get("severity"))} '
                  f'<span class="small">since {e(alert.get("opened_day"))}'
                  "</span>" if alert else badge("none", "none"))
    return (f'<tr data-model="{e(name)}"><td>{link}</td><td>{champ_cell}</td>'
            f"<td>{check_cell}</td><td>{retrain_cell}</td><td>{alert_cell}</td></tr>")


def model_list_page(view: dict[str, Any]) -> str:
    """The app's root: one row per model, and the config files that cannot be used."""
    title = "Models"
    rows = "".join(_model_list_row(r) for r in view["models"])
    body = f"<h1>{title}</h1>"
    if rows:
        body += ("<table><tr><th>model</th><th>champion</th><th>last check</th>"
                 f"<th>last retrain</th><th>open alerts</th></tr>{rows}</table>")
    else:
        body += '<div class="box empty" data-state="empty">No usable model config.</div>'
    for item in view.get("broken_configs") or []:
        body += (f'<div class="box error" data-state="broken-config"><b>'
                 f'{e(item["config_file"])}</b>: cannot be used<br>'
                 f'<pre class="small">{e(item["error"])}</pre></div>')
    body += '<p class="muted">JSON: <a href="api/models">models</a></p>'
    return layout(title, body, base=None, active="all")


def models_page(view: dict[str, Any], *, base: str = "") -> str:
    title = f"{view['model_name']}: versions"
    if view.get("message"):
        training = view["dag_ids"]["training"]
        body = f"<h1>{e(title)}</h1>{_empty_models(base, view['message'], training)}"
        return layout(title, body, base=base, active="models", context=_context(view))
    body = (
        f"<h1>{title}</h1>{_champion_box(view, base)}{_metric_chart(view)}"
        f"<h2>Versions</h2>{_versions_table(view, base)}"
        '<p class="muted">Intervals: bootstrap on the test split. Gate: metric floors, margin over '
        "a naive baseline, and a paired bootstrap against the champion of the time.</p>"
        f"<h2>Promotion history</h2>{_history_table(view['history'], base)}"
        f'<p class="muted">JSON: {api_link(base, view["model_name"], "versions", "versions")}'
        f' \u00b7 {api_link(base, view["model_name"], "champion", "champion")}</p>'
    )
    return layout(title, body, base=base, active="models", context=_context(view))


# --------------------------------------------------------------------------- one version


def _kv(pairs: list[tuple[str, str]]) -> str:
    return '<dl class="kv">' + "".join(f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in pairs) + "</dl>"


def _card_summary(card: dict[str, Any], base: str) -> str:
    trigger = card.get("trigger") or {}
    data = card.get("data") or {}
    model = card.get("model") or {}
    stopped = (model.get("validation_curve") or {}).get("stopped_iteration")
    extra = ", ".join(f"{e(k)}: {e(v)}" for k, v in trigger.items()
                      if k not in ("reason", "dag_id", "run_id") and v not in (None, "", [], {}))
    split_rows = data.get("rows_per_split") or {}
    time_range = data.get("time_range") or []
    threshold_info = card.get("threshold_info") or {}
    libs = card.get("library_versions") or {}
    pairs = [
        ("created", when(card.get("created_at"))),
        ("trigger reason", e(trigger.get("reason"))),
        ("produced by", dag_run_link(base, trigger.get("dag_id"), trigger.get("run_id"))),
    ]
    if extra:
        pairs.append(("trigger details", extra))
    pairs += [
        ("task / model", f"{e(card.get('task'))} \u00b7 {e(model.get('family'))} "
                         f'<span class="muted">{e(model.get("params") or {})}</span>'),
        ("training rows", f"{fmt(data.get('rows_used'))} used of {fmt(data.get('rows_loaded'))}"
                          " loaded; " + ", ".join(f"{e(k)} {fmt(v)}"
                                                 for k, v in split_rows.items())),
        ("data time range", " \u2192 ".join(e(t) for t in time_range) if time_range
         else "\u2013"),
        ("decision threshold", f"{fmt(card.get('threshold'), 4)} "
                               f'<span class="muted">{e(threshold_info.get("strategy"))} '
                               f'{e(threshold_info.get("objective") or "")}</span>'
         if card.get("threshold") is not None else "\u2013"),
        ("primary metric", e(card.get("primary_metric"))),
        ("champion when trained", f"v{e(card['champion_at_training'])}"
         if card.get("champion_at_training") is not None else "none"),
        ("early stopping", f"kept {fmt(model.get('stopping_iteration'))} iterations (the best "
                           "validation loss)"
                           + (f", stopped after {fmt(stopped)}" if stopped is not None else "")
                           + f"; validation {e(model.get('validation_metric'))} "
                           f"{fmt(model.get('validation_score'), 4)}"
         if model.get("stopping_iteration") is not None else "\u2013"),
        ("libraries", ", ".join(f"{e(k)} {e(v)}" for k, v in libs.items()) or "\u2013"),
        ("git commit", e(card.get("git_commit"))),
    ]
    return _kv(pairs)


def _metrics_table(card: dict[str, Any]) -> str:
    metrics = card.get("metrics") or {}
    baseline = card.get("baseline_metrics") or {}
    confidence = ((card.get("config") or {}).get("evaluation") or {}).get("confidence")
    level = f"{100 * confidence:.0f}% " if isinstance(confidence, (int, float)) else ""
    rows = []
    for name, entry in metrics.items():
        entry = entry if isinstance(entry, dict) else {"value": entry}
        primary = " <b>(primary)</b>" if name == card.get("primary_metric") else ""
        rows.append(f"<tr><td>{e(name)}{primary}</td><td class=num>{fmt(entry.get('value'), 4)}"
                    f"</td><td class=num>{fmt(entry.get('low'), 4)}</td><td class=num>"
                    f"{fmt(entry.get('high'), 4)}</td><td class=num>"
                    f"{fmt(baseline.get(name), 4)}</td></tr>")
    return (f"<table id='metrics'><tr><th>metric</th><th>test value</th><th>{level}low</th>"
            f"<th>{level}high</th><th>naive baseline</th></tr>{''.join(rows)}</table>")


def _gate_section(card: dict[str, Any]) -> str:
    gate = card.get("gate") or {}
    passed = gate.get("passed")
    rows = "".join(
        f"<tr><td>{e(r.get('name'))}</td><td>{e(r.get('metric'))}</td>"
        f"<td class=num>{fmt(r.get('value'), 4)}</td><td class=num>{fmt(r.get('threshold'), 4)}"
        f"</td><td>{badge('passed' if r.get('passed') else 'rejected')}</td>"
        f"<td class=small>{e(r.get('detail'))}</td></tr>" for r in gate.get("rules") or [])
    head = badge("passed" if passed else "rejected", "gate passed" if passed else
                 "gate rejected") if passed is not None else ""
    return (f"<p>{head}</p><table id='gate'><tr><th>rule</th><th>metric</th><th>value</th>"
            f"<th>threshold</th><th>result</th><th>detail</th></tr>{rows}</table>")


def _validation_curve(card: dict[str, Any]) -> str:
    model = card.get("model") or {}
    curve = model.get("validation_curve") or {}
    values = curve.get("values") or []
    if not values:
        return '<p class="muted">This model family stores no validation curve.</p>'
    xs = curve.get("x") or list(range(len(values)))
    series = [{"name": str(curve.get("metric") or "validation"), "x": xs, "y": values,
               "colour": svg.BLUE}]
    if curve.get("train_values"):
        series.append({"name": "training", "x": xs[: len(curve["train_values"])],
                       "y": curve["train_values"], "colour": svg.GREY, "dash": True})
    vlines = []
    best = curve.get("best_iteration")
    if best is not None:
        best_x = xs[best] if isinstance(best, int) and 0 <= best < len(xs) else best
        vlines.append({"x": best_x, "label": f"best: {best_x}", "colour": svg.GREEN})
    stop = curve.get("stopped_iteration", model.get("stopping_iteration"))
    if stop is not None and curve.get("x_label") in ("iteration", "epoch"):
        vlines.append({"x": stop, "label": f"stopped: {stop}", "colour": svg.ORANGE, "row": 1})
    chart = svg.line_chart(series, kind="validation-curve", width=620, height=240,
                           label="validation curve with the early-stopping point",
                           x_title=str(curve.get("x_label") or ""),
                           y_title=str(curve.get("metric") or ""), vlines=vlines)
    return (f"{chart}<p class='muted'>Early stopping on the validation split: the best "
            "validation value (green) and where training stopped (orange).</p>")


def _importances(card: dict[str, Any]) -> str:
    means = card.get("importances") or {}
    if not means:
        return '<p class="muted">No permutation importances stored.</p>'
    stds = card.get("importances_std") or {}
    order = sorted(means, key=lambda k: -(svg.finite(means[k]) or float("-inf")))
    chart = svg.hbar_chart(order, [means[k] for k in order], errors=[stds.get(k) for k in order],
                           kind="importances", label="permutation importances",
                           colours=[svg.BLUE if (svg.finite(means[k]) or 0) >= 0 else svg.GREY
                                    for k in order], value_digits=4)
    return (f"{chart}<p class='muted'>Mean drop of the score when the feature is shuffled "
            "(validation split), \u00b1 its standard deviation over repeats.</p>")


def _shap_bars(card: dict[str, Any]) -> str:
    """Global SHAP: mean |contribution| per input feature (validation rows), with the output
    space the contributions are in."""
    shap = card.get("shap") or {}
    if shap.get("status") != "ok":
        reason = shap.get("reason") or "this version was trained before SHAP explanations"
        return f'<p class="muted">No SHAP summary: {e(reason)}.</p>'
    means = shap.get("mean_abs") or {}
    order = list(means)
    chart = svg.hbar_chart(order, [means[k] for k in order], kind="shap",
                           label="mean absolute SHAP contribution", colours=[svg.BLUE] * len(order),
                           value_digits=4)
    return (f"{chart}<p class='muted'>Mean |SHAP contribution| per input feature on "
            f"{e(shap.get('rows'))} validation rows ({e(shap.get('explainer'))} explainer, in "
            f"{e(shap.get('output'))}); one-hot columns summed to their feature.</p>")


def _errors_plot(card: dict[str, Any]) -> str:
    if (card.get("confusion_matrix") or {}).get("matrix") is not None:  # multiclass
        cm = card["confusion_matrix"]
        matrix = svg.confusion_matrix_k(cm.get("labels") or [], cm["matrix"])
        per_class = card.get("per_class") or {}
        rows = "".join(
            f"<tr><td>{e(name)}</td><td class=num>{fmt(m.get('precision'), 3)}</td>"
            f"<td class=num>{fmt(m.get('recall'), 3)}</td><td class=num>{fmt(m.get('f1'), 3)}"
            f"</td><td class=num>{e(m.get('support'))}</td></tr>"
            for name, m in per_class.items())
        table = ("<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th>"
                 f"<th>support</th></tr>{rows}</table>") if rows else ""
        return (f"<h2>Confusion matrix</h2>{matrix}{table}"
                "<p class='muted'>Test split; the predicted class is the most probable one. "
                "A cell's shade is its share of the actual class (the diagonal: recall).</p>")
    if card.get("confusion_matrix"):
        target = (card.get("data") or {}).get("target") or {}
        positive = str(target.get("positive_label", "1"))
        others = [str(c) for c in target.get("classes") or [] if str(c) != positive]
        negative = others[0] if others else "0"
        threshold = card.get("threshold")
        matrix = svg.confusion_matrix(card["confusion_matrix"], negative=negative,
                                      positive=positive)
        return (f"<h2>Confusion matrix</h2>{matrix}"
                f"<p class='muted'>Test split, at the decision threshold {fmt(threshold, 4)}."
                "</p>")
    residuals = card.get("residuals") or {}
    if residuals:
        quantiles = residuals.get("quantiles") or {}
        table = "".join(f"<td class=num>{fmt(v, 4)}</td>" for v in quantiles.values())
        head = "".join(f"<th>q{e(k)}</th>" for k in quantiles)
        chart = svg.histogram(residuals.get("histogram") or [], residuals.get("bin_edges") or [],
                              kind="residuals", label="residuals on the test split",
                              x_title="actual \u2212 predicted")
        return (f"<h2>Residuals</h2>{chart}<table><tr>{head}</tr><tr>{table}</tr></table>"
                "<p class='muted'>Test split.</p>")
    return ""


def _quality_section(quality: dict[str, Any] | None) -> str:
    if not quality:
        return '<p class="muted">No quality report stored with this version.</p>'
    if quality.get("error"):
        return f"<div class='box error'>{e(quality['error'])}</div>"
    passed = quality.get("passed")
    duplicates = quality.get("duplicates") or {}
    target = quality.get("target") or {}
    rates = target.get("class_rates") or {}
    verdict = badge("passed", "quality gate passed") if passed else \
        badge("rejected", "quality gate failed")
    head = (f"<p>{verdict} "
            f"{fmt(quality.get('rows'))} rows \u00b7 {fmt(quality.get('n_errors'))} error(s), "
            f"{fmt(quality.get('n_warnings'))} warning(s) \u00b7 duplicates "
            f"{fmt(duplicates.get('count'))}"
            + (" \u00b7 target " + ", ".join(f"{e(k)}: {100 * (svg.finite(v) or 0):.1f}%"
                                          for k, v in rates.items()) if rates else "")
            + "</p>")
    checks = quality.get("checks") or []
    if not checks:
        return head + '<p class="muted">No finding.</p>'
    rank = {"error": 0, "warning": 1, "info": 2}
    rows = "".join(
        f"<tr><td>{badge(c.get('severity'))}</td><td>{e(c.get('name'))}</td>"
        f"<td>{e(c.get('column'))}</td><td class=small>{e(c.get('message'))}</td></tr>"
        for c in sorted(checks, key=lambda c: rank.get(str(c.get("severity")), 3)))
    return (f"{head}<table id='quality'><tr><th>severity</th><th>check</th><th>column</th>"
            f"<th>finding</th></tr>{rows}</table>")


def version_page(view: dict[str, Any], *, base: str = "../") -> str:
    card = view["card"]
    summary = view["summary"]
    version = summary["version"]
    title = f"Version {version}"
    promotions = view.get("promotions") or []
    promo = ("; ".join(f"{e(p.get('event'))} {when(p.get('at'))} by {e(p.get('actor'))}"
                       for p in promotions) or "never promoted")
    body = (
        f'<p class="small"><a href="{e(base)}">{e(card.get("name"))}</a> \u203a v{e(version)}</p>'
        f"<h1>v{e(version)} \u00b7 {e(card.get('name'))} {badge(summary.get('status'))}</h1>"
        f'<p class="small">Promotion history of this version: {promo}</p>'
        '<div class="cols">'
        f"<section><h2>Validation curve</h2>{_validation_curve(card)}</section>"
        f"<section><h2>Permutation importances</h2>{_importances(card)}</section>"
        f"<section><h2>SHAP: mean contribution</h2>{_shap_bars(card)}</section>"
        f"<section>{_errors_plot(card)}</section>"
        f"<section><h2>Test metrics</h2>{_metrics_table(card)}</section>"
        "</div>"
        f"<h2>Model card</h2>{_card_summary(card, base)}"
        f"<h2>Gate decision</h2>{_gate_section(card)}"
        "<h2>Quality report of the training data</h2>"
        f"{_quality_section(view.get('quality_report'))}"
        f'<p class="muted">JSON: '
        f'{api_link(base, card.get("name"), f"versions/{q(version)}", "this version")}</p>'
    )
    context = _context({"model_name": card.get("name")})
    return layout(title, body, base=base, active="models", context=context)


# --------------------------------------------------------------------------- drift


def _status_colours(points: list[dict[str, Any]]) -> list[str]:
    return [svg.RED if p.get("status") == "drift" else svg.BLUE for p in points]


def _effect_panel(title: str, subtitle: str, points: list[dict[str, Any]], days: list[str]) -> str:
    by_day = {p["day"]: p for p in points}
    ordered = [by_day.get(d, {}) for d in days]
    threshold = next((p.get("threshold") for p in reversed(points)
                      if svg.finite(p.get("threshold")) is not None), None)
    chart = svg.line_chart(
        [{"x": list(range(len(days))), "y": [p.get("effect_size") for p in ordered],
          "colour": svg.BLUE, "points": True, "point_colours": _status_colours(ordered)}],
        kind="effect-size", label=f"{title}: effect size per checked day", width=380,
        height=170, x_labels=short_days(days), legend=False, y_from_zero=True,
        hlines=[{"y": threshold, "label": f"threshold {fmt(threshold)}"}] if threshold else [],
    )
    return (f'<div class="panel" data-feature="{e(title)}"><h3>{e(title)}</h3>'
            f'<div class="muted">{subtitle}</div>{chart}</div>')


def _ratio(points: list[dict[str, Any]]) -> float:
    best = 0.0
    for p in points:
        size, threshold = svg.finite(p.get("effect_size")), svg.finite(p.get("threshold"))
        if size is not None and threshold:
            best = max(best, size / threshold)
    return best


def _effect_section(view: dict[str, Any], days: list[str]) -> str:
    features = view.get("features") or {}
    panels = []
    prediction = [p for p in view.get("prediction") or [] if p.get("effect_size") is not None]
    if prediction:
        test = next((p.get("effect_test") for p in prediction if p.get("effect_test")), "")
        panels.append(_effect_panel("model scores (prediction drift)", e(test), prediction, days))
    for name in sorted(features, key=lambda n: (-_ratio(features[n]["points"]), n)):
        entry = features[name]
        share = svg.finite(entry.get("importance_share"))
        subtitle = (f"{e(entry.get('kind'))} \u00b7 {e(entry.get('effect_test'))}"
                    + (f" \u00b7 {100 * share:.0f}% of importance" if share is not None else ""))
        panels.append(_effect_panel(name, subtitle, entry["points"], days))
    if not panels:
        return '<p class="muted">No per-feature results stored.</p>'
    return (f'<div class="grid" id="effect-sizes">{"".join(panels)}</div>'
            '<p class="muted">Blue: no drift that day; red: the feature drifted (significant '
            "after the multiple-testing correction and effect size at or above the dashed "
            "threshold). Features sorted by their largest effect relative to the threshold.</p>")


def _performance_section(days: list[dict[str, Any]]) -> str:
    """The chart of the watched metric per checked day, estimated and realized (the same chart
    as in the day reports: :func:`ml_lifecycle.charts.performance_chart`)."""
    if not any(d.get("estimated_metric") is not None or d.get("realized_metric") is not None
               for d in days):
        return ('<p class="muted" data-state="no-performance">No performance yet: the estimate '
                "appears with checks of a model that has a performance estimator, the realized "
                "metric once the delayed labels of scored batches arrive.</p>")
    chart = svg.performance_chart(days, width=900, height=280)
    return (f"{chart}<p class='muted'>Blue: the label-free estimate of each day's batch with its "
            "interval (shaded); purple: the realized metric on the labelled trailing window, "
            "once labels arrived (red ring: concept drift); green: the reference level (the "
            "model on its test split); red dashes: the tolerance boundary; red: days whose "
            "estimate was flagged. Drift below explains why the inputs moved.</p>")


def _estimated_cell(d: dict[str, Any]) -> str:
    if d.get("estimated_metric") is None:
        status = d.get("estimated_status")
        return (f'<span class="muted">{e(status) if status else "no estimate"}</span>')
    text = (f"{e(d.get('watched_metric'))} "
            + interval({"value": d.get("estimated_metric"), "low": d.get("estimated_low"),
                        "high": d.get("estimated_high")}, inline=True))
    if d.get("estimated_flagged"):
        text += " " + badge("flagged")
    reliability = svg.finite(d.get("reliability"))
    if reliability is not None:
        text += f'<div class="muted">reliability {100 * reliability:.0f}%</div>'
    return text


def _realized_cell(d: dict[str, Any]) -> str:
    if d.get("realized_metric") is None:
        return '<span class="muted">no labels</span>'
    metric = d.get("performance_metric") or d.get("watched_metric")
    text = f"{e(metric)} {fmt(d.get('realized_metric'))}"
    if d.get("concept_drift") == "drift":
        text += " " + badge("flagged")
    if d.get("realized_reference") is not None:
        text += f'<div class="muted">test {fmt(d.get("realized_reference"))}</div>'
    return text


def _drift_table(view: dict[str, Any], base: str) -> str:
    rows = []
    for d in reversed(view["days"]):
        day = d.get("day")
        report = (f'<a href="{e(base)}drift/reports/{q(day)}">report</a>'
                  if d.get("has_report") else '<span class="muted">none</span>')
        if d.get("verdict") == "unreadable":
            rows.append(f"<tr><td>{e(day)}</td><td>{badge('unreadable')}</td>"
                        f"<td colspan=8 class=small>{e(d.get('error'))}</td></tr>")
            continue
        severity = d.get("severity")
        severity = "" if severity in (None, "none") else \
            " " + badge(severity, f"severity {severity}")
        drifted = d.get("drifted_features") or []
        retrain = d.get("retrain")
        blocked = d.get("blocked_by") or []
        retrain_html = badge("retrain", "retrain triggered") if retrain else badge("no retrain")
        if blocked:
            retrain_html += (f'<div class="small">blocked by: '
                             f'{e(", ".join(map(str, blocked)))}</div>')
        alert = (badge(d["alert"]) if d.get("alert")
                 else '<span class="muted">\u2013</span>')
        rows.append(
            f'<tr data-day="{e(day)}"><td><b>{e(day)}</b></td>'
            f"<td>{badge(d.get('verdict') or 'unavailable')}{severity}</td>"
            f'<td class="small estimated">{_estimated_cell(d)}</td>'
            f'<td class="small realized">{_realized_cell(d)}</td>'
            f"<td>{e(', '.join(map(str, drifted))) if drifted else '<span class=muted>none</span>'}"
            f'<div class="muted">{fmt(d.get("n_drifted"))} of {fmt(d.get("n_tested"))} tested'
            f"</div></td><td>{badge(d.get('prediction_drift') or 'unavailable')}</td>"
            f'<td>{retrain_html}</td><td class="alert">{alert}</td>'
            f"<td>v{e(d.get('model_version'))}</td><td>{report}</td></tr>")
    return ('<table id="drift-days"><tr><th>day</th><th>verdict</th><th>estimated</th>'
            "<th>realized</th><th>drifted features</th><th>prediction drift</th><th>retrain</th>"
            f"<th>alert</th><th>model</th><th>report</th></tr>{''.join(rows)}</table>")


def drift_page(view: dict[str, Any], *, base: str = "") -> str:
    title = "Drift history"
    if view.get("message"):
        body = (f"<h1>{title}</h1><div class='box empty' data-state=\"empty\">"
                f"{e(view['message'])}</div>")
        return layout(title, body, base=base, active="drift", context=_context(view))
    days_all = view["days"]
    days = [str(d.get("day")) for d in days_all]
    n_drift = sum(1 for d in days_all if d.get("verdict") == "drift")
    n_retrain = sum(1 for d in days_all if d.get("retrain"))
    n_flagged = sum(1 for d in days_all if d.get("estimated_flagged"))
    last = days_all[-1]
    estimate = (f" \u00b7 <b>{n_flagged}</b> with the estimated performance flagged"
                if any(d.get("estimated_metric") is not None for d in days_all) else "")
    body = (
        f"<h1>{title}</h1>"
        f'<div class="box">{len(days)} checked day(s), {e(days[0])} \u2192 {e(days[-1])} '
        f"\u00b7 <b>{n_drift}</b> with drift{estimate} \u00b7 <b>{n_retrain}</b> retrain(s) "
        f"triggered \u00b7 last day {badge(last.get('verdict') or 'unavailable')}</div>"
        f"<h2>Model performance over time</h2>{_performance_section(days_all)}"
        f"<h2>Why the inputs moved: effect size per feature over time</h2>"
        f"{_effect_section(view, days)}"
        f"<h2>Checked days</h2>{_drift_table(view, base)}"
        f'<p class="muted">JSON: {api_link(base, view["model_name"], "drift", "drift history")}'
        "</p>"
    )
    return layout(title, body, base=base, active="drift", context=_context(view))
