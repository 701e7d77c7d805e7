"""Data loading: formats, headerless files, folders/globs, schema enforcement, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import make_config_dict, make_table
from ml_lifecycle.config import config_from_dict
from ml_lifecycle.data import ensure_inside_roots, load_table
from ml_lifecycle.errors import DataError, PathNotAllowedError


def _cfg(path: Path, **kw):
    return config_from_dict(make_config_dict(str(path), "r", **kw))


def test_csv_parquet_and_folder(tmp_path: Path) -> None:
    table = make_table(200)
    table.to_csv(tmp_path / "a.csv", index=False)
    table.to_parquet(tmp_path / "b.parquet", index=False)
    csv = load_table(_cfg(tmp_path / "a.csv").data)
    pq = load_table(_cfg(tmp_path / "b.parquet").data)
    both = load_table(_cfg(tmp_path).data)
    assert len(csv) == len(pq) == 200 and len(both) == 400
    np.testing.assert_allclose(csv["x1"], pq["x1"])
    glob = load_table(_cfg(tmp_path / "*.csv").data)
    assert len(glob) == 200


def test_headerless_file_takes_names_from_config(tmp_path: Path) -> None:
    table = make_table(50)
    path = tmp_path / "noheader.data"
    table.to_csv(path, index=False, header=False)
    cfg = _cfg(path, data__columns=list(table.columns))
    frame = load_table(cfg.data)
    assert list(frame.columns[:6]) == list(table.columns[:6]) and len(frame) == 50


def test_numeric_column_with_text_names_column_and_sample(tmp_path: Path) -> None:
    table = make_table(50).astype({"x1": object})
    table.loc[7, "x1"] = "twelve"
    table.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=r"column 'x1' is declared numeric.*'twelve'"):
        load_table(_cfg(tmp_path / "t.csv").data)


def test_missing_target_and_empty_file(tmp_path: Path) -> None:
    make_table(50).drop(columns=["label"]).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=r"missing column\(s\) \['label'\]"):
        load_table(_cfg(tmp_path / "t.csv").data)
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(DataError, match="is empty"):
        load_table(_cfg(tmp_path / "e.csv").data)
    (tmp_path / "h.csv").write_text("x1,x2,cat,merchant,label\n")
    with pytest.raises(DataError, match="no rows"):
        load_table(_cfg(tmp_path / "h.csv").data)


def test_sentinels_and_infinities_become_missing(tmp_path: Path) -> None:
    table = make_table(100)
    table.loc[:9, "x1"] = 0.0
    table.loc[10, "x2"] = np.inf
    table.to_csv(tmp_path / "t.csv", index=False)
    frame = load_table(_cfg(tmp_path / "t.csv", data__sentinels={"x1": [0]}).data)
    assert frame["x1"].isna().sum() == 10
    assert np.isnan(frame.loc[10, "x2"])
    assert frame.attrs["sentinel_counts"] == {"x1": 10}
    assert frame.attrs["nonfinite_counts"] == {"x2": 1}


def test_duplicated_column_names_and_bad_encoding(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("x1,x1,x2,cat,merchant,label\n1,2,3,a,m,0\n")
    with pytest.raises(DataError, match="duplicated column names"):
        load_table(_cfg(tmp_path / "d.csv").data)
    (tmp_path / "latin.csv").write_bytes("x1,x2,cat,merchant,label\n1,2,caf\xe9,m,0\n"
                                         .encode("latin-1"))
    with pytest.raises(DataError, match="not utf-8 text"):
        load_table(_cfg(tmp_path / "latin.csv").data)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_table(_cfg(tmp_path / "nope.csv").data)
    with pytest.raises(DataError, match="matched no file"):
        load_table(_cfg(tmp_path / "*.csv").data)


def test_categories_are_strings_with_nan(tmp_path: Path) -> None:
    table = pd.DataFrame({"x1": [1.0, 2.0], "x2": [1.0, 2.0], "cat": [3, None],
                          "merchant": ["m", "n"], "label": [0, 1]})
    table.to_csv(tmp_path / "t.csv", index=False)
    frame = load_table(_cfg(tmp_path / "t.csv").data)
    assert frame["cat"].iloc[0] == "3" and pd.isna(frame["cat"].iloc[1])


def test_paths_from_run_input_must_stay_inside_roots(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (root / "ok.csv").write_text("x")
    assert ensure_inside_roots(str(root / "ok.csv"), [str(root)]).endswith("ok.csv")
    with pytest.raises(PathNotAllowedError):
        ensure_inside_roots(str(root / ".." / "secret.csv"), [str(root)])
    with pytest.raises(PathNotAllowedError):
        ensure_inside_roots("/etc/passwd", [str(root)])
    (root / "link").symlink_to("/etc")
    with pytest.raises(PathNotAllowedError):
        ensure_inside_roots(str(root / "link" / "passwd"), [str(root)])
    with pytest.raises(PathNotAllowedError, match="data_roots is empty"):
        ensure_inside_roots(str(root / "ok.csv"), [])
