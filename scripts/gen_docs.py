"""Generate the reference pages from the code, so the code stays their one source of truth.

* ``docs/reference/config.md``: every config key of the pydantic model tree rooted at
  ``ml_lifecycle.config.Config`` (dotted key, type, default, constraints, description), one
  section per sub-model;
* ``docs/reference/cli.md``: every command of ``ml_lifecycle.cli.build_parser()``, the delegated
  ones (``simulate``, ``check-drift``, ``backtest``) from their own modules' parsers, and
  ``ml_lifecycle.cli.EXIT_CODES``;
* ``docs/reference/api.md``: mkdocstrings directives for the public Python API (``API`` below);
* every ``<!-- BEGIN generated: PATH -->`` ... ``<!-- END generated: PATH -->`` block of
  ``README.md`` and ``docs/**/*.md``: the text between the markers becomes the content of
  ``PATH`` (relative to the repository root).

Usage (from the repository root)::

    PYTHONPATH=include .venv/bin/python scripts/gen_docs.py          # write what changed
    PYTHONPATH=include .venv/bin/python scripts/gen_docs.py --check  # write nothing

``--check`` exits 1 and names every file that differs from what would be written, 0 when all
are up to date. Either mode exits 2 on a broken block (unknown PATH, no END marker).
"""

from __future__ import annotations

import argparse
import html
import importlib
import inspect
import json
import re
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "include") not in sys.path:  # the same result without PYTHONPATH=include
    sys.path.insert(0, str(ROOT / "include"))
CONFIG_MD = "docs/reference/config.md"
CLI_MD = "docs/reference/cli.md"
API_MD = "docs/reference/api.md"
REGENERATE = "`PYTHONPATH=include python scripts/gen_docs.py`"
USAGE_WIDTH = 100

# --------------------------------------------------------------------------- markdown helpers

_CODE_SPAN = re.compile(r"(`[^`]+`)")
_RST_ROLE = re.compile(r":[a-z]+:`~?\.?([^`]+)`")
_RST_LITERAL = re.compile(r"``([^`]+)``")


def code(text: str) -> str:
    """Inline code that survives a table cell on GitHub and in MkDocs alike (a ``|`` in a
    backtick span splits the cell on GitHub, and ``\\|`` shows literally in Python-Markdown)."""
    if "|" in text or "`" in text:
        return "<code>" + html.escape(text, quote=False).replace("|", "&#124;") + "</code>"
    return f"`{text}`"


def text_cell(text: str) -> str:
    """Prose for a table cell: one line, HTML-significant characters escaped, ``|`` escaped,
    backtick spans kept as code."""
    text = " ".join(text.split())
    out = []
    for part in _CODE_SPAN.split(text):
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(code(part[1:-1]))
        else:
            out.append(_escape_html(part).replace("|", "\\|"))
    return "".join(out)


def _escape_html(text: str) -> str:
    """``<`` (a tag to Markdown) and ``&`` starting an entity, escaped; the rest as written."""
    return re.sub(r"&(?=#?\w+;)", "&amp;", text).replace("<", "&lt;")


def from_rst(docstring: str) -> str:
    """A docstring's reStructuredText literals and roles as Markdown code, paragraphs kept."""
    text = _RST_LITERAL.sub(r"`\1`", inspect.cleandoc(docstring))
    text = _RST_ROLE.sub(r"`\1`", text)
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "\n\n".join(_escape_prose(p) for p in paragraphs)


def _escape_prose(text: str) -> str:
    return "".join(part if part.startswith("`") else _escape_html(part)
                   for part in _CODE_SPAN.split(text))


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def anchor(title: str) -> str:
    """The id MkDocs (and GitHub) give a plain-text heading."""
    return re.sub(r"[^\w\s-]", "", title).strip().lower().replace(" ", "-")


def value_text(value: Any) -> str:
    """A default as YAML would spell it (JSON is YAML): ``null``, ``true``, ``"auto"``."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except TypeError:
        return repr(value)


# --------------------------------------------------------------------------- config walker


@dataclass(frozen=True)
class ConfigKey:
    """One field of the config tree, named by its dotted path."""

    path: str  # e.g. "tracking.mlflow.tracking_uri"; "<name>" / "[]" for dict / list items
    section: str  # dotted path of the model holding the field ("" at the top level)
    model: type[BaseModel]
    name: str
    field: FieldInfo


def nested_models(annotation: Any) -> list[tuple[str, type[BaseModel]]]:
    """The models inside a field's type, each with the path suffix that reaches it: ``""`` for
    the model itself (or ``X | None``), ``"[]"`` for a list of it, ``".<name>"`` for a dict."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [("", annotation)]
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        return [found for arg in args for found in nested_models(arg)]
    if origin in (list, tuple, set, frozenset) and args:
        return [("[]" + suffix, model) for arg in args if arg is not Ellipsis
                for suffix, model in nested_models(arg)]
    if origin is dict and len(args) == 2:
        return [(".<name>" + suffix, model) for suffix, model in nested_models(args[1])]
    return []


def walk_config(model: type[BaseModel], prefix: str = "",
                _seen: tuple[type[BaseModel], ...] = ()) -> Iterator[ConfigKey]:
    """Every field of ``model`` and of the models nested in it, depth first, in declaration
    order (a section's own keys before its sub-sections' keys)."""
    children = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        yield ConfigKey(path, prefix.rstrip("."), model, name, field)
        for suffix, sub in nested_models(field.annotation):
            if sub not in _seen:
                children.append((f"{path}{suffix}.", sub))
    for child_prefix, sub in children:
        yield from walk_config(sub, child_prefix, (*_seen, model))


def config_sections(model: type[BaseModel], prefix: str = "",
                    _seen: tuple[type[BaseModel], ...] = ()) -> list[tuple[str, type[BaseModel]]]:
    """``(dotted section path, model)`` of the root and of every nested model, in the order of
    :func:`walk_config` (depth first)."""
    out = [(prefix.rstrip("."), model)]
    for name, field in model.model_fields.items():
        for suffix, sub in nested_models(field.annotation):
            if sub not in _seen:
                out += config_sections(sub, f"{prefix}{name}{suffix}.", (*_seen, model))
    return out


def undocumented_keys(model: type[BaseModel]) -> list[str]:
    """Dotted keys of the tree whose field has no (or a blank) description."""
    return [k.path for k in walk_config(model) if not (k.field.description or "").strip()]


def type_text(annotation: Any) -> str:
    """A readable type: ``int``, ``str | None``, ``list[str]``, ``"a" | "b"``."""
    if annotation is None or annotation is type(None):
        return "None"
    if annotation is Any:
        return "Any"
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return " | ".join(value_text(a) for a in args)
    if origin in (Union, types.UnionType):
        parts = [type_text(a) for a in args if a is not type(None)]
        return " | ".join(parts + (["None"] if type(None) in args else []))
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(type_text(a) for a in args)}]"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "its section's defaults"
    if value is PydanticUndefined:
        return ""
    return code(value_text(value))


_BOUNDS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<=", "multiple_of": "multiple of",
           "min_length": "length >=", "max_length": "length <="}


def constraints_text(field: FieldInfo) -> str:
    found = []
    for item in field.metadata:
        for attr, symbol in _BOUNDS.items():
            value = getattr(item, attr, None)
            if value is not None:
                found.append(f"{symbol} {value_text(value)}")
    return code(", ".join(found)) if found else ""


def _section_title(path: str) -> str:
    return path or "top level"


def _key_row(key: ConfigKey, sections: dict[str, type[BaseModel]]) -> list[str]:
    type_cell = code(type_text(key.field.annotation))
    links = [f"[{_section_title(key.path + suffix)}](#{anchor(_section_title(key.path + suffix))})"
             for suffix, _ in nested_models(key.field.annotation)
             if key.path + suffix in sections]
    if links:
        type_cell += " (section " + ", ".join(links) + ")"
    return [code(key.path), type_cell, default_text(key.field), constraints_text(key.field),
            text_cell(key.field.description or "")]


def render_config() -> str:
    from ml_lifecycle.config import Config

    sections = dict(config_sections(Config))
    keys = list(walk_config(Config))
    # required keys; a required section only when none of its own keys is required
    required = [k.path for k in keys if k.field.is_required()
                and not any(o.path.startswith(k.path + ".") and o.field.is_required()
                            for o in keys)]
    lines = [
        "# Configuration reference",
        "",
        f"Generated by `scripts/gen_docs.py` from `include/ml_lifecycle/config.py` (the pydantic "
        f"models, with `drift` and `policy` from `include/ml_lifecycle/drift/settings.py`); do "
        f"not edit by hand: change the models' `description=` and docstrings, then run "
        f"{REGENERATE}.",
        "",
        "One YAML file configures one model. Every key below can also be set on the command "
        "line with `--set dotted.key=value` (the value is parsed as YAML). Unknown keys are "
        "refused, so a typo never falls back to a default silently. Relative paths resolve "
        "against the folder of the config file, or against `ML_LIFECYCLE_BASE_DIR` when it "
        "is set.",
        "",
        f"{len(keys)} keys in {len(sections)} sections. Required: "
        + ", ".join(code(k) for k in required) + ".",
        "",
        "Sections: " + ", ".join(f"[{_section_title(p)}](#{anchor(_section_title(p))})"
                                 for p in sections) + ".",
    ]
    by_section: dict[str, list[ConfigKey]] = {}
    for key in keys:
        by_section.setdefault(key.section, []).append(key)
    for path, model in sections.items():
        lines += ["", f"## {_section_title(path)}", ""]
        intro = from_rst(model.__doc__ or "") if model.__doc__ else ""
        lines.append(f"{code(model.__name__)}" + (f": {intro}" if intro else ""))
        lines.append("")
        lines += table(["key", "type", "default", "constraints", "description"],
                       [_key_row(k, sections) for k in by_section.get(path, [])])
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- CLI


def _subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def cli_commands() -> list[tuple[str, str, argparse.ArgumentParser]]:
    """``(command, one-line help, parser)`` of every command, the delegated commands with the
    parsers of their own modules (the stubs of ``build_parser`` parse nothing)."""
    from ml_lifecycle.cli import DELEGATED, build_parser, delegated_parsers

    sub = _subcommands(build_parser())
    assert sub is not None, "ml_lifecycle.cli.build_parser() has no sub-commands"
    helps = {a.dest: a.help or "" for a in sub._choices_actions}
    delegated = delegated_parsers()
    missing = set(DELEGATED) - set(delegated)
    assert not missing, f"no parser for the delegated command(s) {sorted(missing)}"
    out = []
    for name, parser in sub.choices.items():
        if name in delegated:
            parser = delegated[name]
            helps[name] = parser.description or ""
        out.append((name, helps[name], parser))
    return out


def cli_options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The arguments of a parser, ``-h/--help`` left out."""
    return [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = parser.formatter_class(prog=parser.prog, width=USAGE_WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


def _option_row(parser: argparse.ArgumentParser, action: argparse.Action) -> list[str]:
    positional = not action.option_strings
    name = ", ".join(action.option_strings) if not positional else (action.metavar or action.dest)
    flag = action.nargs == 0
    if flag:
        value = "flag"
    else:
        if action.choices is not None:
            value = "one of " + ", ".join(code(str(c)) for c in action.choices)
        else:
            metavar = action.metavar or (action.dest if positional else action.dest.upper())
            value = code(str(metavar))
            kind = getattr(action.type, "__name__", None)
            if kind in ("int", "float"):
                value += f" ({kind})"
        if action.nargs == "?":
            value += ", optional"
        elif action.nargs in ("*", "+"):
            value += ", several"
        if isinstance(action, argparse._AppendAction):
            value += ", repeatable"
    required = action.required or (positional and action.nargs not in ("?", "*"))
    default = action.default
    if required:
        default_cell = "**required**"
    elif default in (None, argparse.SUPPRESS, []) or (flag and default is False):
        default_cell = ""
    else:
        default_cell = code(value_text(default))
    help_text = parser._get_formatter()._expand_help(action) if action.help else ""
    return [code(name), value, default_cell, text_cell(help_text)]


def render_cli() -> str:
    from ml_lifecycle.cli import EXIT_CODES, build_parser

    top = build_parser()
    commands = cli_commands()
    n_options = sum(len(cli_options(p)) for _, _, p in commands)
    lines = [
        "# CLI reference",
        "",
        "Generated by `scripts/gen_docs.py` from `include/ml_lifecycle/cli.py` "
        "(`build_parser()`, the parsers of the commands it delegates to `simulate.py`, "
        "`drift/check.py` and `backtest.py`, and `EXIT_CODES`); do not edit by hand: change "
        f"the parsers' help, then run {REGENERATE}.",
        "",
        "`ml-lifecycle <command>` once the package is installed, or `python -m ml_lifecycle "
        "<command>` from a checkout with `PYTHONPATH=include`. Every command also takes "
        f"`-h` / `--help`. {len(commands)} commands, {n_options} arguments.",
        "",
        "```text",
        _usage(top),
        "```",
        "",
    ]
    lines += table(["command", "what it does"],
                   [[f"[{code(name)}](#{anchor(name)})", text_cell(help_text)]
                    for name, help_text, _ in commands])
    lines += ["", "## Exit codes", ""]
    lines += table(["exit code", "meaning"],
                   [[str(c), text_cell(meaning)] for c, meaning in EXIT_CODES.items()])
    for name, help_text, parser in commands:
        lines += ["", f"## {name}", "", text_cell(help_text), ""]
        if parser.description and parser.description != help_text:
            lines += [text_cell(parser.description), ""]
        lines += ["```text", _usage(parser), "```", ""]
        lines += table(["argument", "value", "default", "description"],
                       [_option_row(parser, a) for a in cli_options(parser)])
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- Python API

#: ``(module, title, intro, members)`` of the API page: what users call from Python.
API: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("ml_lifecycle.config", "Configuration",
     "Load and validate a config; its keys are listed in the "
     "[configuration reference](config.md).",
     ("load_config", "config_from_dict", "load_raw", "apply_overrides", "parse_override",
      "base_dir", "resolve_path")),
    ("ml_lifecycle.train", "Training", "",
     ("run_training", "load_training_data")),
    ("ml_lifecycle.lifecycle", "Scoring and the daily files", "",
     ("score_file", "score_batch", "live_metric", "batch_path", "labels_path",
      "predictions_path")),
    ("ml_lifecycle.scoring", "Scores and predictions", "",
     ("predict_scores", "predict_labels")),
    ("ml_lifecycle.registry", "Model registry", "",
     ("open_registry", "Registry")),
    ("ml_lifecycle.drift.check", "Drift check", "",
     ("run_drift_check", "evaluate_batch")),
    ("ml_lifecycle.metrics", "Metrics", "",
     ("compute_metric", "compute_metrics", "bootstrap_metric", "paired_bootstrap")),
    ("ml_lifecycle.custom", "Custom estimators", "",
     ("resolve", "build")),
    ("ml_lifecycle.shap_explain", "SHAP explanations", "",
     ("ShapExplainer", "Explanation", "global_importance")),
    ("ml_lifecycle.mlflow_export", "MLflow export", "",
     ("log_training", "register_version", "sync_champion", "tracking_uri")),
    ("ml_lifecycle.simulate", "Demo data", "",
     ("simulate",)),
    ("ml_lifecycle.backtest", "Backtest", "",
     ("run_backtest",)),
    ("ml_lifecycle.errors", "Errors", "",
     ("MLLifecycleError", "ConfigError", "DataError", "QualityGateError", "RegistryError",
      "IntegrityError", "ModelFormatError", "StorageError", "PathNotAllowedError")),
)


def render_api() -> str:
    lines = [
        "# Python API",
        "",
        "Generated by `scripts/gen_docs.py` (its `API` list); the documentation itself comes "
        "from the docstrings, rendered by mkdocstrings. Do not edit by hand: change `API` in "
        f"`scripts/gen_docs.py`, then run {REGENERATE}.",
    ]
    for module_name, title, intro, members in API:
        module = importlib.import_module(module_name)
        absent = [m for m in members if not hasattr(module, m)]
        if absent:
            raise SystemExit(f"error: {module_name} has no {', '.join(absent)} (fix API in "
                             "scripts/gen_docs.py)")
        lines += ["", f"## {title}", ""]
        if intro:
            lines += [intro, ""]
        lines += [f"::: {module_name}", "    options:", "      show_source: false",
                  "      show_root_heading: false", "      heading_level: 3", "      members:"]
        lines += [f"        - {m}" for m in members]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- blocks

GENERATORS: dict[str, Callable[[], str]] = {
    CONFIG_MD: render_config, CLI_MD: render_cli, API_MD: render_api,
}
BEGIN = re.compile(r"<!-- BEGIN generated: (\S+) -->")


class BlockError(Exception):
    """A generated block that cannot be filled (unknown PATH, no END marker)."""


def block_files() -> list[Path]:
    """README.md and docs/**/*.md, the generated pages left out."""
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [f for f in files if f.is_file() and f.relative_to(ROOT).as_posix() not in GENERATORS]


def fill_blocks(text: str, source: str, content_of: Callable[[str], str]) -> str:
    """``text`` with the content of every generated block replaced by ``content_of(PATH)``."""
    out, pos = [], 0
    while (begin := BEGIN.search(text, pos)) is not None:
        path = begin.group(1)
        line = text.count("\n", 0, begin.start()) + 1
        end_marker = f"<!-- END generated: {path} -->"
        end = text.find(end_marker, begin.end())
        if end < 0:
            raise BlockError(f"{source}:{line}: block '{path}' has no '{end_marker}'")
        try:
            content = content_of(path)
        except FileNotFoundError:
            raise BlockError(f"{source}:{line}: block '{path}': the file {path} does not "
                             "exist") from None
        if content and not content.endswith("\n"):
            content += "\n"
        out += [text[pos:begin.end()], "\n", content]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def expected_files() -> dict[str, str]:
    """Every file the generator owns or edits -> the text it should hold."""
    generated = {path: render() for path, render in GENERATORS.items()}

    def content_of(path: str) -> str:
        if path in generated:
            return generated[path]
        target = (ROOT / path).resolve()
        if not target.is_relative_to(ROOT) or not target.is_file():
            raise FileNotFoundError(path)
        return target.read_text(encoding="utf-8")

    expected = dict(generated)
    for file in block_files():
        rel = file.relative_to(ROOT).as_posix()
        text = file.read_text(encoding="utf-8")
        if BEGIN.search(text):
            expected[rel] = fill_blocks(text, rel, content_of)
    return expected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 naming every file that is not up to date")
    args = parser.parse_args(argv)
    try:
        expected = expected_files()
    except BlockError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stale = []
    for rel, text in expected.items():
        path = ROOT / rel
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            continue
        stale.append(rel)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8", newline="\n")
            print(f"wrote {rel}")
    if args.check:
        for rel in stale:
            print(f"stale: {rel} (regenerate: {REGENERATE.strip('`')})", file=sys.stderr)
        return 1 if stale else 0
    if not stale:
        print("up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
