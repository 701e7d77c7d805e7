"""Data loading: CSV and Parquet, one file or a folder/glob of batch files.

The loader enforces the declared schema (a numeric column with text in it is an error naming the
column and a sample value), turns declared sentinel values (e.g. ``0`` meaning "unknown") and
infinities into missing values, and records how many it converted in ``frame.attrs`` so the
quality report can show them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .errors import DataError, PathNotAllowedError
from .labels import apply_label_map, text_key

if TYPE_CHECKING:
    from .config import DataConfig

DATA_SUFFIXES = (".csv", ".parquet", ".pq", ".txt", ".data", ".test")


def list_files(path: str) -> list[Any]:
    """Expand a file, a folder (its data files, sorted) or a glob into a sorted list of files.

    ``path`` may be an fsspec URL (``s3://bucket/batches/*.parquet``): objects are listed the
    same way and returned as :class:`upath.UPath`.
    """
    from .storage import as_path, errors_named, exists, glob_files, has_glob, is_dir, list_folder

    with errors_named("listing data path", path):
        if has_glob(path):
            files = glob_files(path)
            if not files:
                raise DataError(f"data path '{path}': the glob matched no file")
            return files
        if is_dir(path):
            files = [f for f in list_folder(path) if Path(f.name).suffix.lower() in DATA_SUFFIXES]
            if not files:
                raise DataError(f"data path '{path}': the folder holds no .csv or .parquet file")
            return files
        if not exists(path):
            raise DataError(f"data path '{path}' does not exist")
    return [as_path(path)]


def _file_format(path: Path, declared: str) -> str:
    if declared != "auto":
        return declared
    return "parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv"


def read_file(path: Path, data_cfg: DataConfig) -> pd.DataFrame:
    """Read one file with the config's header/columns/NA settings (no type enforcement)."""
    from .storage import errors_named

    fmt = _file_format(path, data_cfg.format)
    # pandas reads a URL through fsspec; network and credential failures name the object
    with errors_named("reading data file", path):
        return _read_file(str(path), path, fmt, data_cfg)


def _read_file(source: Any, path: Any, fmt: str, data_cfg: DataConfig) -> pd.DataFrame:
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(source)
            if data_cfg.columns is not None and list(frame.columns) != data_cfg.columns:
                frame.columns = data_cfg.columns[: len(frame.columns)]
        else:
            frame = pd.read_csv(
                source,
                header=None if data_cfg.columns is not None else "infer",
                names=data_cfg.columns,
                na_values=data_cfg.na_values,
                keep_default_na=data_cfg.keep_default_na,
                skipinitialspace=True,
                skiprows=data_cfg.skip_rows or None,
                comment=data_cfg.comment,
                encoding=data_cfg.encoding,
                low_memory=False,
            )
    except UnicodeDecodeError as exc:
        raise DataError(
            f"data file '{path}' is not {data_cfg.encoding} text ({exc.reason}); "
            "set data.encoding"
        ) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"data file '{path}' is empty") from None
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        raise DataError(f"data file '{path}' cannot be read as {fmt}: {exc}") from None
    if frame.empty:
        raise DataError(f"data file '{path}' has a header but no rows")
    if frame.columns.duplicated().any():
        dups = sorted(set(frame.columns[frame.columns.duplicated()]))
        raise DataError(f"data file '{path}' has duplicated column names: {dups}")
    mangled = [c for c in frame.columns if isinstance(c, str) and _is_mangled_duplicate(c, frame)]
    if mangled:
        raise DataError(
            f"data file '{path}' has duplicated column names (pandas renamed them to {mangled})"
        )
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _is_mangled_duplicate(name: str, frame: pd.DataFrame) -> bool:
    # pandas renames a repeated header 'a' to 'a.1'; flag it when 'a' is also present.
    base, dot, suffix = name.rpartition(".")
    return bool(dot) and suffix.isdigit() and base in frame.columns


def _enforce_numeric(frame: pd.DataFrame, column: str, source: str) -> int:
    """Coerce a declared numeric column; raise naming a sample offending value. Returns #inf."""
    raw = frame[column]
    if pd.api.types.is_bool_dtype(raw):
        raw = raw.astype(float)
    if pd.api.types.is_numeric_dtype(raw):
        values = raw.astype("float64")
    else:
        as_text = raw.astype("string").str.strip()
        values = pd.to_numeric(as_text, errors="coerce").astype("float64")
        bad = as_text.notna() & values.isna()
        if bad.any():
            sample = as_text[bad].iloc[0]
            raise DataError(
                f"{source}: column '{column}' is declared numeric but holds text, e.g. "
                f"{sample!r} ({int(bad.sum())} such values); fix the data or declare it categorical"
            )
    arr = values.to_numpy(dtype="float64", copy=True)
    nonfinite = ~np.isfinite(arr) & ~np.isnan(arr)
    n_inf = int(nonfinite.sum())
    arr[nonfinite] = np.nan
    frame[column] = arr
    return n_inf


def _to_category_values(series: pd.Series) -> pd.Series:
    """Categorical features become object columns of str with np.nan for missing."""
    out = series.astype(object)
    mask = series.isna()
    out = out.map(text_key)
    out = out.astype(object)
    out[mask] = np.nan
    return out


def enforce_schema(
    frame: pd.DataFrame,
    data_cfg: DataConfig,
    *,
    source: str,
    require_target: bool = True,
) -> pd.DataFrame:
    """Check required columns, coerce declared types, apply sentinels and the label map."""
    derived = set(data_cfg.derived_time_features)
    required = [c for c in data_cfg.features.all if c not in derived]
    if derived and data_cfg.time_column:
        required.append(data_cfg.time_column)
    if data_cfg.id_column and not require_target:
        # a batch: its scored rows are named and joined with delayed labels by the id
        required.append(data_cfg.id_column)
    if require_target:
        required.append(data_cfg.target)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        shown = list(frame.columns)[:20]
        raise DataError(
            f"{source}: missing column(s) {missing}; the file has {shown}"
            + (" ..." if len(frame.columns) > 20 else "")
        )
    frame = frame.copy()
    if data_cfg.time_column and data_cfg.time_column in frame.columns:
        try:
            frame[data_cfg.time_column] = pd.to_datetime(frame[data_cfg.time_column])
        except (ValueError, TypeError) as exc:
            raise DataError(
                f"{source}: time column '{data_cfg.time_column}' is not a date/time ({exc})"
            ) from None
        stamps = frame[data_cfg.time_column].dt
        for name in derived:
            frame[name] = {
                "hour": stamps.hour, "day_of_week": stamps.day_of_week, "month": stamps.month,
                "day_of_year": stamps.day_of_year,
            }[name].astype("float64")
    sentinel_counts: dict[str, int] = {}
    nonfinite_counts: dict[str, int] = {}
    for column in data_cfg.features.numeric:
        n_inf = _enforce_numeric(frame, column, source)
        if n_inf:
            nonfinite_counts[column] = n_inf
    for column in data_cfg.features.categorical:
        frame[column] = _to_category_values(frame[column])
    for column, values in data_cfg.sentinels.items():
        if column not in frame.columns:
            raise DataError(f"data.sentinels names column '{column}', which {source} lacks")
        col = frame[column]
        if column in data_cfg.features.numeric:
            numeric_values = [float(v) for v in values if _is_number(v)]
            mask = col.isin(numeric_values)
        else:
            mask = col.isin([str(v) for v in values])
        count = int(mask.sum())
        if count:
            frame.loc[mask, column] = np.nan
        sentinel_counts[column] = count
    if data_cfg.target in frame.columns:
        target = frame[data_cfg.target]
        frame[data_cfg.target] = apply_label_map(target, data_cfg.label_map)
    frame.attrs["sentinel_counts"] = sentinel_counts
    frame.attrs["nonfinite_counts"] = nonfinite_counts
    return frame


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def load_table(
    data_cfg: DataConfig,
    path: str | None = None,
    *,
    require_target: bool = True,
) -> pd.DataFrame:
    """Load a file, folder or glob into one DataFrame with the declared schema enforced.

    Args:
        data_cfg: the ``data`` config section.
        path: overrides ``data_cfg.path`` (e.g. one day's batch).
        require_target: False for unlabelled batches.

    Returns:
        The concatenated frame; ``attrs`` holds ``files``, ``sentinel_counts``,
        ``nonfinite_counts``.

    Raises:
        DataError: missing/empty/unreadable file, missing column, wrong type.
    """
    source_path = path or data_cfg.path
    files = list_files(source_path)
    frames = []
    for file in files:
        raw = read_file(file, data_cfg)
        frames.append(enforce_schema(raw, data_cfg, source=f"data file '{file}'",
                                     require_target=require_target))
    if len(frames) == 1:
        frame = frames[0]
    else:
        _check_consistent_types(frames, files)
        counts = [f.attrs for f in frames]
        frame = pd.concat(frames, ignore_index=True)
        frame.attrs["sentinel_counts"] = sum_counts(c["sentinel_counts"] for c in counts)
        frame.attrs["nonfinite_counts"] = sum_counts(c["nonfinite_counts"] for c in counts)
    frame.attrs["files"] = [str(f) for f in files]
    return frame


def _check_consistent_types(frames: list[pd.DataFrame], files: list[Path]) -> None:
    first = frames[0]
    for frame, file in zip(frames[1:], files[1:], strict=True):
        extra = sorted(set(frame.columns) ^ set(first.columns))
        if extra:
            raise DataError(
                f"data file '{file}' has different columns from '{files[0]}': {extra}"
            )


def sum_counts(items: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for counts in items:
        for key, value in counts.items():
            total[key] = total.get(key, 0) + int(value)
    return total


def file_hashes(files: list[str]) -> dict[str, str]:
    """sha256 per data file (recorded in the model card)."""
    from .io import sha256_file

    return {f: sha256_file(f) for f in files}


def ensure_inside_roots(path: str, roots: list[str]) -> str:
    """Resolve ``path`` (symlinks followed) and refuse it unless it lies inside one of ``roots``.

    Used for paths that come from a trigger form or a DAG run conf. A URL must lie under a URL
    root (compared by prefix after refusing ``.``/``..`` segments).
    """
    from .storage import confine

    if not roots:
        raise PathNotAllowedError(
            f"path '{path}' comes from run input, but data.data_roots is empty: "
            "configure the folders such paths may point into"
        )
    return confine(path, roots)


def attach_labels(
    batch: pd.DataFrame, labels: pd.DataFrame, *, id_column: str, target: str, source: str
) -> pd.DataFrame:
    """Join delayed labels onto a batch by the id column (inner join; unmatched ids dropped)."""
    for frame, what in ((batch, "batch"), (labels, "labels")):
        if id_column not in frame.columns:
            raise DataError(f"{source}: the {what} lacks the id column '{id_column}'")
    if target not in labels.columns:
        raise DataError(f"{source}: the labels lack the target column '{target}'")
    left = batch.drop(columns=[target], errors="ignore")
    right = labels[[id_column, target]].drop_duplicates(subset=[id_column], keep="last")
    left = left.assign(**{id_column: left[id_column].astype(str)})
    right = right.assign(**{id_column: right[id_column].astype(str)})
    return left.merge(right, on=id_column, how="inner")
