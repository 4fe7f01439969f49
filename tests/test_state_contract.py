"""One contract for the state on both engines (issue 15, item 1): SQLite and PostgreSQL keep the same promises.

Every test runs twice through ``state_backend`` (tests/state_backends.py): on a SQLite file and on a fresh
PostgreSQL schema (skipped, saying how to run it, without ``SHEETBOT_TEST_POSTGRES``). The promises are the
ones money and trust rest on: each operation family reads back what it wrote; the audit log refuses UPDATE and
DELETE from any connection (the database enforces it, not sheetbot); the unique keys that make "paid once" true
hold; two processes writing at once never both take the same row; a state written by an older sheetbot is
brought forward on open, and one from a newer sheetbot is refused.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from harness import stored_call
from state_backends import Target, read_back

from sheetbot.errors import StateError, StateUnavailableError, TransitionError
from sheetbot.state import Attempt, State
from sheetbot.state.audit import input_hash, store_calls
from sheetbot.state.journal import TaskSettled
from sheetbot.state.postgres import INTEGRITY_ERRORS
from sheetbot.state.records import BatchRequest
from sheetbot.state.schema import SCHEMA_VERSION
from sheetbot.status import Status

NOW = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
NIGHT = "2026-11-23"


@pytest.fixture
def state(state_backend: Target) -> Iterator[State]:
    with State(state_backend) as opened:
        yield opened


def call(task_id: str, *, attempt: int = 1, ok: bool = True, cost: float = 0.25) -> Attempt:
    output = f"answer {task_id}" if ok else None
    return stored_call(task_id, night=NIGHT, attempt=attempt, ok=ok, output=output, cost_usd=cost)


REQUEST: BatchRequest = {
    "workflow": "listing",
    "step": "final",
    "system": "",
    "prompt": "p",
    "final": True,
    "structured": False,
    "provider": "openai",
}


# -- each family reads back what it wrote ------------------------------------------------------------------------
def test_tasks_move_through_their_statuses_and_refuse_a_forbidden_move(state: State) -> None:
    state.add_task("T-1", now=NOW)
    state.add_task("T-2", now=NOW)
    state.move("T-1", Status.LOCKED, now=NOW, night=NIGHT, snapshot={"input": "x"})
    assert [t.task_id for t in state.tasks_with_status(Status.QUEUED)] == ["T-2"]
    task = state.task("T-1")
    assert task is not None and task.status is Status.LOCKED and task.snapshot == {"input": "x"}
    assert [t.seq for t in state.tasks().values()] == [1, 2]
    with pytest.raises(StateError):
        state.move("T-9", Status.LOCKED, now=NOW)


def test_a_refused_move_changes_nothing_and_says_which_change_was_refused(state: State) -> None:
    """move is one guarded UPDATE: the refusal still names the status the row is in, and leaves it there."""
    state.add_task("T-1", now=NOW)
    state.move("T-1", Status.LOCKED, now=NOW, night=NIGHT, error="")
    with pytest.raises(TransitionError, match="task T-1: locked → approved is not an allowed status change"):
        state.move("T-1", Status.APPROVED, now=NOW, error="should not be written")
    task = state.task("T-1")
    assert task is not None and task.status is Status.LOCKED and task.error == ""
    state.move("T-1", Status.LOCKED, now=NOW, error="the same status passes")
    assert state.tasks_with_status(Status.LOCKED)[0].error == "the same status passes"


def test_a_run_starts_its_locked_rows_together_and_refuses_one_moved_meanwhile(state: State) -> None:
    for n in range(1, 1203):  # more than two chunks of 500
        state.add_task(f"T-{n}", now=NOW)
        state.move(f"T-{n}", Status.LOCKED, now=NOW, night=NIGHT)
    state.start_running([f"T-{n}" for n in range(1, 1202)], now=NOW)
    assert len(state.tasks_with_status(Status.RUNNING)) == 1201
    assert [t.task_id for t in state.tasks_with_status(Status.LOCKED)] == ["T-1202"]
    assert all(t.dirty for t in state.tasks_with_status(Status.RUNNING))
    state.move("T-1202", Status.DEFERRED, now=NOW)  # another program moved it after the run listed it
    with pytest.raises(TransitionError, match="T-1202: deferred → running"):
        state.start_running(["T-1202"], now=NOW)
    assert [t.task_id for t in state.tasks_with_status(Status.DEFERRED)] == ["T-1202"]


def test_a_groups_outcomes_settle_together_as_each_would_alone(state: State) -> None:
    """settle_tasks (a preview group's outcomes, one executemany a status) leaves what settle_task would."""
    for n in (1, 2, 3):
        state.add_task(f"T-{n}", now=NOW)
        state.move(f"T-{n}", Status.LOCKED, now=NOW, night=NIGHT)
    state.start_running(["T-1", "T-2", "T-3"], now=NOW)
    done = TaskSettled("T-1", NIGHT, "listing", 1, Status.REVIEW, "done", clear_review=True)
    failed = TaskSettled("T-2", NIGHT, "listing", 1, Status.FAILED, "failed", error="bad template", failure="call")
    state.settle_tasks([(done, NOW), (failed, NOW)])
    tasks = state.tasks(["T-1", "T-2", "T-3"])
    assert (tasks["T-1"].status, tasks["T-1"].clear_review, tasks["T-1"].error) == (Status.REVIEW, True, "")
    assert (tasks["T-2"].status, tasks["T-2"].failure, tasks["T-2"].error) == (Status.FAILED, "call", "bad template")
    assert tasks["T-3"].status is Status.RUNNING
    assert state.outcome_counts(NIGHT) == {"listing": {"done": 1, "failed": 1}}
    moved = TaskSettled("T-2", NIGHT, "listing", 1, Status.REVIEW, "done")  # T-2 failed meanwhile
    late = TaskSettled("T-3", NIGHT, "listing", 1, Status.REVIEW, "done")
    with pytest.raises(TransitionError, match="T-2: failed → review"):
        state.settle_tasks([(late, NOW), (moved, NOW)])
    assert state.tasks(["T-3"])["T-3"].status is Status.RUNNING  # the group's transaction wrote nothing
    assert state.outcome_counts(NIGHT) == {"listing": {"done": 1, "failed": 1}}


def test_never_called_names_the_tasks_without_any_stored_call(state: State) -> None:
    """What a preview group asks once instead of each row's stored answer and spend: any call counts, of any
    attempt, a failed one too, across more ids than one statement takes."""
    ids = [f"T-{n}" for n in range(1, 1203)]
    for task_id in ids:
        state.add_task(task_id, now=NOW)
    state.record_attempt(call("T-2", ok=False), now=NOW)
    state.record_attempt(call("T-700", attempt=2), now=NOW)
    state.record_attempt(call("T-1202"), now=NOW)
    assert state.never_called(ids) == set(ids) - {"T-2", "T-700", "T-1202"}
    assert state.never_called([]) == set()


def test_attempts_their_cost_and_the_final_output(state: State) -> None:
    state.add_task("T-1", now=NOW)
    state.record_attempt(call("T-1", ok=False, cost=0.1), now=NOW)
    state.record_attempt(call("T-1"), now=NOW)
    final = state.final_output("T-1", 1)
    assert final is not None and final.output == "answer T-1" and final.ok is True
    assert state.spent_usd(night=NIGHT) == pytest.approx(0.35)
    assert state.failed_calls("T-1", NIGHT) == 1
    assert isinstance(state.spent_usd(night=NIGHT), float)


def test_a_groups_calls_are_stored_together_in_order_or_not_at_all(state: State) -> None:
    """A preview group's calls (sheetbot/night/keep.py): each attempt and its audit entry, in the order made."""
    calls = [(call(f"T-{n}", cost=0.0), {"input": f"item {n}"}, NOW) for n in range(5)]
    store_calls(state, calls)
    assert [state.final_output(f"T-{n}", 1).output for n in range(5)] == [f"answer T-{n}" for n in range(5)]  # type: ignore[union-attr]
    entries = state.audit_entries("model_call")
    assert [e.task_id for e in entries] == [f"T-{n}" for n in range(5)]
    assert json.loads(entries[2].detail)["input_hash"] == input_hash({"input": "item 2"})
    # one of them already stored ("paid once"): none of the others is, and no audit entry either
    with pytest.raises(INTEGRITY_ERRORS):
        store_calls(state, [(call("T-9", cost=0.0), {}, NOW), (call("T-1", cost=0.0), {}, NOW)])
    assert state.final_output("T-9", 1) is None and len(state.audit_entries("model_call")) == 5
    store_calls(state, [])


def test_batches_and_their_sends_are_found_again_after_a_restart(state: State) -> None:
    state.record_send("k-1", provider="openai", model="m", night=NIGHT, step="final", requests={"a": REQUEST}, now=NOW)
    state.record_send("k-2", provider="openai", model="m", night=NIGHT, step="final", requests={"b": REQUEST}, now=NOW)
    assert [s["key"] for s in state.open_sends()] == ["k-1", "k-2"]  # oldest first, ties in the order recorded
    state.add_batch(
        "b-1", provider="openai", model="m", night=NIGHT, step="final", requests={"a": REQUEST}, now=NOW, send_key="k-1"
    )
    assert [s["key"] for s in state.open_sends()] == ["k-2"]
    assert [b["batch_id"] for b in state.open_batches()] == ["b-1"]
    assert state.batch("b-1")["custom_ids"] == ["a"]


def test_the_outbox_queues_one_action_per_approved_attempt(state: State) -> None:
    assert state.add_action("T-1", 1, workflow="listing", now=NOW) is True
    assert state.add_action("T-1", 1, workflow="listing", now=NOW) is False
    state.action_state("T-1", 1, "delivered", now=NOW)
    assert state.actions_undelivered() == []


def test_audit_entries_and_their_json_details_are_queried_alike(state: State) -> None:
    state.audit("notified", now=NOW, detail={"kind": "summary", "night": NIGHT, "ok": True})
    state.audit("notified", now=NOW, detail={"kind": "alert", "night": NIGHT, "ok": False})
    state.audit("circuit_open", now=NOW, detail={"provider": "openai"})
    assert state.notification_delivered("summary", NIGHT) is True
    assert state.notification_delivered("alert", NIGHT) is False
    assert [n["kind"] for n in state.notifications_of_night(NIGHT, except_kind="summary")] == ["alert"]
    assert state.last_circuit_events() == {"openai": "circuit_open"}
    assert [e.event for e in state.audit_entries()] == ["notified", "notified", "circuit_open"]


# -- the database enforces the rules --------------------------------------------------------------------------------
@pytest.mark.parametrize("statement", ["UPDATE audit SET event = 'forged'", "DELETE FROM audit"])
def test_the_audit_log_is_append_only_for_every_connection(state: State, statement: str) -> None:
    state.audit("model_call", now=NOW, task_id="T-1")
    with pytest.raises(INTEGRITY_ERRORS, match="append-only"):
        read_back(state.target, statement)  # another program, not sheetbot: the database itself refuses
    assert [e.event for e in state.audit_entries()] == ["model_call"]


def test_one_paid_answer_per_task_attempt_and_step(state: State) -> None:
    state.record_attempt(call("T-1"), now=NOW)
    with pytest.raises(INTEGRITY_ERRORS):
        state.record_attempt(call("T-1"), now=NOW)
    state.record_attempt(call("T-1", attempt=2), now=NOW)  # a rework is a new attempt: paid again, once
    assert state.spent_usd(task_id="T-1") == pytest.approx(0.5)


def test_a_batch_and_an_alert_are_recorded_once(state: State) -> None:
    state.add_batch("b-1", provider="openai", model="m", night=NIGHT, step="final", requests={}, now=NOW)
    with pytest.raises(INTEGRITY_ERRORS):
        state.add_batch("b-1", provider="openai", model="m", night=NIGHT, step="final", requests={}, now=NOW)
    state.record_alert("stuck", "T-1", now=NOW)
    state.record_alert("stuck", "T-1", now=NOW)
    assert state.alert_sent("stuck", "T-1") is True


def test_a_failed_transaction_leaves_nothing_and_the_next_one_commits(state: State) -> None:
    with pytest.raises(ZeroDivisionError), state.transaction():
        state.add_task("lost", now=NOW)
        state.audit("model_call", now=NOW, task_id="lost")
        _ = 1 / 0
    state.add_task("kept", now=NOW)
    assert read_back(state.target, "SELECT task_id FROM tasks") == [("kept",)]
    assert read_back(state.target, "SELECT COUNT(*) FROM audit") == [(0,)]


# -- writers from two processes ------------------------------------------------------------------------------------
def _take_rows(target: Target, name: str, out: multiprocessing.Queue[tuple[str, list[str]]]) -> None:
    """One process's lock phase: take queued rows, a few per transaction, until none are left."""
    taken: list[str] = []
    with State(target) as state:
        while True:
            with state.transaction():
                rows = state.tasks_with_status(Status.QUEUED)[:3]
                for row in rows:
                    state.move(row.task_id, Status.LOCKED, now=NOW, night=name)
            if not rows:
                break
            taken += [r.task_id for r in rows]
    out.put((name, taken))


def test_two_processes_writing_at_once_never_take_the_same_row(state_backend: Target) -> None:
    with State(state_backend) as state:
        for n in range(60):
            state.add_task(f"T-{n:02}", now=NOW)
    context = multiprocessing.get_context("fork")
    out: multiprocessing.Queue[tuple[str, list[str]]] = context.Queue()
    workers = [context.Process(target=_take_rows, args=(state_backend, name, out)) for name in ("a", "b")]
    for worker in workers:
        worker.start()
    results = dict(out.get(timeout=60) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert not set(results["a"]) & set(results["b"])  # no row taken twice
    assert sorted(results["a"] + results["b"]) == [f"T-{n:02}" for n in range(60)]
    with State(state_backend) as state:
        assert {t.night for t in state.tasks().values()} <= {"a", "b"}
        assert all(t.status is Status.LOCKED for t in state.tasks().values())


def test_a_writer_that_waits_too_long_for_another_gets_a_locked_state_error(state_backend: Target) -> None:
    with State(state_backend) as first, State(state_backend) as second:
        with first.transaction():
            first.add_task("T-1", now=NOW)
            with second.waiting_at_most(0.2), pytest.raises(StateUnavailableError) as caught:
                second.add_task("T-2", now=NOW)
        assert caught.value.kind == "locked"
        second.add_task("T-2", now=NOW)  # the lock is gone with the first commit
        assert sorted(second.tasks()) == ["T-1", "T-2"]


def _add_rows(target: Target, prefix: str) -> None:
    with State(target) as state:
        for n in range(25):
            state.add_task(f"{prefix}-{n}", now=NOW)


def test_two_processes_opening_a_new_state_at_once_create_it_once_and_add_rows_in_distinct_order(
    state_backend: Target,
) -> None:
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_add_rows, args=(state_backend, p)) for p in ("a", "b")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    seqs = [row[0] for row in read_back(state_backend, "SELECT seq FROM tasks ORDER BY seq")]
    assert seqs == list(range(1, 51))  # each `MAX(seq) + 1` read under the writer lock: never the same twice


# -- schema versions ------------------------------------------------------------------------------------------------
def test_a_state_written_by_an_older_sheetbot_is_brought_forward_on_open(state_backend: Target) -> None:
    State(state_backend).close()
    for statement in (  # what schema 1 lacked
        "ALTER TABLE reviews DROP COLUMN reviewer",
        "DROP TABLE step_gates",
        "UPDATE meta SET value = '1' WHERE key = 'schema_version'",
    ):
        read_back(state_backend, statement)
    with State(state_backend) as state:
        state.add_task("T-1", now=NOW)
        task = state.task("T-1")
        assert task is not None
        state.record_review(task, "approve", notes="", edited_output=None, now=NOW, reviewer="Ana")
        state.open_gate(
            task_id="T-1",
            workflow="listing",
            step="draft",
            round_=1,
            attempt=1,
            night=NIGHT,
            outputs={},
            shown="x",
            now=NOW,
        )
    assert read_back(state_backend, "SELECT reviewer FROM reviews") == [("Ana",)]
    assert read_back(state_backend, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]


def test_a_state_written_by_a_newer_sheetbot_is_refused(state_backend: Target) -> None:
    State(state_backend).close()
    read_back(state_backend, "UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StateError, match="newer sheetbot"):
        State(state_backend)
