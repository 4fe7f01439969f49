"""The lifecycle table and what a person may type, pinned where mutation testing found no test to notice a change.

The transition table is what stops a bug elsewhere from sending a reviewed or approved row back to the model
(paying for it twice); the parsers decide which rows a person's typing queues, and in which order.
"""

from __future__ import annotations

import pytest

from sheetbot.status import FINAL, LOCKABLE, TRANSITIONS, Status, can_move, parse_priority, parse_status

S = Status


def test_no_row_that_ran_or_was_decided_goes_back_to_the_model_without_a_person() -> None:
    for done in (S.APPROVED, S.EDITED, S.PUBLISHED):
        assert not can_move(done, S.LOCKED) and not can_move(done, S.RUNNING) and not can_move(done, S.QUEUED)
    assert not can_move(S.REVIEW, S.RUNNING)
    assert TRANSITIONS[S.PUBLISHED] == frozenset()
    assert TRANSITIONS[S.APPROVED] == TRANSITIONS[S.EDITED] == frozenset({S.PUBLISHED})
    # QUEUED and LOCKED: only a person's approve or edit at a review gate between steps (issue 14,
    # sheetbot/night/gates.py) sends a row in review on to its next step; its stored steps are never called again.
    assert TRANSITIONS[S.REVIEW] == frozenset({S.APPROVED, S.EDITED, S.REWORK, S.QUEUED, S.LOCKED})


def test_the_moves_a_night_makes_are_allowed() -> None:
    night = [
        (S.QUEUED, S.LOCKED),
        (S.LOCKED, S.RUNNING),
        (S.RUNNING, S.RUNNING),  # a restarted run picks up where a killed one stopped
        (S.RUNNING, S.REVIEW),
        (S.REVIEW, S.REWORK),
        (S.REWORK, S.LOCKED),
        (S.LOCKED, S.DEFERRED),
        (S.DEFERRED, S.QUEUED),
        (S.FAILED, S.QUEUED),
        (S.FAILED, S.LOCKED),
        (S.APPROVED, S.PUBLISHED),
    ]
    for current, new in night:
        assert can_move(current, new), (current, new)
    assert not can_move(S.QUEUED, S.RUNNING)  # nothing runs that the lock did not take
    assert not can_move(S.QUEUED, S.REVIEW)
    assert not can_move(S.REWORK, S.QUEUED)


def test_lockable_and_final_statuses() -> None:
    assert frozenset({S.QUEUED, S.DEFERRED, S.REWORK}) == LOCKABLE
    assert frozenset({S.APPROVED, S.EDITED, S.PUBLISHED}) == FINAL


@pytest.mark.parametrize(
    ("typed", "status"),
    [("queued", S.QUEUED), ("  Review ", S.REVIEW), ("APPROVED", S.APPROVED), ("", None), (None, None), ("done", None)],
)
def test_a_typed_status_is_read_whatever_its_case_and_spaces(typed: object, status: Status | None) -> None:
    assert parse_status(typed) == status


@pytest.mark.parametrize(
    ("typed", "priority"),
    [
        ("P0", "P0"),
        (" p1 ", "P1"),
        ("p3", "P3"),
        ("0", "P0"),
        ("1", "P1"),
        ("3", "P3"),
        (2, "P2"),
        ("", "P2"),
        (None, "P2"),
        ("  ", "P2"),
        ("P4", None),
        ("4", None),
        ("high", None),
    ],
)
def test_a_typed_priority_is_p0_to_p3_blank_is_p2(typed: object, priority: str | None) -> None:
    assert parse_priority(typed) == priority
