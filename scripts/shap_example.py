"""Write ``docs/img/shap-adult-row.svg``: the SHAP explanation of one prediction on UCI Adult.

Trains ``configs/adult.yaml`` (the project's own ``run_training``, in a temporary registry),
explains the person among the first 200 of ``adult.test`` whose predicted probability is
closest to 0.75, and draws each input's contribution (log-odds) with its value.
``docs/how-to/explanations.md`` shows the picture; rerun this script to regenerate it::

    PYTHONPATH=include .venv/bin/python scripts/shap_example.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "img" / "shap-adult-row.svg"


def main() -> int:
    from ml_lifecycle import charts
    from ml_lifecycle.config import load_config
    from ml_lifecycle.data import load_table
    from ml_lifecycle.registry import Registry
    from ml_lifecycle.shap_explain import BACKGROUND_FILE, ShapExplainer
    from ml_lifecycle.train import run_training

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(ROOT / "configs" / "adult.yaml", [f"registry.root={tmp}/registry"])
        out = run_training(cfg, reason="SHAP example")
        registry = Registry(cfg.registry.root)
        version = out["version"]
        pipeline = registry.load_model(version)
        background = pd.read_parquet(registry.version_dir(version) / BACKGROUND_FILE)
        test_cfg = cfg.data.model_copy(update={"path": str(Path(cfg.data.path).with_name(
            "adult.test"))})
        people = load_table(test_cfg, test_cfg.path, require_target=False).head(200)
        proba = pipeline.predict_proba(people[cfg.data.features.all])[:, 1]
        row = people.iloc[[int(np.argmin(np.abs(proba - 0.75)))]].reset_index(drop=True)
        explainer = ShapExplainer(cfg, pipeline, background).fit()
        explanation = explainer.explain(row)
    values = explanation.values[0]
    order = np.argsort(-np.abs(values))
    labels = [f"{explanation.features[i]} = {row.iloc[0][explanation.features[i]]}"
              for i in order]
    p = float(pipeline.predict_proba(row[cfg.data.features.all])[0, 1])
    base = float(explanation.base_values[0])
    chart = charts.hbar_chart(
        labels, [values[i] for i in order], kind="shap-row", width=620, value_digits=3,
        label=f"SHAP contributions (log-odds) to one prediction: base {base:.2f}, "
              f"output {base + values.sum():.2f} (P(>50K) = {p:.2f})",
        colours=[charts.RED if values[i] > 0 else charts.BLUE for i in order])
    OUT.write_text(chart + "\n", encoding="utf-8")
    print(f"wrote {OUT} (model v{version}, P = {p:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
