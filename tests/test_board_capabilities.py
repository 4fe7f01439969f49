"""The optional capabilities of boards (sheetbot/boards/capabilities.py): who offers which, and that every
caller carries on without a capability a board does not offer, exactly as before they were declared."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import pytest
from boards_under_test import BOARDS, Night
from harness import at
from openpyxl import Workbook, load_workbook

from sheetbot.boards.base import RowUpdate, SchemaSpec
from sheetbot.boards.capabilities import (
    CAPABILITIES,
    AppendsRows,
    DrawsDashboard,
    Fingerprinted,
    Flushes,
    ProtectsInputs,
    ReadsThenWrites,
    RemembersDashboard,
    StagesDashboard,
)
from sheetbot.boards.dashboard_cells import ChartSpec
from sheetbot.boards.local import LocalBoard
from sheetbot.boards.memory import MemoryBoard
from sheetbot.morning.dashboard import DashboardReport, refresh_dashboard, staged_outcome
from sheetbot.service.serve import board_fingerprint
from sheetbot.status import Status

#: Every board and exactly the capabilities it offers: the table in capabilities.py's docstring.
OFFERS: dict[str, set[type]] = {
    "local": {DrawsDashboard, StagesDashboard, Flushes, AppendsRows, Fingerprinted},
    "memory": {AppendsRows},
    "google_sheets": {DrawsDashboard, RemembersDashboard, ProtectsInputs, AppendsRows, ReadsThenWrites},
    "airtable": {DrawsDashboard, AppendsRows, ReadsThenWrites},
}


def test_every_board_under_test_has_a_row_in_the_table() -> None:
    assert set(OFFERS) == set(BOARDS)


@pytest.mark.parametrize("name", sorted(OFFERS))
def test_each_board_offers_exactly_its_capabilities(name: str, tmp_path: Path) -> None:
    with ExitStack() as stack:
        board = BOARDS[name](tmp_path, stack, ["id", "type", "input"]).board
        assert {cap for cap in CAPABILITIES if isinstance(board, cap)} == OFFERS[name]


def test_a_capability_needs_all_of_its_operations() -> None:
    class HalfProtecting(MemoryBoard):
        def protect_inputs(self, task_ids: Sequence[str], columns: Sequence[str] = ()) -> int:
            return 0

    assert not isinstance(HalfProtecting(), ProtectsInputs)  # no unprotect_inputs: the lock would never lift


# -- callers, on a board without the capability -----------------------------------------------------------
def test_a_night_asking_for_protection_on_a_board_that_cannot_protect_runs_as_without_it(tmp_path: Path) -> None:
    board = MemoryBoard(["id", "type", "priority", "input", "brand"])
    board.add(type="listing", input="Trail tent", brand="Kestrel")
    night = Night(tmp_path, board, protect_locked=True)
    assert sum(night.lock().locked.values()) == 1
    night.clock.set(at("2026-11-24T01:00"))
    night.run()
    (row,) = board.rows
    assert row["status"] == Status.REVIEW
    row["review"] = "approve"
    night.clock.set(at("2026-11-24T09:00"))
    report = night.harvest()  # no flush, no staged dashboard, no protection to lift
    assert report.decisions == {"approve": 1} and board.rows[0]["status"] == Status.APPROVED
    assert report.dashboard is not None and report.dashboard.skipped and report.dashboard.problem is None
    assert set(board.calls) <= {"read", "write", "ensure_schema"}


def test_the_dashboard_is_skipped_on_a_board_without_one(tmp_path: Path) -> None:
    night = Night(tmp_path, MemoryBoard(["id"]))
    with night.context() as ctx:
        for stage in (False, True):
            assert refresh_dashboard(ctx, stage=stage, force=True) == DashboardReport(skipped=True)
        report = DashboardReport(written=True, rows=2)
        assert staged_outcome(ctx, report) is report


def test_serve_has_no_fingerprint_for_a_board_without_one_and_the_file_s_for_a_workbook(tmp_path: Path) -> None:
    assert board_fingerprint(MemoryBoard(["id"])) is None
    workbook = LocalBoard(tmp_path / "queue.xlsx", "Queue")
    assert board_fingerprint(workbook) is None  # no file yet
    workbook.ensure_schema(
        SchemaSpec(
            columns=["id", "review"],
            review_column="review",
            review_choices=["approve"],
            status_column="status",
            status_choices=[],
        )
    )
    stat = workbook.path.stat()
    assert board_fingerprint(workbook) == (stat.st_mtime_ns, stat.st_size)


# -- callers, on a board with the capability --------------------------------------------------------------
class ProtectingBoard(MemoryBoard):
    """A board that can protect rows: the night uses the capability, whatever the board's kind."""

    def __init__(self, columns: Sequence[str]) -> None:
        super().__init__(columns)
        self.protected: list[tuple[list[str], list[str]]] = []

    def protect_inputs(self, task_ids: Sequence[str], columns: Sequence[str] = ()) -> int:
        self.protected.append((list(task_ids), list(columns)))
        return len(task_ids)

    def unprotect_inputs(self) -> None:
        self.protected.append(([], []))


def test_the_lock_protects_and_the_harvest_lifts_on_any_board_that_can(tmp_path: Path) -> None:
    board = ProtectingBoard(["id", "type", "priority", "input", "brand"])
    board.add(type="listing", input="Trail tent", brand="Kestrel")
    night = Night(tmp_path, board, protect_locked=True)
    night.lock()
    task_id = board.rows[0]["id"]
    assert board.protected == [([task_id], ["type", "priority", "input", "brand"])]
    night.clock.set(at("2026-11-24T01:00"))
    night.run()
    board.rows[0]["review"] = "approve"
    night.clock.set(at("2026-11-24T09:00"))
    night.harvest()
    assert board.protected[-1] == ([], [])


def test_a_staged_dashboard_that_cannot_be_drawn_is_told_once_and_the_save_goes_ahead(tmp_path: Path) -> None:
    path = tmp_path / "queue.xlsx"
    book = Workbook()
    ws = book.active
    assert ws is not None
    ws.title = "Queue"
    ws.append(["id", "status"])
    ws.append(["t1", "review"])
    book.save(path)
    workbook = LocalBoard(path, "Queue")
    broken = ChartSpec(title="Approval rate by night", nights=("2026-11-23", "2026-11-24"), series={"listing": (0.5,)})
    workbook.stage_dashboard([], broken)  # two nights, one point: the chart's table cannot be built
    assert workbook.take_dashboard_problem() is None  # nothing drawn yet, nothing failed
    assert workbook.write([RowUpdate("t1", {"status": "approved"})]).written == 1
    problem = workbook.take_dashboard_problem()
    assert problem is not None and problem.startswith("IndexError")
    assert workbook.take_dashboard_problem() is None  # told once: the next harvest starts clean
    saved = load_workbook(path)
    assert saved["Queue"]["B2"].value == "approved"  # the decision was saved all the same
