"""One YAML file read safely, and where each key in it was written.

A config is a page of settings, so the reader refuses what no config needs and a hostile file would
("billion laughs", /dev/zero, a FIFO): the caps below are checked while composing, before anything is
expanded. `Lines` remembers the file and line of every key path, so each problem can point at it.
"""

from __future__ import annotations

import stat
from pathlib import Path

import yaml

from sheetbot.errors import ConfigError, Problem

#: A key path in the YAML, e.g. ("workflows", "blog", "steps", 0, "model").
KeyPath = tuple[str | int, ...]


class Lines:
    """Where each key path was written: file and line."""

    def __init__(self) -> None:
        self.lines: dict[KeyPath, tuple[str, int]] = {}
        #: The text of each scalar as written (quoted or not), e.g. `17:00` that YAML read as 1020.
        self.scalars: dict[KeyPath, tuple[str, str | None]] = {}
        self.duplicates: list[Problem] = []

    def find(self, path: KeyPath) -> tuple[str | None, int | None]:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None, None

    def problem(self, path: KeyPath, message: str) -> Problem:
        file, line = self.find(path)
        return Problem(dotted(path), message, line, file)

    def walk(self, node: yaml.Node, path: KeyPath, file: str) -> None:
        if isinstance(node, yaml.ScalarNode):
            self.scalars[path] = (str(node.value), node.style)
        elif isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                child = (*path, key)
                line = key_node.start_mark.line + 1
                if key in seen:
                    self.duplicates.append(Problem(dotted(child), "this key appears twice; keep one", line, file))
                seen.add(key)
                self.lines[child] = (file, line)
                self.walk(value_node, child, file)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                child = (*path, index)
                self.lines[child] = (file, item.start_mark.line + 1)
                self.walk(item, child, file)


def dotted(path: KeyPath) -> str:
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


#: What PyYAML says when a line is indented more or less than its neighbours (or a list item sits among keys).
_INDENTATION = ("expected <block end>", "did not find expected key", "did not find expected '-' indicator")


def explain_yaml_error(reason: str, line: int | None) -> str:
    """PyYAML's reason, said for a person who edits YAML by hand: which line, and the usual cause.
    Almost every YAML mistake in a config is a line indented wrongly; PyYAML's words do not say so."""
    if line is None:
        return f"this is not valid YAML: {reason}"
    said = f"this is not valid YAML ({reason})"
    if "\\t" in reason or "\t" in reason:  # PyYAML writes the tab as '\\t'
        return f"{said}: line {line} is indented with a tab: indent with spaces"
    if reason.startswith("mapping values are not allowed"):
        return (
            f"{said}: check the indentation of line {line} (a key lines up with the keys beside it), "
            "or put a value that holds ': ' in quotes"
        )
    if reason.startswith(_INDENTATION):
        return f"{said}: check the indentation of line {line}: it must line up with the lines it belongs with"
    return f"{said}: check line {line}"


def read_yaml(path: Path, lines: Lines, prefix: KeyPath = ()) -> object:
    """The document as YAML read it (None if empty), its keys' lines noted in `lines`; ConfigError if refused."""
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
        raise ConfigError([Problem("", explain_yaml_error(reason, line), line, str(path))]) from None
    finally:
        loader.dispose()
    lines.walk(node, prefix, str(path))
    return data
