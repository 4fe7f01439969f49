"""`{{column}}` templates: one pass of plain substitution, nothing evaluated.

Cell values are data. They are inserted as text and never scanned again, so a
cell holding ``{{brand}}`` or ``{% for %}`` reaches the prompt exactly as typed.
No template engine is used on purpose: an engine would evaluate the templates
admins write, and that is more power than a prompt needs and one more way for
a sheet's contents to reach code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from sheetbot.errors import TemplateError

#: {{ name }}: a column header (letters, digits, spaces, _ - .), e.g. {{input}}, {{Product name}}.
PLACEHOLDER = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")


#: After the placeholders are taken out: `{{name}` (not closed), and `{name}}` (opened with one brace).
_UNCLOSED = re.compile(r"\{\{([^{}\n]{0,60})\}?")
_HALF_OPENED = re.compile(r"(?<!\{)\{\s*([A-Za-z_][\w .-]{0,60}?)\s*\}\}")


def brace_problems(template: str) -> list[str]:
    """Braces that open or close no placeholder, each said with its fix: `{{x}` would reach the model as
    typed, never filled in. A lone `}}` is left alone: JSON examples in prompts end with it."""
    rest = PLACEHOLDER.sub(lambda m: " " * len(m.group(0)), template)
    out: list[str] = []
    for match in _UNCLOSED.finditer(rest):
        name = match.group(1).strip()
        fix = f"write {{{{{name}}}}}" if name else "close it with }}, or remove it"
        out.append(f"`{match.group(0).strip()}` is not closed: {fix}")
    for match in _HALF_OPENED.finditer(rest):
        out.append(f"`{match.group(0)}` opens with one brace: write {{{{{match.group(1)}}}}}")
    return out


def placeholders(template: str) -> list[str]:
    """The names a template uses, in order, without repeats."""
    seen: dict[str, None] = {}
    for match in PLACEHOLDER.finditer(template):
        seen.setdefault(match.group(1), None)
    return list(seen)


def render(template: str, lookup: Callable[[str], str | None]) -> str:
    """Replace each placeholder by ``lookup(name)``; a name it does not know raises TemplateError."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        value = lookup(name)
        if value is None:
            raise TemplateError(f"the template uses {{{{{name}}}}}, but there is no column {name!r}")
        return value

    return PLACEHOLDER.sub(substitute, template)


def row_lookup(values: Mapping[str, str], aliases: Mapping[str, str]) -> Callable[[str], str | None]:
    """Look a name up as a logical column renamed in the YAML (input → 'Brief'), then as a column header.

    The mapping comes first: a board whose `input` column was renamed `Brief` often keeps a leftover column
    still headed `input`, and {{input}} must read what the YAML says is the input, not the leftover."""

    def lookup(name: str) -> str | None:
        header = aliases.get(name)
        if header is not None and header != name:
            return values.get(header, "")
        if name in values:
            return values[name]
        if header is not None:
            return ""
        return None

    return lookup
