"""Read the YAML file into a Config, and turn every mistake into a Problem with a key path and a line.

`sheetbot check` shows all problems at once; every other command stops at the
first with a one-line message.
"""

from __future__ import annotations

import glob
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sheetbot.config.models import ColumnsConfig, Config
from sheetbot.errors import ConfigError, Problem
from sheetbot.safety.secrets import url_with_login

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

#: The keys that hold a time of day. Unquoted, YAML reads 17:00 as the number 1020 (base 60), which
#: pydantic would then take as 00:17:00: so a number here is refused instead of silently shifted.
_TIME_KEYS: tuple[Path_, ...] = (
    ("schedule", "cutoff"),
    ("schedule", "summary"),
    ("schedule", "window", "start"),
    ("schedule", "window", "end"),
)
_HH_MM = re.compile(r"^([01]?\d|2[0-3]):[0-5]\d$")
#: What a `*_env` key must hold: the name of a variable, never its value.
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PROVIDER_KINDS = ("anthropic", "openai")


class _Lines:
    """Where each key path was written: file and line."""

    def __init__(self) -> None:
        self.lines: dict[Path_, tuple[str, int]] = {}
        #: The text of each scalar as written (quoted or not), e.g. `17:00` that YAML read as 1020.
        self.scalars: dict[Path_, tuple[str, str | None]] = {}
        self.duplicates: list[Problem] = []

    def find(self, path: Path_) -> tuple[str | None, int | None]:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None, None

    def problem(self, path: Path_, message: str) -> Problem:
        file, line = self.find(path)
        return Problem(_dotted(path), message, line, file)

    def walk(self, node: yaml.Node, path: Path_, file: str) -> None:
        if isinstance(node, yaml.ScalarNode):
            self.scalars[path] = (str(node.value), node.style)
        elif isinstance(node, yaml.MappingNode):
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


#: Caps on what one YAML file may ask of the process (issue 11): a config is a page of settings, so these are
#: far above any real one and far below what a hostile file ("billion laughs", /dev/zero) would need.
MAX_BYTES = 1_000_000
MAX_DEPTH = 50
MAX_ALIASES = 100
#: Nodes once every alias is expanded: aliases share one node in memory, but validating walks each copy.
MAX_NODES = 100_000
#: Files one `include:` glob may bring in.
MAX_INCLUDES = 100


class _Refused(Exception):
    """The document asks for more than the caps allow; the message says what and how to fix it."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts aliases and nesting while composing, before anything is expanded."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _Refused(
                    f"more than {MAX_ALIASES} aliases (*name): write the values out, or use fewer anchors",
                    self._next_line(),
                )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(f"nested more than {MAX_DEPTH} levels deep: flatten it", self._next_line())
            # types-PyYAML says `index: int`; PyYAML passes the key node (in a mapping) or None (at the root).
            return super().compose_node(parent, index)  # type: ignore[arg-type]
        finally:
            self._depth -= 1

    def _next_line(self) -> int | None:
        """The 1-based line of the event about to be composed, for the message."""
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]  # unannotated in types-PyYAML
        mark = event.start_mark
        return None if mark is None else mark.line + 1


def _expanded_size(root: yaml.Node) -> None:
    """Count the nodes and the nesting the document has once aliases are expanded, without expanding them.

    Aliases share one node, so this is a walk of a graph: each node is measured once (its size and height
    remembered) and judged again at every depth it is reached. A cycle (an anchor inside itself) is refused.
    """
    measured: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded size, height)
    open_: set[int] = set()

    def too_deep(node: yaml.Node) -> _Refused:
        return _Refused(
            f"nested more than {MAX_DEPTH} levels deep once its aliases are expanded: flatten it",
            node.start_mark.line + 1,
        )

    def measure(node: yaml.Node, depth: int) -> tuple[int, int]:
        key = id(node)
        if key in measured:
            if depth + measured[key][1] - 1 > MAX_DEPTH:
                raise too_deep(node)
            return measured[key]
        if key in open_:
            raise _Refused(
                "an anchor refers to itself (&name … *name inside it): remove the alias", node.start_mark.line + 1
            )
        if depth > MAX_DEPTH:
            raise too_deep(node)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        open_.add(key)
        total, height = 1, 1
        for child in children:
            size, child_height = measure(child, depth + 1)
            total += size
            height = max(height, child_height + 1)
            if total > MAX_NODES:
                raise _Refused(
                    f"its anchors and aliases expand to more than {MAX_NODES} values: write the values out instead",
                    node.start_mark.line + 1,
                )
        open_.discard(key)
        measured[key] = (total, height)
        return measured[key]

    measure(root, 1)


def _read_text(path: Path) -> str:
    """The file's text, if it is a regular file of reasonable size: a FIFO would block, /dev/zero never end."""
    where = f"config file {path}"
    try:
        info = path.stat()  # follows symlinks: a link to /dev/zero is judged by /dev/zero
    except FileNotFoundError:
        message = "not found: pass --config PATH, or run `sheetbot demo` to see a working example"
        raise ConfigError([Problem(where, message)]) from None
    except OSError as exc:
        raise ConfigError([Problem(where, f"cannot be read ({exc.strerror or exc})")]) from None
    if not stat.S_ISREG(info.st_mode):
        message = "is not a regular file (a directory, FIFO or device): point it at a .yaml file"
        raise ConfigError([Problem(where, message)])
    too_big = f"is larger than {MAX_BYTES // 1_000_000} MB: a config is a page of settings, split or trim it"
    if info.st_size > MAX_BYTES:
        raise ConfigError([Problem(where, too_big)])
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)  # the file may have grown since stat
        if len(raw) > MAX_BYTES:
            raise ConfigError([Problem(where, too_big)])
        return raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([Problem(where, f"cannot be read ({reason})")]) from None


def _read_yaml(path: Path, lines: _Lines, prefix: Path_ = ()) -> Any:
    text = _read_text(path)
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node)
        data = loader.construct_document(node)
    except _Refused as exc:
        raise ConfigError([Problem("", exc.message, exc.line, str(path))]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([Problem("", f"this is not valid YAML: {reason}", line, str(path))]) from None
    finally:
        loader.dispose()
    lines.walk(node, prefix, str(path))
    return data


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
    lines: _Lines = field(default_factory=_Lines, repr=False)

    def problem(self, path: Path_, message: str) -> Problem:
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
    lines = _Lines()
    data = _read_yaml(path, lines)
    if data is None:
        empty = "the file is empty: start from config/sheetbot.yaml, or run `sheetbot demo`"
        return Inspection(None, [Problem("", empty, None, str(path))], lines)
    if not isinstance(data, dict):
        return Inspection(
            None,
            [Problem("", "the file must be a mapping of keys (timezone:, board:, workflows: …)", 1, str(path))],
            lines,
        )
    problems = list(lines.duplicates) + _included_workflows(path, data, lines)
    # One problem per key: these say it better than pydantic's generic message for the same key.
    specific = _secrets_in_yaml(data, (), lines) + _env_names(data, (), lines) + _times(data, lines)
    specific += _logins_in_urls(data, (), lines)
    claimed = {p.where for p in specific} | {p.where for p in problems if p.where.startswith("include[")}
    problems += specific
    problems += _cross_checks(data, lines)
    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems += [p for p in (_problem_from_pydantic(err, lines) for err in exc.errors()) if p.where not in claimed]
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


def _included_workflows(path: Path, data: dict[str, Any], lines: _Lines) -> list[Problem]:
    """Merge `workflows:` from the files named in `include:` into data (in place)."""
    includes = data.get("include") or []
    if not isinstance(includes, list):
        return []  # pydantic reports the type
    problems: list[Problem] = []
    workflows = data.get("workflows")
    if workflows is None:
        workflows = data["workflows"] = {}
    # Not a mapping: pydantic reports that; the patterns are still checked, nothing is merged.
    merge = isinstance(workflows, dict)
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
            sub_lines = _Lines()
            try:
                sub = _read_yaml(Path(match), sub_lines)
            except ConfigError as exc:  # an included file that is not YAML is one more problem, not the end
                problems += exc.problems
                continue
            if not merge:
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
                if name in workflows:
                    problems.append(
                        sub_lines.problem(
                            ("workflows", str(name)),
                            f"workflow {name!r} is defined twice (again in {match}): rename or remove one",
                        )
                    )
                    continue
                workflows[name] = body
            for key, where_ in sub_lines.lines.items():
                lines.lines.setdefault(key, where_)
            for key, scalar in sub_lines.scalars.items():
                lines.scalars.setdefault(key, scalar)
            problems += sub_lines.duplicates
    return problems


def _secrets_in_yaml(data: Any, path: Path_, lines: _Lines) -> list[Problem]:
    """A key that holds a secret. The message never repeats the value: check output ends up in CI logs."""
    problems: list[Problem] = []
    if isinstance(data, dict):
        for key, value in data.items():
            child = (*path, str(key))
            if str(key) in _SECRET_KEYS and value not in (None, ""):
                problems.append(
                    lines.problem(
                        child,
                        "secrets do not belong in the YAML: remove this key, put the value in an environment "
                        f"variable and name the variable with `{_SECRET_KEYS[str(key)]}`",
                    )
                )
            else:
                problems += _secrets_in_yaml(value, child, lines)
    elif isinstance(data, list):
        for index, item in enumerate(data):
            problems += _secrets_in_yaml(item, (*path, index), lines)
    return problems


def _logins_in_urls(data: Any, path: Path_, lines: _Lines) -> list[Problem]:
    """`https://user:password@host` in any value (base_url, webhooks): a credential written in the YAML."""
    if isinstance(data, str):
        if url_with_login(data):
            message = (
                "a URL with `user:password@` puts a credential in the YAML: remove it and give the login "
                "through the key's environment variable (e.g. api_key_env)"
            )
            return [lines.problem(path, message)]
        return []
    problems: list[Problem] = []
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        problems += _logins_in_urls(value, (*path, key if isinstance(key, int) else str(key)), lines)
    return problems


def _env_names(data: Any, path: Path_, lines: _Lines) -> list[Problem]:
    """`api_key_env: sk-…` is the key itself pasted in the wrong place: refuse it without repeating it."""
    problems: list[Problem] = []
    if isinstance(data, dict):
        for key, value in data.items():
            child = (*path, str(key))
            if str(key).endswith("_env") and isinstance(value, str) and not _ENV_NAME.match(value):
                problems.append(
                    lines.problem(
                        child,
                        "must name an environment variable (letters, digits and _, e.g. ANTHROPIC_API_KEY), "
                        "not hold the secret itself: put the value in that variable",
                    )
                )
            else:
                problems += _env_names(value, child, lines)
    elif isinstance(data, list):
        for index, item in enumerate(data):
            problems += _env_names(item, (*path, index), lines)
    return problems


def _times(data: dict[str, Any], lines: _Lines) -> list[Problem]:
    """Times written without quotes: YAML turns 17:00 into 1020, which must not become 00:17."""
    problems: list[Problem] = []
    for key_path in _TIME_KEYS:
        value: Any = data
        for key in key_path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        text = lines.scalars.get(key_path, (str(value), None))[0]
        if _HH_MM.match(text):
            message = f'write the time in quotes, "{text}": without them YAML reads {text} as the number {value}'
        else:
            message = f'{text} is not a time: write it as "HH:MM" in quotes, e.g. "17:00"'
        problems.append(lines.problem(key_path, message))
    return problems


def _kind(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    return type(value).__name__


def _problem_from_pydantic(err: Any, lines: _Lines) -> Problem:
    loc: Path_ = tuple(err["loc"])
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        message = f"unknown key {loc[-1]!r}: check its spelling (see config/sheetbot.yaml for the keys)"
        if any(str(p) in _SECRET_KEYS for p in loc):
            message = "secrets do not belong in the YAML: name an environment variable instead"
    elif kind == "missing":
        message = f"this key is required: add `{loc[-1]}:`"
    elif kind == "literal_error":
        message = f"{value!r} is not allowed here; use one of {ctx.get('expected', '')}"
    elif kind in {"time_parsing", "time_type"}:
        message = f'{value!r} is not a time: write it as "HH:MM" in quotes, e.g. "17:00"'
    elif kind in {"dict_type", "model_type", "model_attributes_type"}:
        message = f"must be a mapping of `key: value` lines, not {_kind(value)}"
    elif kind == "string_type":
        message = f"must be text, not {_kind(value)}"
        if isinstance(value, bool):
            message += ': YAML reads yes/no/on/off as true/false, so put the word in quotes, e.g. "yes"'
    elif kind == "list_type":
        message = f"must be a list, e.g. [a, b], not {_kind(value)}"
    elif kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        message = str(err["msg"]).replace("Input should be", "must be") + f", not {value!r}"
    else:
        message = str(err["msg"]).removeprefix("Value error, ").replace("Input should be", "must be")
    return lines.problem(loc, message)


def _cross_checks(data: dict[str, Any], lines: _Lines) -> list[Problem]:
    """What pydantic cannot see: keys that must agree with each other.

    Works on the raw data, wary of wrong types (pydantic reports those), so that these problems are
    listed even when some other key does not validate.
    """
    problems: list[Problem] = []

    def add(path: Path_, message: str) -> None:
        problems.append(lines.problem(path, message))

    def mapping(value: Any) -> dict[Any, Any]:
        return value if isinstance(value, dict) else {}

    providers = data.get("providers")
    prices = data.get("prices")
    workflows = data.get("workflows")
    for name, provider in mapping(providers).items():
        kind = mapping(provider).get("kind")
        if kind is None and name not in _PROVIDER_KINDS:
            add(
                ("providers", str(name)),
                f"unknown provider {name!r}: name it anthropic or openai, or add "
                "`kind: openai` for an OpenAI-compatible server",
            )
    if workflows is None or workflows == {}:
        add(("workflows",), "no workflows are defined: add one under `workflows:` (see config/workflows/)")
    # A `providers:` or `prices:` of the wrong type is pydantic's to report, not a missing entry.
    providers_ok = providers is None or isinstance(providers, dict)
    prices_ok = prices is None or isinstance(prices, dict)
    for name, wf in mapping(workflows).items():
        where: Path_ = ("workflows", str(name))
        wf = mapping(wf)
        provider, model = wf.get("provider"), wf.get("model")
        if isinstance(provider, str) and providers_ok and provider not in mapping(providers):
            known = ", ".join(sorted(map(str, mapping(providers)))) or "none"
            add(
                (*where, "provider"),
                f"provider {provider!r} is not configured under `providers:` (configured: {known}): "
                f"add `{provider}: {{api_key_env: …}}` there or use a configured one",
            )
        models: list[tuple[Path_, Any]] = [((*where, "model"), model)]
        steps = wf.get("steps")
        if isinstance(steps, list):  # a step may use a model of its own
            models += [((*where, "steps", i, "model"), mapping(step).get("model")) for i, step in enumerate(steps)]
        for key_path, name_ in models:
            if isinstance(name_, str) and prices_ok and name_ not in mapping(prices):
                add(
                    key_path,
                    f"model {name_!r} has no price: add `prices: {{{name_}: "
                    "{input: …, output: …}}` in dollars per million tokens (0 for a local model)",
                )
    board = mapping(data.get("board"))
    if board.get("kind") == "google_sheets" and not board.get("spreadsheet"):
        add(("board", "spreadsheet"), "google_sheets needs `spreadsheet:` (the sheet's key or URL)")
    if board.get("kind") == "airtable" and not board.get("base"):
        add(("board", "base"), "airtable needs `base:` (the base id, appXXXXXXXXXXXXXX)")
    columns = mapping(board.get("columns"))
    headers = [str(columns.get(name, default)) for name, default in ColumnsConfig().logical().items()]
    dupes = sorted({h for h in headers if headers.count(h) > 1})
    if dupes:
        add(("board", "columns"), f"two columns share the header {dupes[0]!r}: give each its own")
    return problems


def iter_problems(problems: list[Problem]) -> Iterator[str]:
    for problem in problems:
        yield str(problem)
