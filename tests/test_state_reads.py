"""The named reads of the state (issue 12, item 2): every question the night, the morning, batch and the CLI
ask the state, over a real SQLite file filled through the store's own writers.

Each test holds the edge the caller relies on: nothing when nothing was stored, one entry per attempt when a
rework ran again the same night, and other nights', workflows' and events' rows left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from harness import at, stored_call
from state_backends import Target

from sheetbot.morning.messages import what_broke
from sheetbot.state import Attempt, State, Task
from sheetbot.state.records import CallUsage, OutputProduced, ReviewedOutput, Spend
from sheetbot.status import Status

NIGHT, OTHER = "2026-11-23", "2026-11-24"
NOW = at("2026-11-24T01:00")


@pytest.fixture
def state(state_backend: Target) -> Iterator[State]:
    with State(state_backend) as opened:
        yield opened


def call(task_id: str, *, night: str = NIGHT, workflow: str = "listing", **values: Any) -> Attempt:
    """A stored model call; ``values`` override the defaults (attempt 1, final step, answered)."""
    return stored_call(task_id, night=night, workflow=workflow, **values)


def review(
    state: State,
    task_id: str,
    decision: str,
    *,
    night: str | None = NIGHT,
    attempt: int = 1,
    workflow: str = "listing",
    notes: str = "",
    edited: str | None = None,
    now: datetime = NOW,
) -> None:
    task = Task(task_id, 1, NOW.isoformat(), Status.REVIEW, workflow=workflow, night=night, attempt=attempt)
    state.record_review(task, decision, notes=notes, edited_output=edited, now=now)


# -- what the night asks -------------------------------------------------------------------------------------


def test_tasks_locked_for_counts_every_row_taken_tonight_but_not_over_cap_nor_other_nights(state: State) -> None:
    assert state.tasks_locked_for(NIGHT) == {}
    for task_id, workflow, attempt, outcome in [
        ("a", "listing", 1, "locked"),
        ("b", "listing", 1, "done"),
        ("b", "listing", 2, "failed"),  # a rework run again the same night: a second row taken
        ("c", "blog", 1, "deferred"),
        ("d", "blog", 1, "over_cap"),  # never taken: the cap was full
    ]:
        state.night_task(NIGHT, task_id, workflow=workflow, attempt=attempt, outcome=outcome)
    state.night_task(OTHER, "e", workflow="blog", attempt=1, outcome="locked")
    assert state.tasks_locked_for(NIGHT) == {"listing": 3, "blog": 1}
    assert state.tasks_locked_for(OTHER) == {"blog": 1}
    assert state.tasks_locked_for("2026-11-25") == {}


def test_night_has_tasks_only_for_the_night_that_recorded_one(state: State) -> None:
    assert not state.night_has_tasks("trial-2026-11-23")
    state.night_task("trial-2026-11-23", "a", workflow="listing", attempt=1, outcome="over_cap")
    assert state.night_has_tasks("trial-2026-11-23")
    assert not state.night_has_tasks("trial-2026-11-24")


def test_task_ids_to_write_are_the_dirty_tasks_of_that_status_only(state: State) -> None:
    assert state.task_ids_to_write(Status.REVIEW) == []
    for task_id in ("fresh", "written", "locked"):
        state.add_task(task_id, now=NOW)
        state.move(task_id, Status.LOCKED, now=NOW)
    for task_id in ("fresh", "written"):
        state.move(task_id, Status.RUNNING, now=NOW)
        state.move(task_id, Status.REVIEW, now=NOW)
    state.mark_synced(["written"])
    assert state.task_ids_to_write(Status.REVIEW) == ["fresh"]
    assert state.task_ids_to_write(Status.LOCKED) == ["locked"]
    state.mark_synced(["fresh", "locked"])
    assert state.task_ids_to_write(Status.REVIEW) == []


def test_reasons_of_night_one_per_row_and_attempt_in_task_order(state: State) -> None:
    assert state.reasons_of_night(NIGHT, "failed") == []
    state.night_task(NIGHT, "b", workflow="listing", attempt=1, outcome="failed", reason="too long")
    state.night_task(NIGHT, "a", workflow="listing", attempt=2, outcome="failed", reason="refused")
    state.night_task(NIGHT, "a", workflow="listing", attempt=1, outcome="failed", reason="too long")
    state.night_task(NIGHT, "c", workflow="blog", attempt=1, outcome="deferred", reason="quota")
    state.night_task(OTHER, "d", workflow="blog", attempt=1, outcome="failed", reason="other night")
    assert state.reasons_of_night(NIGHT, "failed") == ["too long", "refused", "too long"]
    assert state.reasons_of_night(NIGHT, "deferred") == ["quota"]
    assert state.reasons_of_night(OTHER, "failed") == ["other night"]


# -- reviews and the audit log -------------------------------------------------------------------------------


def test_edited_text_is_the_latest_edit_of_that_attempt(state: State) -> None:
    assert state.edited_text("a", 1) is None
    review(state, "a", "approve")
    assert state.edited_text("a", 1) is None  # decided, but not edited
    review(state, "a", "edit", edited="first")
    review(state, "a", "edit", edited="second")
    review(state, "a", "edit", attempt=2, edited="the rework's")
    review(state, "b", "edit", edited="another row's")
    assert state.edited_text("a", 1) == "second"
    assert state.edited_text("a", 2) == "the rework's"
    assert state.edited_text("a", 3) is None
    review(state, "c", "edit", edited="kept")
    review(state, "c", "approve")  # a later decision that is not an edit does not hide the edited text
    assert state.edited_text("c", 1) == "kept"


def test_audit_entries_oldest_first_all_or_one_event(state: State) -> None:
    assert state.audit_entries() == [] and state.audit_entries("lock_task") == []
    state.audit("lock_task", now=NOW, task_id="a", detail={"n": 1})
    state.audit("model_call", now=NOW + timedelta(seconds=1), task_id="a")
    state.audit("lock_task", now=NOW + timedelta(seconds=2), task_id="b", detail={"n": 2})
    every = state.audit_entries()
    assert [(e.event, e.task_id) for e in every] == [("lock_task", "a"), ("model_call", "a"), ("lock_task", "b")]
    assert [e.id for e in every] == sorted(e.id for e in every)
    locks = state.audit_entries("lock_task")
    assert [(e.task_id, e.detail, e.at) for e in locks] == [
        ("a", '{"n": 1}', NOW.isoformat()),
        ("b", '{"n": 2}', (NOW + timedelta(seconds=2)).isoformat()),
    ]


def notified(state: State, kind: str, night: str, *, ok: bool, title: str = "t") -> None:
    state.audit("notified", now=NOW, detail={"kind": kind, "night": night, "title": title, "ok": ok})


def test_notification_delivered_only_when_that_kind_for_that_night_got_through(state: State) -> None:
    assert not state.notification_delivered("night_not_drained", NIGHT)
    notified(state, "night_not_drained", NIGHT, ok=False)  # a failed delivery is tried again
    assert not state.notification_delivered("night_not_drained", NIGHT)
    notified(state, "night_not_drained", OTHER, ok=True)
    notified(state, "output_not_written", NIGHT, ok=True)
    assert not state.notification_delivered("night_not_drained", NIGHT)
    notified(state, "night_not_drained", NIGHT, ok=True)
    assert state.notification_delivered("night_not_drained", NIGHT)


def test_notifications_of_night_sent_or_not_but_not_the_excepted_kind(state: State) -> None:
    assert state.notifications_of_night(NIGHT, except_kind="morning_summary") == []
    notified(state, "output_not_written", NIGHT, ok=False, title="first")
    notified(state, "morning_summary", NIGHT, ok=True, title="summary")
    notified(state, "credentials_refused", OTHER, ok=True, title="other night")
    notified(state, "credentials_refused", NIGHT, ok=True, title="second")
    state.audit("circuit_open", now=NOW, detail={"night": NIGHT, "kind": "x", "title": "not a notification"})
    got = state.notifications_of_night(NIGHT, except_kind="morning_summary")
    assert [d["title"] for d in got] == ["first", "second"]
    assert got[0] == {"kind": "output_not_written", "night": NIGHT, "title": "first", "ok": False}


def test_circuits_opened_since_is_inclusive_and_only_that_event(state: State) -> None:
    since = at("2026-11-24T00:00")
    assert state.circuits_opened_since(since) == []
    state.audit("circuit_open", now=since - timedelta(seconds=1), detail={"provider": "before"})
    state.audit("circuit_open", now=since, detail={"provider": "openai"})
    state.audit("circuit_closed", now=since + timedelta(minutes=1), detail={"provider": "closed"})
    state.audit("circuit_open", now=since + timedelta(minutes=2), detail={"provider": "anthropic"})
    assert [d["provider"] for d in state.circuits_opened_since(since)] == ["openai", "anthropic"]


def test_review_times_in_the_order_recorded(state: State) -> None:
    assert state.review_times() == []
    first, second = at("2026-11-24T09:00"), at("2026-11-24T08:00")
    review(state, "a", "approve", now=first)
    review(state, "b", "rework", now=second)
    assert state.review_times() == [first, second]
    assert all(isinstance(t, datetime) for t in state.review_times())


# -- what the morning counts ---------------------------------------------------------------------------------


def test_recorded_nights_distinct_newest_first_and_limited(state: State) -> None:
    assert state.recorded_nights(7) == []
    for night in ("2026-11-21", "2026-11-23", "2026-11-22"):
        state.night_task(night, "a", workflow="listing", attempt=1, outcome="done")
        state.night_task(night, "b", workflow="blog", attempt=1, outcome="failed")
    assert state.recorded_nights(7) == ["2026-11-23", "2026-11-22", "2026-11-21"]
    assert state.recorded_nights(2) == ["2026-11-23", "2026-11-22"]


def test_outcome_counts_per_workflow_one_per_attempt_this_night_only(state: State) -> None:
    assert state.outcome_counts(NIGHT) == {}
    state.night_task(NIGHT, "a", workflow="listing", attempt=1, outcome="done")
    state.night_task(NIGHT, "a", workflow="listing", attempt=2, outcome="done")  # a rework re-run tonight
    state.night_task(NIGHT, "b", workflow="listing", attempt=1, outcome="over_cap")
    state.night_task(NIGHT, "c", workflow="blog", attempt=1, outcome="failed")
    state.night_task(OTHER, "d", workflow="blog", attempt=1, outcome="done")
    assert state.outcome_counts(NIGHT) == {"listing": {"done": 2, "over_cap": 1}, "blog": {"failed": 1}}


def test_outputs_produced_are_the_done_rows_of_every_night(state: State) -> None:
    assert state.outputs_produced() == []
    state.night_task(NIGHT, "a", workflow="listing", attempt=1, outcome="done")
    state.night_task(NIGHT, "a", workflow="listing", attempt=2, outcome="done")
    state.night_task(NIGHT, "b", workflow="listing", attempt=1, outcome="failed")
    state.night_task(NIGHT, "d", workflow="listing", attempt=1, outcome="deferred")
    state.night_task(NIGHT, "e", workflow="listing", attempt=1, outcome="locked")
    state.night_task(OTHER, "c", workflow="blog", attempt=1, outcome="done")
    assert sorted(state.outputs_produced(), key=lambda o: (o.night, o.task_id, o.attempt)) == [
        OutputProduced(NIGHT, "a", 1),
        OutputProduced(NIGHT, "a", 2),
        OutputProduced(OTHER, "c", 1),
    ]


def test_decision_counts_only_reviews_of_the_attempts_this_night_ran(state: State) -> None:
    assert state.decision_counts(NIGHT) == {}
    state.night_task(NIGHT, "a", workflow="listing", attempt=1, outcome="done")
    state.night_task(NIGHT, "b", workflow="listing", attempt=1, outcome="done")
    state.night_task(NIGHT, "c", workflow="blog", attempt=1, outcome="done")
    state.night_task(OTHER, "d", workflow="blog", attempt=1, outcome="done")
    review(state, "a", "approve")
    review(state, "b", "rework")
    review(state, "b", "approve", attempt=2)  # the rework's attempt 2 ran no night under NIGHT
    review(state, "c", "edit", workflow="blog", edited="x")
    review(state, "d", "approve", night=OTHER, workflow="blog")
    assert state.decision_counts(NIGHT) == {"listing": {"approve": 1, "rework": 1}, "blog": {"edit": 1}}
    assert state.decision_counts(OTHER) == {"blog": {"approve": 1}}


# -- what the calls cost -------------------------------------------------------------------------------------


def store(state: State, *calls: Attempt) -> None:
    for c in calls:
        state.record_attempt(c, now=NOW)


def test_spend_of_night_sums_every_call_of_that_night_and_workflow(state: State) -> None:
    assert state.spend_of_night(NIGHT, "listing") == Spend(cost_usd=0.0, estimated_usd=0.0)
    store(
        state,
        call("a", cost_usd=0.25),
        call("b", ok=False, output=None, error="500", cost_usd=0.01),  # a failed call is paid for too
        call("c", mode="preview", cost_usd=0.0, estimated_usd=0.5),
        call("d", workflow="blog", cost_usd=7.0),
        call("e", night=OTHER, cost_usd=9.0, estimated_usd=9.0),
    )
    spend = state.spend_of_night(NIGHT, "listing")
    assert spend.cost_usd == pytest.approx(0.26) and spend.estimated_usd == 0.5
    assert state.spend_of_night(NIGHT, "blog") == Spend(cost_usd=7.0, estimated_usd=0.0)


def test_calls_of_night_every_call_with_its_tokens(state: State) -> None:
    assert state.calls_of_night(NIGHT, "listing") == []
    store(
        state,
        call("a", mode="batch", cost_usd=0.5, input_tokens=100, output_tokens=20, cache_write_tokens=3),
        call("b", ok=False, output=None, cost_usd=0.1, cache_read_tokens=4, model="gpt-4.1"),
        call("c", workflow="blog", cost_usd=1.0),
        call("d", night=OTHER, cost_usd=2.0),
    )
    assert state.calls_of_night(NIGHT, "listing") == [
        CallUsage("gpt-4.1-mini", "batch", 0.5, 100, 20, 3, 0),
        CallUsage("gpt-4.1", "live", 0.1, 0, 0, 0, 4),
    ]


def test_call_latencies_of_answered_calls_that_reached_a_model(state: State) -> None:
    assert state.call_latencies_s(NIGHT, "listing") == []
    store(
        state,
        call("a", latency_s=1.5),
        call("b", latency_s=2.5, mode="batch"),
        call("c", latency_s=99.0, ok=False, output=None),
        call("d", latency_s=0.0, mode="preview"),
        call("e", latency_s=50.0, workflow="blog"),
        call("f", latency_s=60.0, night=OTHER),
    )
    assert state.call_latencies_s(NIGHT, "listing") == [1.5, 2.5]


# -- what the feedback report reads --------------------------------------------------------------------------


def test_reviewed_nights_of_one_workflow_newest_first_limited(state: State) -> None:
    assert state.reviewed_nights("listing", 14) == []
    for night in ("2026-11-20", "2026-11-22", "2026-11-21", "2026-11-22"):
        review(state, "a", "approve", night=night)
    review(state, "b", "approve", night=None)  # a review of a row no night ran
    review(state, "c", "approve", night="2026-11-23", workflow="blog")
    assert state.reviewed_nights("listing", 14) == ["2026-11-22", "2026-11-21", "2026-11-20"]
    assert state.reviewed_nights("listing", 1) == ["2026-11-22"]


def test_reviews_with_output_pair_each_decision_with_the_answer_it_judged(state: State) -> None:
    assert state.reviews_with_output("listing", []) == []
    assert state.reviews_with_output("listing", [NIGHT]) == []
    store(
        state,
        call("a", output="draft one"),
        call("a", step="outline", final=False, output="a checkpoint, not the answer"),
        call("b", attempt=2, output="rework answer"),
        call("c", workflow="blog", output="blog answer"),
    )
    review(state, "a", "edit", notes="shorter", edited="draft")
    review(state, "b", "approve", attempt=2)
    review(state, "gone", "rework", notes="why")  # its output is no longer stored
    review(state, "c", "approve", workflow="blog")
    review(state, "a", "approve", night=OTHER)
    assert state.reviews_with_output("listing", [NIGHT]) == [
        ReviewedOutput("edit", "shorter", "draft", "draft one"),
        ReviewedOutput("approve", "", None, "rework answer"),
        ReviewedOutput("rework", "why", None, None),
    ]
    assert len(state.reviews_with_output("listing", [NIGHT, OTHER])) == 4


def test_what_broke_counts_only_deferrals_the_account_caused(state: State) -> None:
    """The morning tells a refused key, no quota or an open breaker apart from ordinary deferrals, in any case."""
    for task_id, reason in [
        ("a", "deferred: OpenAI refused the key (HTTP 401)"),
        ("b", "deferred: openai refused the key (http 403)"),
        ("c", "deferred: the account is OUT OF QUOTA"),
        ("d", "deferred: the Circuit Breaker for openai is open"),
        ("e", "deferred: tonight's cap of 10 rows is full"),
        ("f", "deferred: HTTP 401 without its brackets"),
    ]:
        state.night_task(NIGHT, task_id, workflow="listing", attempt=1, outcome="deferred", reason=reason)
    state.night_task(OTHER, "g", workflow="listing", attempt=1, outcome="deferred", reason="(HTTP 401)")
    lines = what_broke(state, NIGHT)
    assert sorted(lines) == sorted(
        [
            "1 row(s) deferred: deferred: OpenAI refused the key (HTTP 401)",
            "1 row(s) deferred: deferred: openai refused the key (http 403)",
            "1 row(s) deferred: deferred: the account is OUT OF QUOTA",
            "1 row(s) deferred: deferred: the Circuit Breaker for openai is open",
        ]
    )
