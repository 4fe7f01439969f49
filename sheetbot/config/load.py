"""Read the YAML file into a Config, and turn every mistake into a Problem with a key path and a line.

`sheetbot check` shows all problems at once; every other command stops at the
first with a one-line message. Reading one file safely is `yaml_file`; the checks pydantic cannot make
are `checks`; this module merges the `include:`d workflow files and puts the two together.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from sheetbot.config.checks import (
    cross_checks,
    env_names,
    logins_in_urls,
    problem_from_pydantic,
    secrets_in_yaml,
    unquoted_times,
)
from sheetbot.config.example import example_config
from sheetbot.config.models import Config
from sheetbot.config.yaml_file import MAX_INCLUDES, KeyPath, Lines, read_yaml
from sheetbot.errors import ConfigError, Problem

DEFAULT_CONFIG = Path("config/sheetbot.yaml")


def load_config(path: str | Path = DEFAULT_CONFIG) -> Config:
    """Load and validate; raise ConfigError listing every problem found."""
    config, problems = inspect_config(path)
    if problems or config is None:
        raise ConfigError(problems or [Problem("", "invalid configuration")], path=str(path))
    return config


@dataclass
class Inspection:
    """What `inspect` found: the config (None unless it is valid), every problem, and where each key was written.

    `sheetbot check` goes on to check the board and the credentials, and uses ``problem()`` so that
    those findings carry a key path and a line like the YAML's own.
    """

    config: Config | None
    problems: list[Problem]
    lines: Lines = field(default_factory=Lines, repr=False)

    def problem(self, path: KeyPath, message: str) -> Problem:
        return self.lines.problem(path, message)


def inspect_config(path: str | Path) -> tuple[Config | None, list[Problem]]:
    """The config (if it validates) and every problem found in it."""
    found = inspect(path)
    return found.config, found.problems


def inspect(path: str | Path) -> Inspection:
    """Read, merge the includes, validate; every problem at once. Raises ConfigError only if the file cannot be read.

    The checks that need only the raw data (secrets, times, names that must agree) run whether or not
    pydantic accepts the file, so `sheetbot check` lists a missing price next to a bad max_tokens.
    """
    path = Path(path)
    lines = Lines()
    data = read_yaml(path, lines)
    if data is None:
        empty = f"the file is empty: start from {example_config()}, or run `sheetbot demo`"
        return Inspection(None, [Problem("", empty, None, str(path))], lines)
    if not isinstance(data, dict):
        return Inspection(
            None,
            [Problem("", "the file must be a mapping of keys (timezone:, board:, workflows: …)", 1, str(path))],
            lines,
        )
    problems = list(lines.duplicates) + _included_workflows(path, data, lines)
    # One problem per key: these say it better than pydantic's generic message for the same key.
    specific = secrets_in_yaml(data, (), lines) + env_names(data, (), lines) + unquoted_times(data, lines)
    specific += logins_in_urls(data, (), lines)
    claimed = {p.where for p in specific} | {p.where for p in problems if p.where.startswith("include[")}
    problems += specific
    problems += cross_checks(data, lines)
    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems += [p for p in (problem_from_pydantic(err, lines) for err in exc.errors()) if p.where not in claimed]
    else:
        config._base_dir = path.resolve().parent
        config._source = path
    problems = _unique(problems)
    main = str(path)
    problems.sort(key=lambda p: (p.file not in (None, main), p.file or "", p.line or 0))
    return Inspection(config if not problems else None, problems, lines)


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[str] = set()
    out = []
    for p in problems:
        if str(p) not in seen:
            seen.add(str(p))
            out.append(p)
    return out


def _included_workflows(path: Path, data: dict[str, object], lines: Lines) -> list[Problem]:
    """Merge `workflows:` from the files named in `include:` into data (in place)."""
    includes = data.get("include") or []
    if not isinstance(includes, list):
        return []  # pydantic reports the type
    problems: list[Problem] = []
    workflows = data.get("workflows")
    if workflows is None:
        workflows = data["workflows"] = {}
    # Not a mapping: pydantic reports that; the patterns are still checked, nothing is merged.
    merged: dict[object, object] | None = workflows if isinstance(workflows, dict) else None
    for index, pattern in enumerate(includes):
        where = ("include", index)
        if not isinstance(pattern, str) or not pattern.strip():
            problems.append(lines.problem(where, "must be a file name or a glob, e.g. workflows/*.yaml"))
            continue
        matches = sorted(glob.glob(str(path.parent / pattern)))
        if len(matches) > MAX_INCLUDES:
            problems.append(
                lines.problem(
                    where,
                    f"{pattern!r} matches {len(matches)} files, more than {MAX_INCLUDES}: "
                    "narrow the pattern to the workflow files",
                )
            )
            continue
        if not matches:
            problems.append(
                lines.problem(
                    where,
                    f"no file matches {pattern!r} (relative to {path.resolve().parent}): "
                    "fix the pattern or remove it from `include:`",
                )
            )
            continue
        for match in matches:
            sub_lines = Lines()
            try:
                sub = read_yaml(Path(match), sub_lines)
            except ConfigError as exc:  # an included file that is not YAML is one more problem, not the end
                problems += exc.problems
                continue
            if merged is None:
                continue
            if not isinstance(sub, dict) or not isinstance(sub.get("workflows"), dict):
                problems.append(
                    lines.problem(where, f"{match} has no `workflows:` mapping: an included file holds workflows only")
                )
                continue
            for key in sub:
                if key != "workflows":
                    problems.append(
                        sub_lines.problem(
                            (str(key),),
                            f"only `workflows:` is read from an included file: move {key!r} to {path}",
                        )
                    )
            for name, body in sub["workflows"].items():
                if name in merged:
                    problems.append(
                        sub_lines.problem(
                            ("workflows", str(name)),
                            f"workflow {name!r} is defined twice (again in {match}): rename or remove one",
                        )
                    )
                    continue
                merged[name] = body
            for key, where_ in sub_lines.lines.items():
                lines.lines.setdefault(key, where_)
            for key, scalar in sub_lines.scalars.items():
                lines.scalars.setdefault(key, scalar)
            problems += sub_lines.duplicates
    return problems


def iter_problems(problems: list[Problem]) -> Iterator[str]:
    for problem in problems:
        yield str(problem)
