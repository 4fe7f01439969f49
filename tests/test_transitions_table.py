"""The whole transition table, walked through the real store: every listed move is taken, every other
change of status is refused with TransitionError and leaves the row as it was.

A move to the row's own status is not a change of status: the store always takes it (it updates the
row's other fields, e.g. a new note in `error`), whether or not the table lists X → X. The code relies
on it for review, queued, approved and edited rows (see sheetbot/status.py).
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import count

import pytest

from sheetbot.errors import TransitionError
from sheetbot.state import State
from sheetbot.status import FINAL, LOCKABLE, TRANSITIONS, Status

S = Status
NOW = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)

#: The lifecycle as the product defines it (design.md's row lifecycle, plus `published` for approval-gated
#: actions). A copy on purpose: changing the table in sheetbot/status.py is a product decision, and this
#: test makes it a visible one.
LIFECYCLE: dict[Status, set[Status]] = {
    S.QUEUED: {S.LOCKED, S.DEFERRED, S.FAILED},
    S.DEFERRED: {S.LOCKED, S.DEFERRED, S.FAILED, S.QUEUED},
    S.REWORK: {S.LOCKED, S.DEFERRED, S.FAILED},
    S.LOCKED: {S.RUNNING, S.REVIEW, S.DEFERRED, S.FAILED},
    S.RUNNING: {S.RUNNING, S.REVIEW, S.DEFERRED, S.FAILED},
    # QUEUED, LOCKED: a review gate between steps passed, for the next night or tonight's window (issue 14)
    S.REVIEW: {S.APPROVED, S.EDITED, S.REWORK, S.QUEUED, S.LOCKED},
    S.FAILED: {S.QUEUED, S.LOCKED, S.DEFERRED, S.FAILED},
    S.APPROVED: {S.PUBLISHED},
    S.EDITED: {S.PUBLISHED},
    S.PUBLISHED: set(),
}

PAIRS = [(old, new) for old in Status for new in Status]


def path_to(target: Status) -> list[Status]:
    """The shortest walk along TRANSITIONS from `queued` (where every task starts) to ``target``."""
    seen = {S.QUEUED: [S.QUEUED]}
    todo = deque([S.QUEUED])
    while todo:
        here = todo.popleft()
        for there in sorted(TRANSITIONS[here]):
            if there not in seen:
                seen[there] = [*seen[here], there]
                todo.append(there)
    return seen[target]


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[State]:
    """One real state file for the whole walk: each pair gets a task of its own."""
    with State(tmp_path_factory.mktemp("transitions") / "sheetbot.db") as state:
        yield state


_ids = count()


def task_in(state: State, status: Status) -> str:
    """A new task, moved through the store from `queued` to ``status``."""
    task_id = f"T-{next(_ids)}"
    state.add_task(task_id, now=NOW)
    for step in path_to(status)[1:]:
        state.move(task_id, step, now=NOW)
    assert state.task(task_id).status == status  # type: ignore[union-attr]
    return task_id


def on_disk(state: State, task_id: str) -> tuple[str, str | None]:
    """The row's status and error as another connection reads them from the file."""
    db = sqlite3.connect(state.path)
    try:
        row = db.execute("SELECT status, error FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
    finally:
        db.close()
    return row[0], row[1]


def test_the_table_is_the_products_lifecycle() -> None:
    assert {old: set(new) for old, new in TRANSITIONS.items()} == LIFECYCLE
    assert set(TRANSITIONS) == set(Status)  # every status has a row: the store never meets an unknown one
    assert all(not (TRANSITIONS[s] - {S.PUBLISHED}) for s in FINAL)  # final rows never run again
    assert all(S.LOCKED in TRANSITIONS[s] for s in LOCKABLE)


def test_every_status_is_reachable_from_queued() -> None:
    assert {path_to(s)[-1] for s in Status} == set(Status)


@pytest.mark.parametrize(("old", "new"), PAIRS, ids=[f"{o}->{n}" for o, n in PAIRS])
def test_every_pair_of_statuses_through_the_store(state: State, old: Status, new: Status) -> None:
    task_id = task_in(state, old)
    state.move(task_id, old, now=NOW, error="before")  # the row's own status: always taken
    if new in TRANSITIONS[old] or new == old:
        state.move(task_id, new, now=NOW, error="moved")
        assert on_disk(state, task_id) == (str(new), "moved")
    else:
        with pytest.raises(TransitionError, match=f"{old} → {new} is not an allowed status change"):
            state.move(task_id, new, now=NOW, error="moved")
        assert on_disk(state, task_id) == (str(old), "before")  # refused: nothing of the move was written


@pytest.mark.parametrize("status", [s for s in Status if s not in TRANSITIONS[s]])
def test_a_move_to_the_same_status_is_taken_even_where_the_table_does_not_list_it(state: State, status: Status) -> None:
    """The documented rule (sheetbot/status.py): X → X is not a change of status. It updates the row's
    fields and marks it for the board, e.g. "publishing failed" on an approved row, a new problem note
    on a row in review."""
    task_id = task_in(state, status)
    state.mark_synced([p.task_id for p in state.dirty()])
    state.move(task_id, status, now=NOW, error="a new note")
    assert on_disk(state, task_id) == (str(status), "a new note")
    assert [p.task_id for p in state.dirty()] == [task_id]  # and the board is told
    state.mark_synced([task_id])
