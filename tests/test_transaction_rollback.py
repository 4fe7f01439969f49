"""`State.transaction` leaves nothing behind when its body fails.

Every money rule of the state leans on this: a phase's moves, its night record and its audit line are
one commit or none, on both engines. The checks read the real state through a second connection (another process
would see exactly this), never through the State that wrote it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from state_backends import Target, read_back

from sheetbot.errors import TransitionError
from sheetbot.state import State
from sheetbot.status import Status

NOW = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)


class Boom(Exception):
    """The body of a transaction fails after it wrote."""


class Killed(BaseException):
    """Not an Exception (KeyboardInterrupt, a cancelled task): must roll back all the same."""


def on_disk(target: Target, sql: str) -> list[tuple[object, ...]]:
    """What a second connection, as another process, reads from the state."""
    return read_back(target, sql)


def task_ids(target: Target) -> list[str]:
    return [str(r[0]) for r in on_disk(target, "SELECT task_id FROM tasks ORDER BY seq")]


@pytest.fixture
def state(state_backend: Target) -> Iterator[State]:
    with State(state_backend) as state:
        yield state


@pytest.mark.parametrize("error", [Boom, Killed])
def test_a_body_that_raises_leaves_nothing_in_the_file(state: State, error: type[BaseException]) -> None:
    with pytest.raises(error), state.transaction():
        state.add_task("T-1", now=NOW)  # a nested transaction: joins this one
        state.move("T-1", Status.LOCKED, now=NOW, night="2026-11-23")
        state.night_event("2026-11-23", locked_at=NOW.isoformat())
        assert task_ids(state.target) == []  # not committed yet: another process sees nothing meanwhile
        raise error("the phase failed after its writes")
    assert task_ids(state.target) == []
    assert on_disk(state.target, "SELECT night FROM nights") == []
    assert state.task("T-1") is None  # the writing connection agrees with the file


def test_a_failure_in_a_nested_block_undoes_the_outer_writes_too(state: State) -> None:
    state.add_task("kept", now=NOW)
    with pytest.raises(Boom), state.transaction():
        state.move("kept", Status.LOCKED, now=NOW, night="2026-11-23")
        state.add_task("new", now=NOW)
        with state.transaction():
            state.move("new", Status.DEFERRED, now=NOW, error="over the cap")
            raise Boom
    assert task_ids(state.target) == ["kept"]
    assert on_disk(state.target, "SELECT status, night FROM tasks") == [("queued", None)]


def test_the_store_works_on_after_a_rollback_and_commits_the_next_transaction(state: State) -> None:
    with pytest.raises(Boom), state.transaction():
        state.add_task("lost", now=NOW)
        raise Boom
    with state.transaction():
        state.add_task("T-2", now=NOW)
        state.move("T-2", Status.LOCKED, now=NOW)
    assert on_disk(state.target, "SELECT task_id, status FROM tasks") == [("T-2", "locked")]
    state.close()
    with State(state.target) as again:  # and a new process opening the file sees the same
        assert list(again.tasks()) == ["T-2"]


def test_a_refused_move_inside_a_transaction_undoes_the_moves_before_it(state: State) -> None:
    state.add_task("a", now=NOW)
    state.add_task("b", now=NOW)
    with pytest.raises(TransitionError), state.transaction():
        state.move("a", Status.LOCKED, now=NOW)
        state.move("b", Status.APPROVED, now=NOW)  # queued → approved: refused, so "a" is not locked either
    assert on_disk(state.target, "SELECT task_id, status FROM tasks ORDER BY seq") == [("a", "queued"), ("b", "queued")]
