"""The YAML's JSON Schema, generated from the pydantic models, for editors to complete and check the config.

`sheetbot schema` prints it; the same text ships as ``sheetbot/config/sheetbot.schema.json`` (a test keeps
the two equal) and the YAML files sheetbot writes name it on their first line, the way the YAML language
server (VS Code, JetBrains, Neovim) finds a schema: ``# yaml-language-server: $schema=<path>``.

The models document many settings with ``#:`` comments rather than ``Field(description=...)``; those comments
become the properties' descriptions here, read from the source, so the editor's hover says what the
comment says. The schema is a help, not the judge: `sheetbot check` still has the last word (it checks
names that must agree, secrets, includes). It must never refuse a file `check` accepts, so the few values
that validators convert (times of day, durations) are described as the YAML writes them.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from sheetbot.config.models import Config

#: The file shipped in the package (and in the repo), next to this module.
SCHEMA_FILE = Path(__file__).with_name("sheetbot.schema.json")
#: How to bring the shipped file up to date after a model changes.
REGENERATE = "sheetbot schema > sheetbot/config/sheetbot.schema.json"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def modeline(schema: Path = SCHEMA_FILE) -> str:
    """The first line of a YAML that sheetbot writes: where editors find the schema (this install's file)."""
    return f"# yaml-language-server: $schema={schema.resolve().as_uri()}\n"


def config_schema() -> dict[str, Any]:
    """The JSON Schema of the YAML (draft 2020-12), with the models' ``#:`` comments as descriptions."""
    schema = Config.model_json_schema(mode="validation")
    models = _models(Config)
    for name, definition in schema.get("$defs", {}).items():
        if name in models:
            _describe(definition, models[name])
    _describe(schema, Config)
    _as_written(schema)
    return {
        "$schema": DIALECT,
        "title": "sheetbot configuration",
        "description": "sheetbot's YAML (config/sheetbot.yaml, or the file `sheetbot demo` writes). "
        "`sheetbot check` validates it in full.",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


def schema_text() -> str:
    """The schema as the shipped file holds it: stable key order, 2-space indent, ASCII, a final newline."""
    return json.dumps(config_schema(), indent=2, ensure_ascii=True) + "\n"


_SECONDS_ZERO = re.compile(r"^\d\d:\d\d:00$")


def _as_written(node: object) -> None:
    """Defaults as the YAML writes them: a time of day "17:00" (pydantic dumps "17:00:00", which
    `clock_time` refuses, so an editor that inserts the default would insert an error)."""
    if isinstance(node, dict):
        if isinstance(node.get("default"), str | dict):
            node["default"] = _short_times(node["default"])
        for value in node.values():
            _as_written(value)
    elif isinstance(node, list):
        for value in node:
            _as_written(value)


def _short_times(value: object) -> object:
    if isinstance(value, str) and _SECONDS_ZERO.match(value):
        return value[:5]
    if isinstance(value, dict):
        return {k: _short_times(v) for k, v in value.items()}
    return value


def _models(root: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """Every model reachable from root, by the name pydantic gives its $defs entry (the class name)."""
    found: dict[str, type[BaseModel]] = {}
    todo: list[type[BaseModel]] = [root]
    while todo:
        model = todo.pop()
        if model.__name__ in found:
            continue
        found[model.__name__] = model
        for field in model.model_fields.values():
            todo += [t for t in _types_in(field.annotation) if t.__name__ not in found]
    return found


def _types_in(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()) or ():
        out += _types_in(arg)
    return out


def _describe(definition: dict[str, Any], model: type[BaseModel]) -> None:
    """Give each property without a description the ``#:`` comment written above its field."""
    comments = field_comments(model)
    for name, prop in definition.get("properties", {}).items():
        if name in comments and "description" not in prop:
            prop["description"] = comments[name]
        prop.pop("title", None)  # "Requests Per S": the key itself says it better
    definition.pop("title", None)  # the class name says nothing to a user; the key does


def field_comments(model: type[BaseModel]) -> dict[str, str]:
    """Field name -> the ``#:`` comment lines right above it in the class body (empty if no source)."""
    try:
        source = inspect.getsource(sys.modules[model.__module__])
    except (OSError, TypeError, KeyError):
        return {}  # installed without sources: the schema is then only less chatty
    lines = source.splitlines()
    out: dict[str, str] = {}
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.ClassDef) and node.name == model.__name__):
            continue
        for item in node.body:
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                above: list[str] = []
                row = item.lineno - 2
                while row >= 0 and lines[row].strip().startswith("#:"):
                    above.insert(0, lines[row].strip()[2:].strip())
                    row -= 1
                if above:
                    out[item.target.id] = " ".join(above)
    return out
