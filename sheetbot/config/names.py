"""A name the user typed that is not one sheetbot knows: say the closest it does know.

Used for workflows named on the command line and keys written in the YAML, so that `lisitng` or
`max_token` is answered with "did you mean listing?" instead of a bare "unknown".
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from sheetbot.config.models import Config
from sheetbot.errors import SheetbotError


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The known name nearest to ``name`` (difflib's ratio of at least 0.6), or None."""
    found = difflib.get_close_matches(name, list(choices), n=1)
    return found[0] if found else None


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """ " Did you mean X?" for the closest choice, or "" when nothing is close."""
    near = closest(name, choices)
    return f" Did you mean {near}?" if near else ""


def require_workflow(config: Config, name: str, *, also: Iterable[str] = ()) -> None:
    """Raise a one-line error unless ``name`` is a workflow of the YAML (or one of ``also``, e.g. workflows
    still paused in the state file after their YAML entry was removed)."""
    known = sorted({*config.workflows, *also})
    if name in known:
        return
    listed = ", ".join(known) or "none"
    raise SheetbotError(f"no workflow {name!r} in the YAML.{did_you_mean(name, known)} Known workflows: {listed}")
