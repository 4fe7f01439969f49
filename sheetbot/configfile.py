"""Read the YAML file into a Config, and turn every mistake into a Problem with a key path and a line.

`sheetbot check` shows all problems at once; every other command stops at the
first with a one-line message.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sheetbot.config import Config
from sheetbot.errors import ConfigError, Problem

DEFAULT_CONFIG = Path("config/sheetbot.yaml")

#: Keys that must never hold a secret in the YAML, and the key to use instead.
_SECRET_KEYS = {
    "api_key": "api_key_env",
    "token": "token_env",
    "password": "password_env",
    "secret": "webhook_secret_env",
    "webhook_secret": "webhook_secret_env",
}

Path_ = tuple[str | int, ...]


class _Lines:
    """Where each key path was written: file and line."""

    def __init__(self) -> None:
        self.lines: dict[Path_, tuple[str, int]] = {}
        self.duplicates: list[Problem] = []

    def find(self, path: Path_) -> tuple[str | None, int | None]:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None, None

    def walk(self, node: yaml.Node, path: Path_, file: str) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                child = (*path, key)
                line = key_node.start_mark.line + 1
                if key in seen:
                    self.duplicates.append(Problem(_dotted(child), "this key appears twice; keep one", line, file))
                seen.add(key)
                self.lines[child] = (file, line)
                self.walk(value_node, child, file)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                child = (*path, index)
                self.lines[child] = (file, item.start_mark.line + 1)
                self.walk(item, child, file)


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _read_yaml(path: Path, lines: _Lines, prefix: Path_ = ()) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} not found: pass --config PATH, or run `sheetbot demo` to see a working example"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([Problem("", f"this is not valid YAML: {reason}", line, str(path))]) from None
    if node is not None:
        lines.walk(node, prefix, str(path))
    return data


def load_config(path: str | Path = DEFAULT_CONFIG) -> Config:
    """Load and validate; raise ConfigError listing every problem found."""
    config, problems = inspect_config(path)
    if problems or config is None:
        raise ConfigError(problems or [Problem("", "invalid configuration")], path=str(path))
    return config


def inspect_config(path: str | Path) -> tuple[Config | None, list[Problem]]:
    """The config (if it validates) and every problem found in it."""
    path = Path(path)
    lines = _Lines()
    data = _read_yaml(path, lines)
    if data is None:
        return None, [Problem("", "the file is empty: start from config/sheetbot.yaml", None, str(path))]
    if not isinstance(data, dict):
        return None, [Problem("", "the file must be a mapping of keys (timezone:, board:, workflows: …)", 1, str(path))]
    problems = list(lines.duplicates)
    problems += _included_workflows(path, data, lines)
    problems += _secrets_in_yaml(data, (), lines)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems += [_problem_from_pydantic(err, lines) for err in exc.errors()]
        return None, _unique(problems)
    config._base_dir = path.resolve().parent
    config._source = path
    problems += _cross_checks(config, lines)
    return (config if not problems else None), _unique(problems)


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[str] = set()
    out = []
    for p in problems:
        if str(p) not in seen:
            seen.add(str(p))
            out.append(p)
    return out


def _included_workflows(path: Path, data: dict[str, Any], lines: _Lines) -> list[Problem]:
    """Merge `workflows:` from the files named in `include:` into data (in place)."""
    includes = data.get("include") or []
    if not isinstance(includes, list):
        return []  # pydantic reports the type
    problems: list[Problem] = []
    workflows = data.setdefault("workflows", {}) or {}
    if not isinstance(workflows, dict):
        return []  # pydantic reports that `workflows:` must be a mapping
    data["workflows"] = workflows
    for index, pattern in enumerate(includes):
        file, line = lines.find(("include", index))
        matches = sorted(glob.glob(str(path.parent / str(pattern))))
        if not matches:
            problems.append(
                Problem(
                    f"include[{index}]",
                    f"no file matches {pattern!r} (relative to {path.parent})",
                    line,
                    file,
                )
            )
            continue
        for match in matches:
            sub_lines = _Lines()
            sub = _read_yaml(Path(match), sub_lines)
            if not isinstance(sub, dict) or not isinstance(sub.get("workflows"), dict):
                problems.append(Problem(f"include[{index}]", f"{match} has no `workflows:` mapping", line, file))
                continue
            for name, body in sub["workflows"].items():
                if name in workflows:
                    problems.append(
                        Problem(
                            f"workflows.{name}",
                            f"defined twice (again in {match})",
                            *sub_lines.find(("workflows", name))[::-1],
                        )
                    )
                    continue
                workflows[name] = body
            for key, where in sub_lines.lines.items():
                lines.lines.setdefault(key, where)
            problems += sub_lines.duplicates
    return problems


def _secrets_in_yaml(data: Any, path: Path_, lines: _Lines) -> list[Problem]:
    problems: list[Problem] = []
    if isinstance(data, dict):
        for key, value in data.items():
            child = (*path, str(key))
            if str(key) in _SECRET_KEYS and isinstance(value, str) and value:
                file, line = lines.find(child)
                problems.append(
                    Problem(
                        _dotted(child),
                        "secrets do not belong in the YAML: put the value in an "
                        f"environment variable and name it with `{_SECRET_KEYS[str(key)]}`",
                        line,
                        file,
                    )
                )
            else:
                problems += _secrets_in_yaml(value, child, lines)
    elif isinstance(data, list):
        for index, item in enumerate(data):
            problems += _secrets_in_yaml(item, (*path, index), lines)
    return problems


def _problem_from_pydantic(err: Any, lines: _Lines) -> Problem:
    loc: Path_ = tuple(err["loc"])
    file, line = lines.find(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        message = f"unknown key {loc[-1]!r}: check its spelling (see config/sheetbot.yaml for the keys)"
        if any(str(p) in _SECRET_KEYS for p in loc):
            message = "secrets do not belong in the YAML: name an environment variable instead"
    elif kind == "missing":
        message = "this key is required"
    elif kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        message = f"{err.get('input')!r} is not allowed here; use one of {expected}"
    elif kind in {"time_parsing", "time_type"}:
        message = f'{err.get("input")!r} is not a time: write it as "HH:MM" in quotes, e.g. "17:00"'
    else:
        message = str(err["msg"]).removeprefix("Value error, ")
    return Problem(_dotted(loc), message, line, file)


def _cross_checks(config: Config, lines: _Lines) -> list[Problem]:
    """What pydantic cannot see: keys that must agree with each other."""
    problems: list[Problem] = []

    def add(path: Path_, message: str) -> None:
        file, line = lines.find(path)
        problems.append(Problem(_dotted(path), message, line, file))

    for name, provider in config.providers.items():
        if provider.kind is None and name not in ("anthropic", "openai"):
            add(
                ("providers", name),
                f"unknown provider {name!r}: name it anthropic or openai, or add "
                "`kind: openai` for an OpenAI-compatible server",
            )
    if not config.workflows:
        add(("workflows",), "no workflows are defined: add one under `workflows:` (see config/workflows/)")
    for name, wf in config.workflows.items():
        where = ("workflows", name)
        if wf.provider not in config.providers:
            known = ", ".join(sorted(config.providers)) or "none"
            add(
                (*where, "provider"),
                f"provider {wf.provider!r} is not configured under `providers:` (configured: {known})",
            )
        if wf.model not in config.prices:
            add(
                (*where, "model"),
                f"model {wf.model!r} has no price: add `prices: {{{wf.model}: "
                "{input: …, output: …}}` in dollars per million tokens (0 for a local model)",
            )
        if wf.nightly_rows is not None and wf.nightly_rows > config.limits.nightly_rows:
            pass  # the nightly cap still applies; not an error
    if config.board.kind == "google_sheets" and not config.board.spreadsheet:
        add(("board", "spreadsheet"), "google_sheets needs `spreadsheet:` (the sheet's key or URL)")
    if config.board.kind == "airtable" and not config.board.base:
        add(("board", "base"), "airtable needs `base:` (the base id, appXXXXXXXXXXXXXX)")
    headers = list(config.columns.logical().values())
    dupes = {h for h in headers if headers.count(h) > 1}
    if dupes:
        add(("board", "columns"), f"two columns share the header {sorted(dupes)[0]!r}: give each its own")
    return problems


def iter_problems(problems: list[Problem]) -> Iterator[str]:
    for problem in problems:
        yield str(problem)
