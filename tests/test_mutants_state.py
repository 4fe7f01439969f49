"""The state's answers, pinned where mutation testing (bench/mutation.py) found no test that would notice a change.

Each test states one fact a user relies on: what a night spent, which answer is the task's, how many calls
failed, that an action is queued once, that a pause keeps its first reason. A real SQLite file, fixed times.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from state_backends import Target

from sheetbot.state import Attempt, State, Task
from sheetbot.state.records import BatchRequest
from sheetbot.status import Status

NOW = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)


@pytest.fixture
def state(state_backend: Target) -> Iterator[State]:
    with State(state_backend) as opened:
        yield opened


def call(task_id: str, *, attempt: int = 1, step: str = "final", ok: bool = True, **kw: object) -> Attempt:
    values: dict[str, Any] = {"night": "2026-11-23", "workflow": "listing", "output": f"answer {task_id}"}
    values |= kw
    return Attempt(
        task_id=task_id,
        attempt=attempt,
        step=step,
        provider="openai",
        model="gpt-4o-mini",
        mode="live",
        system="",
        prompt="p",
        ok=ok,
        **values,
    )


def task(state: State, task_id: str) -> Task:
    found = state.task(task_id)
    assert found is not None, task_id
    return found


def to_status(state: State, task_id: str, *path: Status, **fields: Any) -> None:
    """Add a task and walk it through ``path`` (each step an allowed transition)."""
    state.add_task(task_id, now=NOW)
    for status in path:
        state.move(task_id, status, now=NOW, **fields)


# -- money -------------------------------------------------------------------------------------------
def test_spend_is_summed_per_night_workflow_and_task(state: State) -> None:
    state.record_attempt(call("a", cost_usd=0.25), now=NOW)
    state.record_attempt(call("a", attempt=2, cost_usd=0.5, ok=False, output=None), now=NOW)
    state.record_attempt(call("b", cost_usd=1.0, workflow="blog"), now=NOW)
    state.record_attempt(call("c", cost_usd=2.0, night="2026-11-24"), now=NOW)
    assert state.spent_usd() == pytest.approx(3.75)
    assert state.spent_usd(night="2026-11-23") == pytest.approx(1.75)
    assert state.spent_usd(night="2026-11-23", workflow="listing") == pytest.approx(0.75)
    assert state.spent_usd(workflow="blog") == pytest.approx(1.0)
    assert state.spent_usd(task_id="a") == pytest.approx(0.75)
    assert state.spent_usd(night="2026-11-23", workflow="listing", task_id="b") == 0.0
    assert state.spent_usd(night="2026-11-30") == 0.0


def test_a_recorded_call_comes_back_as_it_was_stored(state: State) -> None:
    sent = call("a", truncated=True, input_tokens=12, output_tokens=34, cost_usd=0.125, final=False, step="draft")
    state.record_attempt(sent, now=NOW)
    stored = state.stored_output("a", 1, "draft")
    assert stored == sent
    assert stored is not None and stored.truncated is True and stored.ok is True and stored.final is False


# -- which answer is the task's -----------------------------------------------------------------------
def test_stored_output_is_only_a_successful_call_of_that_attempt_and_step(state: State) -> None:
    state.record_attempt(call("a", ok=False, output=None, error="timeout"), now=NOW)
    assert state.stored_output("a", 1, "final") is None
    state.record_attempt(call("a", output="good"), now=NOW)
    state.record_attempt(call("a", step="draft", output="draft text"), now=NOW)
    final = state.stored_output("a", 1, "final")
    assert final is not None and final.output == "good"
    assert state.stored_output("a", 2, "final") is None
    assert state.stored_output("b", 1, "final") is None


def test_final_output_is_the_last_successful_final_step_of_the_attempt(state: State) -> None:
    assert state.final_output("a", 1) is None
    state.record_attempt(call("a", step="draft", final=False, output="draft"), now=NOW)
    assert state.final_output("a", 1) is None
    state.record_attempt(call("a", step="outline", output="first"), now=NOW)
    state.record_attempt(call("a", step="polish", output="second"), now=NOW)
    state.record_attempt(call("a", ok=False, output=None), now=NOW)
    state.record_attempt(call("a", attempt=2, output="rework"), now=NOW)
    first = state.final_output("a", 1)
    assert first is not None and first.output == "second" and first.attempt == 1
    second = state.final_output("a", 2)
    assert second is not None and second.output == "rework"
    assert state.final_output("b", 1) is None


def test_final_outputs_of_many_tasks_oldest_first_across_the_500_id_chunks(state: State) -> None:
    ids = [f"t{n:04d}" for n in range(1200)]
    for task_id in ids:
        state.record_attempt(call(task_id), now=NOW)
    state.record_attempt(call("t0001", attempt=2, output="again", workflow="blog"), now=NOW)
    state.record_attempt(call("t0002", ok=False, output=None), now=NOW)
    state.record_attempt(call("t0003", step="draft", final=False, output="draft"), now=NOW)
    state.record_attempt(call("t0004", attempt=2, output=None), now=NOW)
    state.record_attempt(call("t0005", attempt=2, workflow="", output="adopted"), now=NOW)
    out = state.final_outputs([*ids, "unknown"])
    assert set(out) == set(ids)
    assert out["t1199"] == [("listing", "answer t1199")]
    assert out["t0001"] == [("listing", "answer t0001"), ("blog", "again")]
    assert out["t0002"] == [("listing", "answer t0002")]
    assert out["t0003"] == [("listing", "answer t0003")]
    assert out["t0004"] == [("listing", "answer t0004")]
    assert out["t0005"] == [("listing", "answer t0005"), ("", "adopted")]
    assert [n for n, answers in out.items() if len(answers) != 1] == ["t0001", "t0005"]  # no id read twice
    assert state.final_outputs([]) == {}


def test_latest_attempt_is_every_call_of_the_highest_attempt_oldest_first(state: State) -> None:
    assert state.latest_attempt("a") == []
    state.record_attempt(call("a", output="old"), now=NOW)
    state.record_attempt(call("a", attempt=2, step="draft", final=False, output="d"), now=NOW)
    state.record_attempt(call("a", attempt=2, ok=False, output=None), now=NOW)
    state.record_attempt(call("b", attempt=3), now=NOW)
    latest = state.latest_attempt("a")
    assert [(c.attempt, c.step, c.ok) for c in latest] == [(2, "draft", True), (2, "final", False)]


def test_failed_calls_count_only_that_task_tonight(state: State) -> None:
    assert state.failed_calls("a", "2026-11-23") == 0
    state.record_attempt(call("a", ok=False, output=None), now=NOW)
    state.record_attempt(call("a", attempt=2, ok=False, output=None), now=NOW)
    state.record_attempt(call("a", ok=True), now=NOW)
    state.record_attempt(call("a", ok=False, output=None, night="2026-11-22"), now=NOW)
    state.record_attempt(call("b", ok=False, output=None), now=NOW)
    assert state.failed_calls("a", "2026-11-23") == 2
    assert state.failed_calls("a", "2026-11-22") == 1
    assert state.failed_calls("b", "2026-11-23") == 1


# -- tasks ---------------------------------------------------------------------------------------------
def test_tasks_with_status_come_highest_priority_then_oldest(state: State) -> None:
    for task_id, priority in (("a", "P2"), ("b", "P0"), ("c", "P2"), ("d", "P1")):
        state.add_task(task_id, now=NOW)
        state.move(task_id, Status.LOCKED, now=NOW, priority=priority)
    state.add_task("queued", now=NOW)
    assert [t.task_id for t in state.tasks_with_status(Status.LOCKED)] == ["b", "d", "a", "c"]
    assert [t.task_id for t in state.tasks_with_status(Status.QUEUED)] == ["queued"]
    assert len(state.tasks_with_status(Status.LOCKED, Status.QUEUED)) == 5


def test_forget_drops_the_task_and_its_night_record(state: State) -> None:
    to_status(state, "a", Status.LOCKED, night="2026-11-23")
    state.night_task("2026-11-23", "a", workflow="listing", attempt=1, outcome="locked")
    state.add_task("b", now=NOW)
    state.forget("a")
    assert state.task("a") is None
    assert state.task("b") is not None
    assert not state.night_has_tasks("2026-11-23")  # "a" was the night's only row: its record went with it


def test_adopted_rows_keep_the_boards_output_and_cost(state: State) -> None:
    state.add_task("first", now=NOW)
    state.adopt_task(
        "a", Status.REVIEW, now=NOW, output="from the board", cost_usd=0.3, workflow="listing", night="2026-11-23"
    )
    state.adopt_task("b", Status.QUEUED, now=NOW + timedelta(minutes=1))
    a, b = state.task("a"), state.task("b")
    assert a is not None and a.status == Status.REVIEW and a.workflow == "listing" and a.night == "2026-11-23"
    assert a.seq == 2 and a.first_seen == NOW.isoformat() and a.dirty
    assert b is not None and b.seq == 3 and b.status == Status.QUEUED
    answer = state.final_output("a", 1)
    assert answer is not None and answer.output == "from the board" and answer.mode == "adopted"
    assert state.spent_usd(task_id="a") == pytest.approx(0.3)
    assert state.final_output("b", 1) is None and state.spent_usd(task_id="b") == 0.0
    with pytest.raises(ValueError, match="unknown task fields"):
        state.adopt_task("c", Status.QUEUED, now=NOW, output_attempt=2)  # type: ignore[call-arg]  # refused at run time too
    assert state.task("c") is None


# -- approval-gated actions: once, and never lost -------------------------------------------------------
def test_an_action_is_queued_once_per_approved_attempt(state: State) -> None:
    assert state.add_action("a", 1, workflow="listing", now=NOW) is True
    assert state.add_action("a", 1, workflow="listing", now=NOW) is False
    assert state.add_action("a", 2, workflow="listing", now=NOW) is True
    assert [(a["task_id"], a["attempt"], a["state"]) for a in state.actions_undelivered()] == [
        ("a", 1, "pending"),
        ("a", 2, "pending"),
    ]


def test_action_progress_counts_tries_and_keeps_the_last_error(state: State) -> None:
    state.add_action("b", 1, workflow="listing", now=NOW + timedelta(minutes=1))
    state.add_action("a", 1, workflow="listing", now=NOW + timedelta(minutes=1))
    state.add_action("z", 1, workflow="listing", now=NOW)
    state.action_state("a", 1, "sending", now=NOW)
    state.action_state("a", 1, "pending", now=NOW, error="503 from the webhook")
    state.action_state("a", 1, "sending", now=NOW)
    (action,) = [a for a in state.actions_undelivered() if a["task_id"] == "a"]
    assert action["tries"] == 2 and action["last_error"] == "503 from the webhook" and action["state"] == "sending"
    assert [a["task_id"] for a in state.actions_undelivered()] == ["z", "a", "b"]
    state.action_state("a", 1, "delivered", now=NOW, error="")
    assert [a["task_id"] for a in state.actions_undelivered()] == ["z", "b"]
    with pytest.raises(ValueError, match="unknown action state"):
        state.action_state("b", 1, "lost", now=NOW)


def test_delivered_actions_whose_task_is_not_published_are_found(state: State) -> None:
    done = (Status.LOCKED, Status.RUNNING, Status.REVIEW)
    to_status(state, "approved", *done, Status.APPROVED)
    to_status(state, "edited", *done, Status.EDITED)
    to_status(state, "published", *done, Status.APPROVED, Status.PUBLISHED)
    to_status(state, "pending", *done, Status.APPROVED)
    for task_id in ("approved", "edited", "published", "pending"):
        state.add_action(task_id, 1, workflow="listing", now=NOW)
    for task_id in ("approved", "edited", "published"):
        state.action_state(task_id, 1, "delivered", now=NOW)
    state.add_action("approved", 2, workflow="listing", now=NOW)
    state.action_state("approved", 2, "delivered", now=NOW)  # not the task's attempt
    found = sorted((a["task_id"], a["attempt"]) for a in state.actions_delivered_unpublished())
    assert found == [("approved", 1), ("edited", 1)]


def test_meta_values_are_kept_and_schema_version_is_not_ours_to_set(state: State) -> None:
    assert state.meta_value("dashboard") is None
    state.set_meta_value("dashboard", "one")
    state.set_meta_value("dashboard", "two")
    assert state.meta_value("dashboard") == "two"
    with pytest.raises(ValueError, match="schema_version"):
        state.set_meta_value("schema_version", "1")


# -- governance: alerts once, pauses, queue depth ---------------------------------------------------------
def test_an_alert_is_recorded_once_per_kind_and_key(state: State) -> None:
    assert not state.alert_sent("budget", "2026-11-23")
    state.record_alert("budget", "2026-11-23", now=NOW)
    state.record_alert("budget", "2026-11-23", now=NOW)
    assert state.alert_sent("budget", "2026-11-23")
    assert not state.alert_sent("budget", "2026-11-24")
    assert not state.alert_sent("queue", "2026-11-23")


def test_a_pause_keeps_its_first_reason_and_resume_says_whether_it_was_paused(state: State) -> None:
    assert state.pause("listing", reason="over budget", now=NOW) is True
    assert state.pause("listing", reason="another reason", now=NOW) is False
    assert state.pause("blog", reason="errors", now=NOW) is True
    assert state.paused() == {"listing": "over budget", "blog": "errors"}
    assert state.resume("listing") is True
    assert state.resume("listing") is False
    assert state.paused() == {"blog": "errors"}


def test_queue_depth_samples_older_than_the_window_are_dropped(state: State) -> None:
    day = 86400.0
    state.record_queue_depth(5, now=NOW - timedelta(days=8), keep_s=7 * day)
    state.record_queue_depth(7, now=NOW - timedelta(days=7), keep_s=7 * day)
    state.record_queue_depth(9, now=NOW)
    assert state.queue_depths() == [((NOW - timedelta(days=7)).timestamp(), 7), (NOW.timestamp(), 9)]
    state.record_queue_depth(3, now=NOW + timedelta(seconds=10), keep_s=5)
    assert state.queue_depths() == [(NOW.timestamp() + 10, 3)]


# -- the board mirror: what each row's cells must show ---------------------------------------------------
def test_dirty_rows_carry_their_total_cost_and_the_output_only_when_it_must_be_sent(state: State) -> None:
    to_status(state, "a", Status.LOCKED, Status.RUNNING, night="2026-11-23", workflow="listing")
    to_status(state, "b", Status.LOCKED, night="2026-11-23", workflow="listing")
    state.record_attempt(call("a", ok=False, output=None, cost_usd=0.25), now=NOW)
    state.record_attempt(call("a", output="the answer", cost_usd=0.5), now=NOW)
    state.move("a", Status.REVIEW, now=NOW, clear_review=1)
    rows = {p.task_id: p for p in state.dirty()}
    assert [p.task_id for p in state.dirty()] == ["a", "b"]
    assert rows["a"].status == Status.REVIEW and rows["a"].cost_usd == pytest.approx(0.75)
    assert rows["a"].output == "the answer" and rows["a"].clear_review is True
    assert rows["b"].output is None and rows["b"].cost_usd == 0.0 and rows["b"].clear_review is False
    state.mark_synced(["a"])
    assert [p.task_id for p in state.dirty()] == ["b"]
    assert not task(state, "a").dirty
    state.mark_dirty(["a"])  # the board lost its cells: the output is sent again, without clearing the review
    (again,) = [p for p in state.dirty() if p.task_id == "a"]
    assert again.output == "the answer" and again.clear_review is False and again.cost_usd == pytest.approx(0.75)
    state.move("b", Status.DEFERRED, now=NOW, board=False)
    state.mark_synced(["a", "b"])
    assert state.dirty() == []


def test_projections_show_synced_rows_with_the_output_only_for_the_statuses_asked(state: State) -> None:
    to_status(state, "a", Status.LOCKED, Status.RUNNING, night="2026-11-23")
    state.record_attempt(call("a", output="the answer", cost_usd=0.5), now=NOW)
    state.move("a", Status.REVIEW, now=NOW)
    to_status(state, "b", Status.LOCKED, night="2026-11-23")
    state.add_task("queued", now=NOW)
    state.add_task("behind", now=NOW)
    state.mark_synced(["a", "b", "queued"])
    state.move("behind", Status.LOCKED, now=NOW)
    shown = {p.task_id: p for p in state.projections(with_output=[Status.REVIEW])}
    assert set(shown) == {"a", "b"}  # a queued row and a row already due a write are not compared
    assert shown["a"].output == "the answer" and shown["a"].cost_usd == pytest.approx(0.5)
    assert shown["b"].output is None
    assert {p.task_id: p.output for p in state.projections(with_output=[])} == {"a": None, "b": None}


def test_moves_refuse_unknown_tasks_forbidden_transitions_and_unknown_fields(state: State) -> None:
    from sheetbot.errors import StateError, TransitionError

    with pytest.raises(StateError, match="not in the state file"):
        state.move("ghost", Status.LOCKED, now=NOW)
    to_status(state, "a", Status.LOCKED, Status.RUNNING, Status.REVIEW)
    with pytest.raises(TransitionError):
        state.move("a", Status.RUNNING, now=NOW)
    state.move("a", Status.REVIEW, now=NOW, error="sk-live-abcdefghijklmnopqrstuvwxyz0123456789 refused")
    assert "abcdefghijklmnopqrstuvwxyz0123456789" not in task(state, "a").error
    with pytest.raises(ValueError, match="unknown task fields"):
        state.move("a", Status.APPROVED, now=NOW, cost=1)  # type: ignore[call-arg]  # refused at run time too
    assert task(state, "a").status == Status.REVIEW
    state.mark_synced(["a"])
    state.move("a", Status.APPROVED, now=NOW, snapshot={"input": "x"}, board=False)  # e.g. a harvest's own write
    approved = task(state, "a")
    assert approved.snapshot == {"input": "x"} and approved.failure is None and not approved.dirty


def request(prompt: str = "p") -> BatchRequest:
    """What a batch request's attempt row needs when its result arrives."""
    return BatchRequest(
        workflow="listing", step="final", system="s", prompt=prompt, final=True, structured=False, provider="openai"
    )


# -- batches: never sent twice, never forgotten ------------------------------------------------------------
def test_open_sends_are_the_unanswered_creates_oldest_first(state: State) -> None:
    reqs = {"k1-0": request()}
    for key, minute in (("k2", 2), ("k1", 1), ("k3", 3)):
        state.record_send(
            key, provider="openai", model="m", night="n", step="final", requests=reqs,
            now=NOW + timedelta(minutes=minute),
        )  # fmt: skip
    state.send_uploaded("k1", "file-1")
    state.send_going_out("k1", NOW)
    state.close_send("k3", "absent")
    sends = state.open_sends()
    assert [s["key"] for s in sends] == ["k1", "k2"]
    assert sends[0]["requests"] == reqs and sends[0]["file_id"] == "file-1" and sends[0]["sent_at"] == NOW.isoformat()
    assert sends[1]["sent_at"] is None
    state.add_batch(
        "batch_1", provider="openai", model="m", night="n", step="final", requests=reqs, now=NOW, send_key="k1"
    )
    assert [s["key"] for s in state.open_sends()] == ["k2"]
    assert state.batch("batch_1")["custom_ids"] == ["k1-0"] and state.batch("batch_1")["status"] == "open"


def test_a_found_batch_keeps_every_owners_requests_and_closes_the_send(state: State) -> None:
    for key, custom_id in (("k1", "a"), ("k2", "b")):
        state.record_send(key, provider="openai", model="m", night="n", step="final",
                          requests={custom_id: request(custom_id)}, now=NOW)  # fmt: skip
    first, second = state.open_sends()
    state.adopt_batch("batch_1", first, found_by="listing", now=NOW)
    state.adopt_batch("batch_1", second, found_by="listing", now=NOW)
    batch = state.batch("batch_1")
    assert batch["requests"] == {"a": request("a"), "b": request("b")} and batch["custom_ids"] == ["a", "b"]
    assert state.open_sends() == []
    assert state.batch_ids(found_by=("listing",)) == {"batch_1"}
    assert state.batch_ids(found_by=("id",)) == set()


def test_open_batches_are_those_whose_results_are_not_all_stored(state: State) -> None:
    for n, status in enumerate(("open", "ended", "collected", "cancelled", "foreign")):
        state.add_batch(f"b{n}", provider="openai", model="m", night="n" if n else "m", step="final",
                        requests={f"r{n}": request()}, now=NOW + timedelta(minutes=10 - n))  # fmt: skip
        state.update_batch(f"b{n}", status=status)
    assert [b["batch_id"] for b in state.open_batches()] == ["b1", "b0"]
    state.update_batch("b1", status="collected", counts={"succeeded": 2}, now=NOW)
    ended = state.batch("b1")
    assert ended["counts"] == {"succeeded": 2} and ended["finished_at"] == NOW.isoformat()
    assert [b["batch_id"] for b in state.open_batches()] == ["b0"]
    assert [b["batch_id"] for b in state.batches("n")] == ["b4", "b3", "b2", "b1"]
    assert len(state.batches()) == 5
    from sheetbot.errors import StateError

    with pytest.raises(StateError, match="batch nope is not in the state file"):
        state.batch("nope")
