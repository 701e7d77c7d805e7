"""Hostile and broken input, through the CLI and the Python API.

Every case gets a clear message naming the key, file or column (CLI: exit code 2, ``error: ...``
on stderr, never ``Traceback`` or ``internal error``, never exit code 1), or is handled; and none
changes the champion or any stored artifact (the registry tree is hashed before and after).

Property-based (hypothesis) where the input space is large: every config key with hostile values
(NaN, inf, huge, negative, wrong types, long strings), arbitrary YAML documents, arbitrary cell
values in data files, and mutated drift-check batches. A one-off sweep of *every* config key
with 16 hostile values each (3,232 CLI runs, recorded in CHANGELOG.md) found the bugs fixed
with these tests: unknown id column, unknown encoding, negative or huge seeds, invalid
``preprocess.min_frequency``, unknown ``evaluation.primary_metric``, a huge ``data.skip_rows``
(MemoryError), a huge ``evaluation.importance_repeats`` (hang), huge day counts in the policy
(OverflowError), YAML alias bombs (MemoryError) and deep nesting (RecursionError), and feature
values near the float64 maximum (a misleading "model.params rejected").
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from conftest import PROJECT_ROOT, make_config_dict, make_table
from ml_lifecycle import cli
from ml_lifecycle.config import Config, config_from_dict, load_config
from ml_lifecycle.data import load_table
from ml_lifecycle.errors import ConfigError, DataError, MLLifecycleError
from ml_lifecycle.registry import Registry

pytestmark = pytest.mark.slow

FAST = {
    "quality__min_rows": 50, "model__max_iter": 10, "model__patience": 3,
    "evaluation__bootstrap": 10, "evaluation__importance_repeats": 1, "gate__bootstrap": 50,
    "policy__cooldown_days": 0,
}
FEATURES = ["x1", "x2", "cat", "merchant"]
HOSTILE_VALUES = ["-1", "0", "1e308", ".nan", ".inf", "-.inf", "99999999999999999999999",
                  "''", "abc", "[]", "{}", "null", "true", "[1, a]", "{a: 1}", "x" * 3000]
CLI_ENV = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "include"), "OMP_NUM_THREADS": "1"}


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A champion trained on a small table, its config file, and a good batch."""
    from ml_lifecycle.train import run_training

    base = tmp_path_factory.mktemp("hostile")
    table = make_table(300, seed=1)
    table.to_csv(base / "train.csv", index=False)
    raw = make_config_dict(str(base / "train.csv"), str(base / "registry"), **FAST)
    config = base / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    assert run_training(config_from_dict(raw), reason="champion")["promoted"]
    batch = make_table(400, seed=2).drop(columns=["label"])
    batch.to_csv(base / "batch.csv", index=False)
    return {"base": base, "raw": raw, "config": config, "table": table, "batch": batch,
            "root": base / "registry"}


def snapshot(root: Path, *, with_monitoring: bool = True) -> dict[str, str]:
    """sha256 of every file under the registry root (the lock file aside)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".lock"
            and (with_monitoring or "monitoring" not in p.relative_to(root).parts)}


def run_cli(*argv: str) -> tuple[int, str, str]:
    """``python -m ml_lifecycle`` in this process (same code path as the entry point)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def assert_clean_failure(code: int, err: str, *named: str, expected: int = 2) -> None:
    assert code == expected, (code, err)
    assert err.startswith("error: "), err
    assert "Traceback" not in err and "internal error" not in err
    for thing in named:
        assert thing in err, (thing, err)


def write(path: Path, data: str | bytes) -> Path:
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return path


# ---------------------------------------------------------------------------- config


def _leaf_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += _leaf_keys(annotation, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


CONFIG_KEYS = [k for k in _leaf_keys(Config) if k not in ("data.path", "registry.root")]


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(CONFIG_KEYS), value=st.sampled_from(HOSTILE_VALUES))
def test_any_config_key_with_a_hostile_value(world: dict[str, Any], key: str,
                                             value: str) -> None:
    before = snapshot(world["root"])
    code, _, err = run_cli("train", "--config", str(world["config"]), "--set", f"{key}={value}",
                           "--no-promote")
    assert code in (0, 2, 3), (key, value, code, err)
    assert "Traceback" not in err and "internal error" not in err
    if code == 2:
        assert err.startswith("error: ")
        assert snapshot(world["root"]) == before, (key, value)
    assert Registry(world["root"]).champion() == 1


@pytest.mark.parametrize("override,named", [
    ("split.seed=-1", "split.seed"),
    ("model.seed=99999999999999999999", "model.seed"),
    ("data.encoding=klingon", "data.encoding"),
    ("data.id_column=no_such_column", "data.id_column 'no_such_column'"),
    ("data.time_column=no_such_column", "data.time_column 'no_such_column'"),
    ("data.skip_rows=99999999999999999999", "data.skip_rows"),
    ("preprocess.min_frequency=0", "preprocess.min_frequency"),
    ("preprocess.min_frequency=2.5", "preprocess.min_frequency"),
    ("evaluation.primary_metric=accuracyy", "evaluation.primary_metric 'accuracyy'"),
    ("evaluation.importance_repeats=99999999999", "evaluation.importance_repeats"),
    ("policy.budget_period_days=1e308", "policy.budget_period_days"),
    ("lifecycle.label_delay_days=99999999999", "lifecycle.label_delay_days"),
    ("model.max_iter=.nan", "model.max_iter"),
    ("split.train=.inf", "split.train"),
    ("gate.floors=[1, 2]", "gate.floors"),
    ("model.famliy=ridge", "model.famliy: unknown key"),
    ("task.x=1", "'task' is a value"),
    ("novalue", "expected dotted.key=value"),
    ("data.path=[unclosed", "not valid YAML"),
    ("model.params=" + "[" * 5000 + "]" * 5000, "nested"),
])
def test_bad_overrides_are_named(world: dict[str, Any], override: str, named: str) -> None:
    before = snapshot(world["root"])
    code, _, err = run_cli("train", "--config", str(world["config"]), "--set", override)
    assert_clean_failure(code, err, named)
    assert snapshot(world["root"]) == before


def _billion_laughs() -> str:
    text, previous = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n', "a"
    for name in "bcdefghi":
        text += f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]\n"
        previous = name
    return text


@pytest.mark.parametrize("content,named", [
    ("task: [unclosed\n", "not valid YAML"),
    ("- just\n- a list\n", "expected a mapping"),
    ("", "is empty"),
    ("task: classification\n".encode("utf-16"), "not UTF-8"),
    (b"\x00\x01\x02\xff\xfe", "not UTF-8"),
    (_billion_laughs(), "YAML aliases"),
    ("a:\n" + "".join("  " * i + "b:\n" for i in range(1, 400)), "nested"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
])
def test_broken_config_files_are_named(tmp_path: Path, content: str | bytes,
                                       named: str) -> None:
    path = write(tmp_path / "broken.yaml", content)
    code, _, err = run_cli("train", "--config", str(path))
    assert_clean_failure(code, err, str(path), named)


_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                     st.text(max_size=20))
_documents = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(["task", "data", "path", "split", "model", "registry",
                                         "features", "numeric", "target", "root", "strategy",
                                         "x"]) | st.text(max_size=8), children, max_size=5)),
    max_leaves=25)


@settings(max_examples=150, deadline=None)
@given(document=_documents)
def test_any_yaml_document_gives_a_config_or_a_config_error(document: Any) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.yaml"
        path.write_text(yaml.safe_dump(document))
        try:
            load_config(path)
        except ConfigError:
            pass


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=200))
def test_any_text_as_a_config_file_gives_a_config_error(text: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            load_config(path)
        except ConfigError:
            pass


# ---------------------------------------------------------------------------- data files


def _bad_training_files(folder: Path, table: pd.DataFrame) -> dict[str, tuple[Path, str]]:
    """name -> (file, what the message must name)."""
    good = table.to_csv(index=False)
    header = ",".join(table.columns) + "\n"
    typechange = folder / "typechange"
    typechange.mkdir()
    table.head(150).to_csv(typechange / "a.csv", index=False)
    table.tail(150).assign(x1="twelve").to_csv(typechange / "b.csv", index=False)
    colchange = folder / "colchange"
    colchange.mkdir()
    table.head(150).to_csv(colchange / "a.csv", index=False)
    table.tail(150).rename(columns={"x2": "x3"}).to_csv(colchange / "b.csv", index=False)
    cases = {
        "empty": ("", "is empty"),
        "header only": (header, "no rows"),
        "one row": (header + good.splitlines()[1] + "\n", "min_rows"),
        "latin-1": (good.replace(",a,", ",caf\xe9,", 3).encode("latin-1"), "not utf-8"),
        "utf-16": (good.encode("utf-16"), "not utf-8"),
        "binary": (bytes(range(256)) * 20, "cannot be read"),
        "ragged": (good + "1,2,3,4,5,6,7,8,9\n", "cannot be read"),
        "duplicated columns": (good.replace("x2", "x1", 1), "duplicated column names"),
        "text in numeric": (table.astype({"x1": object}).assign(
            x1=lambda d: d["x1"].where(d.index != 7, "12,5")).to_csv(index=False), "'x1'"),
        "huge values": (table.assign(x1=1e308).to_csv(index=False), "'x1' (up to 1e+308)"),
        "all-missing feature": (table.assign(x2=np.nan).to_csv(index=False), "'x2'"),
        "all inf": (table.assign(x2=np.inf).to_csv(index=False), "'x2'"),
        "one class": (table.assign(label=1).to_csv(index=False), "'label'"),
        "three classes": (table.assign(label=np.arange(300) % 3).to_csv(index=False),
                          "'label'"),
        "unparseable time": (table.assign(ts="soon").to_csv(index=False), "'ts'"),
        "missing target": (table.drop(columns=["label"]).to_csv(index=False), "['label']"),
    }
    files = {name: (write(folder / f"{i}.csv", data), named)
             for i, (name, (data, named)) in enumerate(cases.items())}
    files["columns change type between files"] = (typechange, "'twelve'")
    files["columns change between files"] = (colchange, "['x2']")
    return files


def test_broken_training_files_are_named_and_change_nothing(world: dict[str, Any],
                                                             tmp_path: Path) -> None:
    before = snapshot(world["root"])
    for name, (path, named) in _bad_training_files(tmp_path, world["table"]).items():
        code, _, err = run_cli("train", "--config", str(world["config"]), "--set",
                               f"data.path={path}")
        assert_clean_failure(code, err, named)
        assert snapshot(world["root"]) == before, name


_cells = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**30, 10**30),
    st.sampled_from(["", "NA", "nan", "inf", "-inf", "1e999", "0x1F", "1_000", "1,5", "\u00a0",
                     "é", "🙂", "None", "null", "TRUE", " 3 ", "\t"]),
    st.text(max_size=12))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(column=st.sampled_from(["x1", "x2", "cat", "merchant"]),
       cells=st.lists(_cells, min_size=1, max_size=30))
def test_any_cells_load_with_the_declared_types_or_fail_clearly(
    world: dict[str, Any], tmp_path: Path, column: str, cells: list[Any],
) -> None:
    table = world["table"].head(len(cells)).copy().astype({column: object})
    table[column] = cells
    path = tmp_path / "cells.csv"
    table.to_csv(path, index=False)
    try:
        frame = load_table(config_from_dict(world["raw"]).data, str(path))
    except DataError as exc:
        assert "cells.csv" in str(exc)
        return
    for name in ("x1", "x2"):
        values = frame[name].to_numpy()
        assert values.dtype == np.float64 and not np.isinf(values).any()
    for name in ("cat", "merchant"):
        assert all(isinstance(v, str) or (isinstance(v, float) and np.isnan(v))
                   for v in frame[name])


def test_a_parquet_file_with_the_wrong_types_is_named(world: dict[str, Any],
                                                      tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    world["table"].assign(x1=world["table"]["x1"].astype(str) + "kg").to_parquet(path)
    code, _, err = run_cli("train", "--config", str(world["config"]), "--set",
                           f"data.path={path}")
    assert_clean_failure(code, err, "'x1'", "declared numeric")


# ---------------------------------------------------------------------------- batches


def _bad_batches(folder: Path, batch: pd.DataFrame) -> dict[str, tuple[Path, str]]:
    typechange = folder / "typechange"
    typechange.mkdir()
    batch.head(200).to_csv(typechange / "a.csv", index=False)
    batch.tail(200).assign(x2="n/a-text").to_csv(typechange / "b.csv", index=False)
    cases = {
        "empty": ("", "is empty"),
        "header only": (",".join(batch.columns) + "\n", "no rows"),
        "missing column": (batch.drop(columns=["merchant"]).to_csv(index=False),
                           "['merchant']"),
        "missing id column": (batch.drop(columns=["row_id"]).to_csv(index=False),
                              "['row_id']"),
        "duplicated columns": (batch.to_csv(index=False).replace("x2", "x1", 1),
                               "duplicated column names"),
        "latin-1": (batch.to_csv(index=False).replace(",a,", ",\xe9,", 2).encode("latin-1"),
                    "not utf-8"),
        "text in numeric": (batch.assign(x1="high").to_csv(index=False), "'x1'"),
    }
    files = {name: (write(folder / f"b{i}.csv", data), named)
             for i, (name, (data, named)) in enumerate(cases.items())}
    files["columns change type between files"] = (typechange, "'n/a-text'")
    return files


def test_broken_batches_are_named_by_the_drift_check_and_scoring(world: dict[str, Any],
                                                                 tmp_path: Path) -> None:
    from ml_lifecycle.lifecycle import score_batch

    cfg = config_from_dict(world["raw"])
    before = snapshot(world["root"])
    for name, (path, named) in _bad_batches(tmp_path, world["batch"]).items():
        code, _, err = run_cli("check-drift", "--config", str(world["config"]), "--batch",
                               str(path), "--day", "2026-07-01")
        assert_clean_failure(code, err, named)
        # the DAG's scoring task reads <batches>/<day>.csv with the same loader
        if path.is_file():
            day_cfg = cfg.model_copy(deep=True)
            day_cfg.lifecycle.batches = str(tmp_path / name.replace(" ", "_"))
            day_cfg.lifecycle.predictions = str(tmp_path / "predictions")
            Path(day_cfg.lifecycle.batches).mkdir()
            os.link(path, Path(day_cfg.lifecycle.batches) / "2026-07-01.csv")
            with pytest.raises(DataError, match=named.replace("[", r"\[").replace("]", r"\]")
                               .replace("(", r"\(")):
                score_batch(day_cfg, "2026-07-01")
        assert snapshot(world["root"]) == before, name
    assert not (tmp_path / "predictions").exists()


@pytest.mark.parametrize("day,named", [("yesterday", "'yesterday'"), ("2026-02-30", "2026-02-30"),
                                       ("0001-01-01", "outside the years"),
                                       ("9999-12-31", "outside the years")])
def test_bad_days_are_named(world: dict[str, Any], day: str, named: str) -> None:
    code, _, err = run_cli("check-drift", "--config", str(world["config"]), "--batch",
                           str(world["base"] / "batch.csv"), "--day", day)
    assert_clean_failure(code, err, named)


def test_small_empty_ish_and_ten_times_larger_batches_are_handled(world: dict[str, Any],
                                                                   tmp_path: Path) -> None:
    batch = world["batch"]
    cases = {
        "one row": (batch.head(1), "insufficient_data"),
        "two rows": (batch.head(2), "insufficient_data"),
        "10x the usual size": (pd.concat([batch] * 10, ignore_index=True), None),
        "all features missing": (batch.assign(x1=np.nan, x2=np.nan, cat=np.nan,
                                              merchant=np.nan), None),
        "infinities": (batch.assign(x2=np.inf), None),
        "huge values": (batch.assign(x1=np.where(np.arange(len(batch)) % 2, 1e308, -1e308)),
                        None),
        "unseen categories": (batch.assign(cat="never-seen"), None),
        "extra columns": (batch.assign(extra="x", label=1), None),
    }
    versions = snapshot(world["root"], with_monitoring=False)
    for offset, (name, (frame, verdict)) in enumerate(cases.items()):
        path = tmp_path / f"{offset}.csv"
        frame.to_csv(path, index=False)
        code, out, err = run_cli("check-drift", "--config", str(world["config"]), "--batch",
                                 str(path), "--day", f"2026-08-{offset + 1:02d}", "--json")
        assert code in (0, 4), (name, code, err)
        result = json.loads(out)
        assert result["batch"]["n_rows"] == len(frame)
        if verdict:
            assert result["verdict"] == verdict, name
    assert snapshot(world["root"], with_monitoring=False) == versions  # models untouched
    assert Registry(world["root"]).champion() == 1


_mutations = st.sampled_from(["nan", "inf", "-inf", "huge", "tiny", "text", "new_category",
                              "empty_string", "negative_zero"])


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(column=st.sampled_from(FEATURES), mutation=_mutations,
       share=st.floats(min_value=0.0, max_value=1.0), rows=st.integers(1, 400))
def test_mutated_batches_give_a_result_or_a_data_error(
    world: dict[str, Any], tmp_path: Path, column: str, mutation: str, share: float, rows: int,
) -> None:
    from ml_lifecycle.drift.check import run_drift_check

    frame = world["batch"].head(rows).copy().astype({column: object})
    mask = np.random.default_rng(rows).random(rows) < share
    value = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "huge": 1e308, "tiny": 5e-324,
             "text": "lots", "new_category": "zzz", "empty_string": "",
             "negative_zero": -0.0}[mutation]
    frame.loc[mask, column] = value
    path = tmp_path / "mutated.csv"
    frame.to_csv(path, index=False)
    versions = snapshot(world["root"], with_monitoring=False)
    cfg = config_from_dict(world["raw"])
    try:
        result = run_drift_check(cfg, batch_path=str(path), day="2026-09-01")
    except DataError as exc:
        assert "mutated.csv" in str(exc)
    else:
        assert result["verdict"] in ("drift", "no_drift", "insufficient_data")
        json.dumps(result, allow_nan=False)  # the stored result is strict JSON
    assert snapshot(world["root"], with_monitoring=False) == versions


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(column=st.sampled_from(["x1", "x2"]), mutation=_mutations,
       share=st.floats(min_value=0.0, max_value=1.0))
def test_training_on_mutated_data_registers_a_sound_version_or_changes_nothing(
    world: dict[str, Any], tmp_path: Path, column: str, mutation: str, share: float,
) -> None:
    from ml_lifecycle.train import run_training

    frame = world["table"].copy().astype({column: object})
    mask = np.random.default_rng(3).random(len(frame)) < share
    frame.loc[mask, column] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "huge": 1e200,
                               "tiny": 5e-324, "text": "lots", "new_category": "zzz",
                               "empty_string": "", "negative_zero": -0.0}[mutation]
    path = tmp_path / "mutated.csv"
    frame.to_csv(path, index=False)
    raw = json.loads(json.dumps(world["raw"]))
    raw["data"]["path"] = str(path)
    reg = Registry(world["root"])
    before = snapshot(world["root"])
    try:
        result = run_training(config_from_dict(raw), promote=False)
    except MLLifecycleError:
        assert snapshot(world["root"]) == before
    else:
        reg.verify(result["version"])
        assert reg.load_model(result["version"]).predict_proba(world["batch"]).shape[1] == 2
    assert reg.champion() == 1


# ---------------------------------------------------------------------------- other commands


@pytest.mark.parametrize("argv,named,expected", [
    (["models", "promote", "99"], "unknown version 99", 2),
    (["models", "promote", "0"], "positive integer", 2),
    (["models", "promote"], "give the version", 2),
    (["models", "rollback", "1"], "already the champion", 2),
    (["models", "show", "999"], "unknown version 999", 2),
])
def test_bad_models_commands_are_named(world: dict[str, Any], argv: list[str], named: str,
                                       expected: int) -> None:
    before = snapshot(world["root"])
    code, _, err = run_cli(*argv, "--config", str(world["config"]))
    assert_clean_failure(code, err, named, expected=expected)
    assert snapshot(world["root"]) == before


def test_the_real_process_prints_no_traceback(world: dict[str, Any], tmp_path: Path) -> None:
    """A few of the cases above through ``python -m ml_lifecycle`` (separate processes)."""
    empty = write(tmp_path / "empty.csv", "")
    bomb = write(tmp_path / "bomb.yaml", _billion_laughs())
    config = str(world["config"])
    cases = [
        (["train", "--config", config, "--set", "split.seed=-1"], 2, "split.seed"),
        (["train", "--config", config, "--set", "data.encoding=klingon"], 2, "data.encoding"),
        (["train", "--config", config, "--set", f"data.path={empty}"], 2, "is empty"),
        (["train", "--config", str(bomb)], 2, "YAML aliases"),
        (["train", "--config", config, "--bogus-flag"], 2, ""),
        (["check-drift", "--config", config, "--batch", str(empty), "--day", "2026-07-01"], 2,
         "is empty"),
        (["models", "promote", "abc", "--config", config], 2, ""),
    ]
    before = snapshot(world["root"])
    processes = [subprocess.Popen([sys.executable, "-m", "ml_lifecycle", *argv], env=CLI_ENV,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for argv, _, _ in cases]
    for (argv, expected, named), process in zip(cases, processes, strict=True):
        _, err = process.communicate(timeout=120)
        assert process.returncode == expected, (argv, process.returncode, err)
        assert "Traceback" not in err and "internal error" not in err, err
        assert named in err
    assert snapshot(world["root"]) == before
