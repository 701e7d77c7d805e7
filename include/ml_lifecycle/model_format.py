"""How fitted models are stored: ``skops`` (loads without running code) or ``joblib`` (pickle).

Unpickling runs code: whoever can write a ``model.joblib`` where a worker loads it can run
anything on that worker, and the registry's sha256 checks only prove the file is the one the
card names (both live in the same writable folder). So models are stored with ``skops.io`` by
default: loading it rebuilds only objects of types on an explicit allowlist, namely skops' own
defaults (scikit-learn estimators, numpy and scipy containers) plus :data:`TRUSTED_TYPES`, the few
extra types the built-in model families need. A file that holds any other type is refused
before anything is built, naming the types.

``registry.model_format: joblib`` is the opt-in for estimators skops cannot hold (a custom
class): those versions are pickles, and loading them is allowed only when the config opts in
too, so a registry that opted in is one whose writers are trusted. The card says which format a
version uses (``model_format``); cards written before this existed are joblib.
"""

from __future__ import annotations

import io
from typing import Any, Literal

from .errors import IntegrityError, ModelFormatError

Format = Literal["skops", "joblib"]
FILE_NAMES: dict[str, str] = {"skops": "model.skops", "joblib": "model.joblib"}
DEFAULT_FORMAT: Format = "skops"
#: Types outside skops' defaults that the built-in model families and scikit-learn's tree
#: ensembles hold (checked by a test that round-trips every family and a random forest): each is
#: rebuilt from numpy arrays (``Tree`` is scikit-learn's fitted tree structure, which skops
#: leaves to the user only because it is rebuilt through ``__reduce__``); none runs code on load.
TRUSTED_TYPES: tuple[str, ...] = (
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
)


def pickles_allowed(cfg: Any) -> bool:
    """Whether this config opts in to loading pickles (``registry.model_format: joblib``)."""
    return cfg.registry.model_format == "joblib"


def format_of(model_file: str) -> str:
    """The format of a model file by its name (cards written before ``model_format``)."""
    return "skops" if str(model_file).endswith(".skops") else "joblib"


def file_name(fmt: str) -> str:
    """``model.skops`` or ``model.joblib``."""
    return FILE_NAMES[fmt]


def untrusted_types(data: bytes) -> list[str]:
    """The types in a skops file beyond skops' defaults and :data:`TRUSTED_TYPES`."""
    import skops.io as sio

    return sorted(set(sio.get_untrusted_types(data=data)) - set(TRUSTED_TYPES))


def dumps(model: Any, fmt: str) -> bytes:
    """Serialize ``model``; with skops, refuse a model that would not load with the allowlist.

    Raises:
        ModelFormatError: the model holds types outside the allowlist (names them and the
            opt-in, ``registry.model_format: joblib``).
    """
    if fmt == "joblib":
        import joblib

        buffer = io.BytesIO()
        joblib.dump(model, buffer)
        return buffer.getvalue()
    import skops.io as sio

    data = sio.dumps(model)
    extra = untrusted_types(data)
    if extra:
        raise ModelFormatError(
            f"the model holds types that the safe format (skops) does not trust: {extra}; "
            "store it as a pickle with registry.model_format: joblib, only if everyone who can "
            "write the registry is trusted (loading a pickle can run code)")
    return data


def loads(data: bytes, fmt: str, *, allow_pickle: bool, where: str) -> Any:
    """Rebuild a model from verified bytes.

    Raises:
        ModelFormatError: a pickle without the opt-in; IntegrityError: a skops file with types
            outside the allowlist (nothing is built).
    """
    if fmt == "joblib":
        if not allow_pickle:
            raise ModelFormatError(
                f"{where} is a pickle (model.joblib): loading it can run code, so it is loaded "
                "only when the config opts in with registry.model_format: joblib")
        import joblib

        return joblib.load(io.BytesIO(data))
    if fmt != "skops":
        raise ModelFormatError(f"{where}: unknown model format {fmt!r}; expected skops or joblib")
    import skops.io as sio

    extra = untrusted_types(data)
    if extra:
        raise IntegrityError(f"{where} holds types outside the trusted list: {extra}; refusing "
                             "to load it (a skops file can name any type)")
    return sio.loads(data, trusted=sorted(set(sio.get_untrusted_types(data=data))))
