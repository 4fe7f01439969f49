"""A phase on the workbook costs about one openpyxl load plus one save (issue 15; bench/phases_local.py
measures it). What kept it above that, and must not come back: a commit for each preview row's answer and
another for its outcome, a journal entry built for every write the state took at once, and the sheet's cells
walked once for every read and write. A kill inside a group of preview rows loses nothing that was paid."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness import WORKFLOWS, Shop, at, stored_call

import sheetbot.boards.local as local
import sheetbot.boards.local_sheet as local_sheet
import sheetbot.night.keep as keep
from sheetbot.providers.preview import PreviewProvider
from sheetbot.state.faults import GuardedConnection
from sheetbot.status import Status

ROWS = 30
PREVIEW = {"listing": {**WORKFLOWS["listing"], "mode": "preview"}}


class Killed(BaseException):
    """The process dying mid-night: nothing after it runs, and SQLite keeps only what was committed."""


def locked_night(tmp_path: Path) -> Shop:
    shop = Shop(tmp_path, workflows=PREVIEW)
    for n in range(ROWS):
        shop.add(type="listing", input=f"row {n}")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    return shop


def spy(real: Callable[..., Any], calls: Counter[str], name: str) -> Callable[..., Any]:
    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[name] += 1
        return real(*args, **kwargs)

    return counted


def reviewed(shop: Shop) -> int:
    return sum(1 for row in shop.rows() if row["status"] == "review" and row["output"])


def test_a_preview_night_commits_a_group_of_rows_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shop = locked_night(tmp_path)
    statements: Counter[str] = Counter()
    execute = GuardedConnection.execute

    lookups: Counter[str] = Counter()

    def counting(self: GuardedConnection, sql: str, parameters: Any = (), /) -> Any:
        statements[sql.split()[0].upper()] += 1
        if sql.lstrip().upper().startswith("SELECT") and "FROM ATTEMPTS" in " ".join(sql.upper().split()):
            lookups["attempts"] += 1
        return execute(self, sql, parameters)

    monkeypatch.setattr(GuardedConnection, "execute", counting)
    report = shop.run()
    assert sum(report.done.values()) == ROWS
    assert reviewed(shop) == ROWS
    assert statements["COMMIT"] <= 6, statements  # was two a row: 60 for 30 rows
    # The group's calls are stored together at its end, an executemany each for the answers and their
    # audit entries: a savepoint and two INSERTs a row were 120 statements for 30 rows.
    assert statements["SAVEPOINT"] + statements["INSERT"] <= 12, statements
    assert statements["PRAGMA"] <= 10, statements  # opening the state; no busy timeout set and reset a write
    # Each row moves twice (locked → running → review): once in a statement for all rows, once in the group's
    # executemany. A SELECT before each move and an UPDATE a row was 90 statements for 30 rows.
    assert statements["UPDATE"] <= 6, statements
    # Which rows have a stored answer is asked once a group, not twice a row (stored answer, spend so far).
    assert lookups["attempts"] <= 6, lookups
    with shop.state() as state:
        assert state.outcome_counts("2026-11-23") == {"listing": {"done": ROWS}}  # each row's outcome recorded


def test_no_journal_entry_is_built_for_writes_the_state_takes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shop = locked_night(tmp_path)
    built: Counter[str] = Counter()
    for name in ("call_entry", "settled_entry"):
        monkeypatch.setattr(keep, name, spy(getattr(keep, name), built, name))
    shop.run()
    assert reviewed(shop) == ROWS
    assert not built


def test_a_phase_walks_the_sheets_cells_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shop = locked_night(tmp_path)
    walks: Counter[str] = Counter()
    monkeypatch.setattr(local, "data_rows", spy(local_sheet.data_rows, walks, "data_rows"))
    shop.run()  # reads before and after the calls, then writes the outputs: the same unedited cells
    assert reviewed(shop) == ROWS
    assert walks["data_rows"] == 1


def test_a_kill_inside_a_group_costs_nothing_and_the_next_run_finishes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = locked_night(tmp_path)
    complete, calls = PreviewProvider.complete, []

    async def killed_at_the_twelfth(self: PreviewProvider, request: Any) -> Any:
        calls.append(1)
        if len(calls) == 12:
            raise Killed  # mid-group: SQLite keeps none of the group
        return await complete(self, request)

    monkeypatch.setattr(PreviewProvider, "complete", killed_at_the_twelfth)
    with pytest.raises(Killed):
        shop.run()
    with shop.state() as state:
        assert len(state.tasks_with_status(Status.RUNNING)) == ROWS  # none settled, none lost: free to redo
    monkeypatch.setattr(PreviewProvider, "complete", complete)
    report = shop.run()
    assert sum(report.done.values()) == ROWS
    assert reviewed(shop) == ROWS
    with shop.state() as state:
        assert all(state.final_output(t.task_id, t.attempt) for t in state.tasks_with_status(Status.REVIEW))


def test_a_row_whose_answer_was_stored_before_a_crash_is_not_asked_again(tmp_path: Path) -> None:
    """A row left `running` with its answer stored (a kill between the store and its outcome) gets that answer,
    inside a group of preview rows too; the group's other rows are asked once each."""
    shop = locked_night(tmp_path)
    with shop.state() as state:
        [task, *_] = state.tasks_with_status(Status.LOCKED)
        state.start_running([task.task_id], now=shop.clock.now())
        kept = stored_call(
            task.task_id,
            night=task.night or "",
            attempt=task.attempt,
            mode="preview",
            output="the answer stored before the crash",
        )
        state.record_attempt(kept, now=shop.clock.now())
    asked: list[str] = []
    complete = PreviewProvider.complete

    async def counted(self: PreviewProvider, request: Any) -> Any:
        asked.append(request.prompt)
        return await complete(self, request)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PreviewProvider, "complete", counted)
        report = shop.run()
    assert sum(report.done.values()) == ROWS
    assert len(asked) == ROWS - 1
    [row] = [r for r in shop.rows() if r["id"] == task.task_id]
    assert row["output"] == "the answer stored before the crash"
