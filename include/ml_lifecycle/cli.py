"""Command line: ``python -m ml_lifecycle <command>``.

Commands: ``train``, ``models list|show|promote|rollback``, ``simulate``, ``check-drift``,
``backtest``. Exit codes (``EXIT_CODES``; docs/reference/cli.md is generated from it): 0 ok / no
action; 2 invalid input, config or failed quality gate; 3 gate rejected the candidate (champion
unchanged); 4 drift check recommends a retrain; 5 a stored artifact failed its integrity check;
1 an unexpected internal error.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .errors import (
    EXIT_GATE_REJECTED,
    EXIT_INTEGRITY,
    EXIT_INVALID_INPUT,
    EXIT_OK,
    EXIT_RETRAIN_RECOMMENDED,
    MLLifecycleError,
)

EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130

#: Every exit code of the CLI and its meaning (the CLI reference is generated from it).
EXIT_CODES: dict[int, str] = {
    EXIT_OK: 'success: trained (promoted, or the champion kept), or drift check "no action"',
    EXIT_INVALID_INPUT: "invalid input: config, arguments, data, or a failed data-quality gate",
    EXIT_GATE_REJECTED: "`train`: the gate rejected the candidate (registered, not promoted; "
                        "champion unchanged)",
    EXIT_RETRAIN_RECOMMENDED: "`check-drift`: the retrain policy recommends a retrain",
    EXIT_INTEGRITY: "integrity: a stored model file does not match the sha256 in its card "
                    "(never loaded)",
    EXIT_INTERNAL: "an unexpected internal error (a bug: please report it)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}

#: Commands whose arguments are parsed by their own module's ``build_parser()``.
DELEGATED = ("simulate", "check-drift", "backtest")


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML config file")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a config value (repeatable; YAML)")


def _print_json(obj: Any) -> None:
    from .io import dumps_json

    sys.stdout.write(dumps_json(obj) + "\n")


def _fmt_metric(m: dict[str, float]) -> str:
    value, low, high = m.get("value"), m.get("low"), m.get("high")
    if value is None:
        return "n/a"
    if low is None or high is None or low != low or high != high:
        return f"{value:.4f}"
    return f"{value:.4f} [{low:.4f}, {high:.4f}]"


def _train(args: argparse.Namespace) -> int:
    from .config import load_config
    from .train import run_training

    cfg = load_config(args.config, args.overrides)
    result = run_training(cfg, reason=args.reason, promote=not args.no_promote, actor="cli")
    if args.json:
        _print_json(result)
        return int(result["exit_code"])
    gate = result["gate"]
    lines = [
        f"model {cfg.name} ({cfg.task}, {cfg.model.family}) -> version v{result['version']}",
        f"rows per split: {result['rows_per_split']}",
        f"early stopping / iterations: {result['stopping_iteration']}",
    ]
    if cfg.task == "classification":  # multiclass: the most probable class, no threshold
        lines.append(f"decision threshold (chosen on validation): {result['threshold']:.4f}")
    lines.append("test metrics (95% bootstrap interval):")
    for name, m in result["metrics"].items():
        base = result["baseline_metrics"].get(name)
        base_txt = f"   baseline {base:.4f}" if isinstance(base, float) and base == base else ""
        lines.append(f"  {name:>18}: {_fmt_metric(m)}{base_txt}")
    top = list(result["importances"].items())[:5]
    lines.append("top permutation importances (validation): "
                 + ", ".join(f"{k}={v:.4f}" for k, v in top))
    if result["leak_suspects"]:
        lines.append(f"WARNING target-leak suspects: {result['leak_suspects']}")
    lines.append(f"gate: {'PASSED' if gate['passed'] else 'REJECTED'}")
    for rule in gate["rules"]:
        lines.append(f"  [{'ok' if rule['passed'] else 'FAIL'}] {rule['detail']}")
    if result["promoted"]:
        lines.append(f"promoted v{result['version']} to champion "
                     f"(was {result['champion_before']})")
    else:
        lines.append(f"champion unchanged: v{result['champion_after']}")
    mlflow = (result.get("tracking") or {}).get("mlflow")
    if mlflow:
        logged, registered = mlflow["logged"], mlflow["registered"]
        if logged.get("status") == "logged":
            lines.append(f"MLflow: run {logged['run_id']} in '{logged['experiment']}' "
                         f"({logged['tracking_uri']})"
                         + (f", model version {registered['version']}"
                            if registered.get("status") == "registered" else ""))
    print("\n".join(lines))
    for warning in (mlflow or {}).get("warnings") or []:
        print(f"warning: {warning}", file=sys.stderr)
    return int(result["exit_code"])


def _registry_from_args(args: argparse.Namespace) -> Any:
    from .config import load_config, resolve_path
    from .registry import open_registry

    if args.registry:
        return open_registry(resolve_path(args.registry))
    if not args.config:
        raise MLLifecycleError("models: give --config F or --registry ROOT")
    return open_registry(load_config(args.config, args.overrides).registry.root)


def _models(args: argparse.Namespace) -> int:
    registry = _registry_from_args(args)
    if args.action == "list":
        versions = registry.list_versions()
        rows = [{
            "version": c.get("version"), "created_at": c.get("created_at"),
            "champion": c.get("is_champion", False),
            "reason": (c.get("trigger") or {}).get("reason"),
            "gate": (c.get("gate") or {}).get("passed"),
            "primary_metric": c.get("primary_metric"),
            "value": ((c.get("metrics") or {}).get(c.get("primary_metric") or "", {}) or {}).get(
                "value"),
            "vs_champion": _paired_comparison(c),
        } for c in versions]
        if args.json:
            _print_json({"versions": rows, "champion": registry.champion(),
                         "history": registry.history()})
            return EXIT_OK
        if not rows:
            print("no model trained yet")
        else:
            print("  (each version's metric is on its own test split; 'vs' is the gate's paired "
                  "comparison with the champion of its time, on the same rows)")
        for r in rows:
            mark = "*" if r["champion"] else " "
            val = f"{r['value']:.4f}" if isinstance(r["value"], float) else "n/a"
            vs = r["vs_champion"]
            versus = (f"  vs v{vs['champion']}: {vs['diff']:+.4f} (lower bound {vs['low']:+.4f})"
                      if vs and isinstance(vs.get("diff"), float) else "")
            print(f"{mark} v{r['version']:<4} {r['created_at']}  {r['primary_metric']}={val}"
                  f"{versus}  gate={'pass' if r['gate'] else 'reject'}  reason={r['reason']}")
        return EXIT_OK
    if args.action == "show":
        version = args.version if args.version is not None else registry.champion()
        if version is None:
            raise MLLifecycleError("models show: no champion yet; give a version")
        card = registry.get_card(version)
        if args.json:
            _print_json(card)
        else:
            print(card_summary(card, champion=registry.champion()))
        return EXIT_OK
    if args.action == "promote":
        if args.version is None:
            raise MLLifecycleError("models promote: give the version to promote")
        reason = _promotion_reason(registry, args)
        event = registry.promote(args.version, reason=reason, actor="cli")
    else:
        event = registry.rollback(args.version, reason=args.reason or "manual rollback",
                                  actor="cli")
    alias = _sync_mlflow(args, registry)
    if args.json:
        _print_json({**event, "mlflow": alias} if alias else event)
    else:
        print(f"{event['event']}: champion is now v{event['version']} "
              f"(was {event.get('previous')})")
        if alias and alias.get("status") == "aliased":
            print(f"MLflow: alias '{alias['alias']}' -> {alias['name']} version "
                  f"{alias['mlflow_version']}")
    if alias and alias.get("status") == "failed":
        print(f"warning: {alias['warning']}", file=sys.stderr)
    return EXIT_OK


def _sync_mlflow(args: argparse.Namespace, registry: Any) -> dict[str, Any] | None:
    """After ``models promote`` / ``rollback`` with a config: move the MLflow champion alias."""
    if not args.config:
        return None
    from .config import load_config
    from .mlflow_export import sync_champion

    return sync_champion(load_config(args.config, args.overrides), registry)


def _num(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "n/a"


def card_summary(card: dict[str, Any], champion: int | None = None) -> str:
    """A model card in a screenful: what, when, why, on which data, how good (with intervals
    and against the baseline), the gate with its paired comparison, the top importances."""
    data, model = card.get("data") or {}, card.get("model") or {}
    target = data.get("target") or {}
    curve = model.get("validation_curve") or {}
    version = card.get("version")
    lines = [
        f"v{version} of {card.get('name')} ({card.get('task')})"
        + ("  [champion]" if version == champion else ""),
        f"  created {card.get('created_at')}; reason: {(card.get('trigger') or {}).get('reason')}",
        f"  data: {data.get('rows_used')} rows {data.get('rows_per_split')}, time range "
        f"{data.get('time_range')}, target '{target.get('name')}'"
        + (f" (positive '{target.get('positive_label')}')" if target.get("positive_label")
           is not None else ""),
        f"  model: {model.get('family')}, {model.get('stopping_iteration')} iterations kept"
        + (f" (stopped at {curve['stopped_iteration']})" if "stopped_iteration" in curve
           else "") + f"; threshold {card.get('threshold')}",
        f"  test metrics (95 % interval; naive baseline), primary {card.get('primary_metric')}:",
    ]
    baseline = card.get("baseline_metrics") or {}
    for name, entry in (card.get("metrics") or {}).items():
        if isinstance(entry, dict) and isinstance(entry.get("value"), float):
            base = baseline.get(name)
            low, high = (entry.get(k) for k in ("low", "high"))
            lines.append(f"    {name:<18} {entry['value']:.4f} [{_num(low)}, {_num(high)}]"
                         + (f"  (baseline {base:.4f})" if isinstance(base, float) else ""))
    gate = card.get("gate") or {}
    lines.append(f"  gate: {'passed' if gate.get('passed') else 'REJECTED'}")
    for rule in gate.get("rules", []):
        lines.append(f"    [{'ok' if rule.get('passed') else 'no'}] {rule.get('detail')}")
    top = sorted((card.get("importances") or {}).items(), key=lambda kv: -kv[1])[:5]
    if top:
        lines.append("  top permutation importances: "
                     + ", ".join(f"{k} {v:.4f}" for k, v in top))
    lines.append("  (the whole card: models show --json)")
    return "\n".join(lines)


def _paired_comparison(card: dict[str, Any]) -> dict[str, Any] | None:
    """The gate's candidate - champion difference on the same test rows, from the card."""
    rule = next((r for r in (card.get("gate") or {}).get("rules", [])
                 if r.get("name") == "not_worse_than_champion"), None)
    if rule is None or card.get("champion_at_training") is None:
        return None
    low = rule.get("low")
    return {"champion": card["champion_at_training"], "diff": rule.get("value"),
            "low": float(low) if low is not None else float("nan"), "passed": rule.get("passed")}


def _promotion_reason(registry: Any, args: argparse.Namespace) -> str:
    """The reason recorded for a manual promotion; a version the gate rejected is promoted only
    with ``--force`` and a ``--reason`` (both recorded in the promotion history)."""
    gate = registry.get_card(args.version).get("gate") or {}
    if gate.get("passed") is not False:
        return args.reason or "manual promote"
    reasons = "; ".join(gate.get("reasons") or [])[:300]
    if not args.force or not args.reason.strip():
        raise MLLifecycleError(
            f"models promote: v{args.version} was rejected by the gate ({reasons}); promote it "
            "anyway only with --force and --reason 'why' (both are recorded in the history)")
    return f"forced over a gate rejection ({reasons}): {args.reason}"


def _score(args: argparse.Namespace) -> int:
    from .config import load_config
    from .lifecycle import score_file

    cfg = load_config(args.config, args.overrides)
    explain = cfg.lifecycle.explain_top_k if args.explain is None else args.explain
    summary = score_file(cfg, args.batch, args.out, explain=explain)
    if args.json:
        _print_json(summary)
    else:
        print(f"scored {summary['rows']} row(s) with champion v{summary['model_version']} -> "
              f"{summary['path']}")
    return 0


#: ``sample-data`` names -> (scikit-learn loader, target column); classes keep scikit-learn's
#: ``target_names``.
SAMPLE_DATA = {"wine": ("load_wine", "cultivar"), "digits": ("load_digits", "digit")}


def _sample_data(args: argparse.Namespace) -> int:
    """Write a scikit-learn bundled data set as a CSV with an id column and a named target."""
    import numpy as np
    from sklearn import datasets

    from .io import atomic_write_text

    loader, target = SAMPLE_DATA[args.name]
    bunch = getattr(datasets, loader)(as_frame=True)
    frame = bunch.frame.rename(columns={"target": target})
    frame[target] = np.asarray(bunch.target_names, dtype=object)[frame[target].to_numpy()]
    frame.insert(0, "row_id", [f"{args.name}_{i}" for i in range(len(frame))])
    atomic_write_text(args.out, frame.to_csv(index=False, lineterminator="\n"))
    print(f"wrote {len(frame)} rows x {frame.shape[1]} columns of '{args.name}' "
          f"(target '{target}', {frame[target].nunique()} classes) -> {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ml_lifecycle",
                                     description="train -> monitor -> retrain lifecycle")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="quality -> split -> train -> evaluate -> gate -> register")
    _add_config_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.add_argument("--reason", default="manual", help="why this run happens (model card)")
    p.add_argument("--no-promote", action="store_true", help="register without promoting")
    p.set_defaults(func=_train)
    m = sub.add_parser("models", help="list, show, promote or roll back model versions")
    m.add_argument("action", choices=["list", "show", "promote", "rollback"],
                   help="list the versions; show a version's card; promote a version to "
                        "champion; roll back to an earlier champion")
    m.add_argument("version", nargs="?", type=int,
                   help="version number (show: default the champion; promote: required; "
                        "rollback: default the champion before the current one)")
    m.add_argument("--config", help="YAML config file: its registry.root (and, after promote or "
                                    "rollback, its MLflow champion alias)")
    m.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable; YAML)")
    m.add_argument("--registry", help="registry root (instead of --config)")
    m.add_argument("--reason", default="",
                   help="why (recorded in the history; promote --force needs it)")
    m.add_argument("--force", action="store_true",
                   help="promote a version the gate rejected (needs --reason; recorded)")
    m.add_argument("--json", action="store_true", help="print JSON on stdout")
    m.set_defaults(func=_models)
    sc = sub.add_parser("score", help="score a batch file with the champion (what the scoring "
                                      "DAG writes: id, score, prediction, model_version)")
    _add_config_args(sc)
    sc.add_argument("--batch", required=True, help="batch file, folder or glob (CSV/Parquet)")
    sc.add_argument("--out", required=True, help="predictions CSV to write (atomically)")
    sc.add_argument("--json", action="store_true", help="print the summary as JSON")
    sc.add_argument("--explain", type=int, default=None, metavar="K",
                    help="add each row's K largest SHAP contributions (feature, value, "
                         "contribution); default lifecycle.explain_top_k (0: none)")
    sc.set_defaults(func=_score)
    ds = sub.add_parser("sample-data", help="write a data set that ships with scikit-learn "
                                            "as a CSV (the examples train on it)")
    ds.add_argument("name", choices=sorted(SAMPLE_DATA),
                    help="wine: 178 wines, 13 measurements, 3 cultivars (multiclass); "
                         "digits: 1,797 8x8 images of handwritten digits, 10 classes")
    ds.add_argument("--out", required=True, help="CSV file to write (atomically)")
    ds.set_defaults(func=_sample_data)
    for name in DELEGATED:
        sub.add_parser(name, help=f"see: python -m ml_lifecycle {name} --help", add_help=False)
    return parser


def delegated_parsers() -> dict[str, argparse.ArgumentParser]:
    """The parsers of the ``DELEGATED`` commands, built by their own modules."""
    from .backtest import build_parser as backtest_parser
    from .drift.check import build_parser as check_drift_parser
    from .simulate import build_parser as simulate_parser

    return {"simulate": simulate_parser(), "check-drift": check_drift_parser(),
            "backtest": backtest_parser()}


def _delegate(command: str, argv: list[str]) -> int:
    if command == "simulate":
        from .simulate import cli_main
    elif command == "check-drift":
        from .drift.check import cli_main
    else:
        from .backtest import cli_main
    return int(cli_main(argv))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in DELEGATED:
            return _delegate(argv[0], argv[1:])
        args = build_parser().parse_args(argv)
        return int(args.func(args))
    except MLLifecycleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except SystemExit as exc:  # argparse
        code = exc.code if isinstance(exc.code, int) else EXIT_INVALID_INPUT
        return EXIT_INVALID_INPUT if code not in (0,) else 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if type(exc).__module__.split(".")[0] in ("botocore", "aiobotocore", "aiohttp", "s3fs"):
            # a storage call outside the wrapped primitives: still a settings problem
            from .storage import ACCESS_HINT

            print(f"error: artifact store: {type(exc).__name__}: {exc}; {ACCESS_HINT}",
                  file=sys.stderr)
            return EXIT_INVALID_INPUT
        print(f"internal error: {type(exc).__name__}: {exc}\n(please report this with the "
              "command you ran)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
