"""What the morning's steps of a harvest report back: the Dashboard's redraw and the approval-gated actions.

Declared in the night, below the morning that fills them (sheetbot/morning/dashboard.py and on_approve.py),
so that the harvest's own report can carry them while the night imports nothing above it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DashboardReport:
    written: bool = False
    rows: int = 0
    #: Why the dashboard was not written (no capability, or the error), for the harvest's summary.
    problem: str | None = None
    skipped: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass
class ActionsReport:
    published: list[str] = field(default_factory=list)
    #: (task id, why) for actions left for the next harvest.
    pending: list[tuple[str, str]] = field(default_factory=list)
    #: Chained workflows (morning/chains.py): the rows added to the board, and why some wait, if they do.
    chained: list[str] = field(default_factory=list)
    chain_problem: str | None = None
