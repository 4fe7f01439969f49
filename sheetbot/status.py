"""Row statuses and the one table of allowed transitions.

The state store (``State.move``) refuses any change of status not listed here, so a bug elsewhere
cannot, say, send an approved row back to the model and pay for it twice.

A move to the row's own status (X → X) is not a change of status: the store takes it for every status,
listed here or not, and only updates the row's other fields (its `error` note, the mark that the board
is behind). The night relies on it: a failed publish is noted on an approved or edited row
(morning/on_approve.py), a problem on a row in review (harvest, run), a note on a new queued row (repair).
The X → X entries in the table (deferred, running, failed) say which moves the night makes on purpose;
the store does not need them. tests/test_transitions_table.py walks every pair through the store.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    QUEUED = "queued"
    LOCKED = "locked"
    RUNNING = "running"
    REVIEW = "review"
    APPROVED = "approved"
    EDITED = "edited"
    REWORK = "rework"
    DEFERRED = "deferred"
    FAILED = "failed"
    #: An approved or edited row whose final text was delivered by its workflow's `on_approve` action.
    PUBLISHED = "published"


class Decision(StrEnum):
    """What a reviewer picks in the `review` dropdown."""

    APPROVE = "approve"
    EDIT = "edit"
    REWORK = "rework"


S = Status

#: from-status -> the statuses it may move to.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    S.QUEUED: frozenset({S.LOCKED, S.DEFERRED, S.FAILED}),
    S.DEFERRED: frozenset({S.LOCKED, S.DEFERRED, S.FAILED, S.QUEUED}),
    S.REWORK: frozenset({S.LOCKED, S.DEFERRED, S.FAILED}),
    S.LOCKED: frozenset({S.RUNNING, S.REVIEW, S.DEFERRED, S.FAILED}),
    # RUNNING -> RUNNING: a restarted run picks up where a killed one stopped.
    S.RUNNING: frozenset({S.RUNNING, S.REVIEW, S.DEFERRED, S.FAILED}),
    # REVIEW -> QUEUED: a review gate between steps was passed; the next step runs the next night (night/gates.py).
    # REVIEW -> LOCKED: the same, with `resume: same_window` while tonight's window is open: it runs tonight.
    S.REVIEW: frozenset({S.APPROVED, S.EDITED, S.REWORK, S.QUEUED, S.LOCKED}),
    # A person sends a dead-lettered row back by setting its status to `queued`;
    # a row that failed validation is re-checked at every lock.
    S.FAILED: frozenset({S.QUEUED, S.LOCKED, S.DEFERRED, S.FAILED}),
    # Only an approval-gated action (sheetbot/morning/on_approve.py) moves a final row on, once it was delivered.
    S.APPROVED: frozenset({S.PUBLISHED}),
    S.EDITED: frozenset({S.PUBLISHED}),
    S.PUBLISHED: frozenset(),
}

#: Statuses whose rows are candidates at the next cutoff.
LOCKABLE: frozenset[Status] = frozenset({S.QUEUED, S.DEFERRED, S.REWORK})

#: Final statuses: the row never runs again.
FINAL: frozenset[Status] = frozenset({S.APPROVED, S.EDITED, S.PUBLISHED})

PRIORITIES: tuple[str, ...] = ("P0", "P1", "P2", "P3")
DEFAULT_PRIORITY = "P2"


def can_move(current: Status, new: Status) -> bool:
    return new in TRANSITIONS[current]


#: Status → the statuses a row may be in to move to it, itself included (the same status passes from any):
#: the store puts them in its UPDATE's WHERE, so a move is one statement.
MOVES_INTO: dict[Status, tuple[str, ...]] = {
    new: tuple(str(old) for old in Status if old == new or can_move(old, new)) for new in Status
}


def parse_status(text: object) -> Status | None:
    """The status a person typed in a cell, or None for blank or unknown text."""
    value = str(text or "").strip().lower()
    try:
        return Status(value)
    except ValueError:
        return None


def parse_decision(text: object) -> Decision | None:
    """The decision a reviewer typed or picked, in any case and with stray spaces (`Approve `), or None.
    People type into dropdown cells too, and a sheet keeps what they type: `Approve ` must still approve."""
    value = str(text or "").strip().lower()
    try:
        return Decision(value)
    except ValueError:
        return None


def parse_priority(text: object) -> str | None:
    """`P0`..`P3` (also `0`..`3`, any case); blank means the default; None means unusable."""
    value = str(text or "").strip().upper()
    if not value:
        return DEFAULT_PRIORITY
    if value in PRIORITIES:
        return value
    if value in {"0", "1", "2", "3"}:
        return f"P{value}"
    return None
