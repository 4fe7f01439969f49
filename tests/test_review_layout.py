"""Issue 13 items 1 and 3: a new board puts the reviewer's columns first, the same on every board, and
each output arrives with its workflow's checklist beside it. A board that already has columns keeps them
where its team put them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path

import pytest
from boards_under_test import BOARDS, BoardUnderTest, Night
from harness import WORKFLOWS, at
from openpyxl import load_workbook

from sheetbot.cli.main import main
from sheetbot.night.context import schema_for

REVIEW_FIRST = ["id", "type", "input", "output", "review", "notes", "edited_output", "checklist"]
BOOKKEEPING = ["status", "night", "error", "cost"]
#: harness.WORKFLOWS on a new board: the reviewer's columns, the team's inputs, then sheetbot's bookkeeping.
NEW_BOARD = [*REVIEW_FIRST, "priority", "brand", *BOOKKEEPING]
Make = Callable[..., BoardUnderTest]


@pytest.fixture(params=sorted(BOARDS))
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Make]:
    with ExitStack() as stack:

        def build(header: Sequence[str] | None) -> BoardUnderTest:
            return BOARDS[request.param](tmp_path, stack, header)

        yield build


def test_the_demo_workbook_shows_the_reviewer_s_columns_first(tmp_path: Path) -> None:
    assert main(["demo", "--dir", str(tmp_path / "d")]) == 0
    ws = load_workbook(tmp_path / "d" / "queue.xlsx")["Queue"]
    header = [c.value for c in ws[1]]
    assert header[: len(REVIEW_FIRST)] == REVIEW_FIRST  # `review` is column E, not P
    assert set(BOOKKEEPING) <= set(header)
    assert min(header.index(c) for c in BOOKKEEPING) > header.index("priority")


def test_init_on_a_new_board_gives_the_same_order_on_every_board(make: Make, tmp_path: Path) -> None:
    under = make(None)
    night = Night(tmp_path, under.board)
    under.board.ensure_schema(schema_for(night.config, with_template_columns=True))
    assert list(under.board.read().columns) == NEW_BOARD


def test_init_on_a_board_with_columns_keeps_the_team_s_order(make: Make, tmp_path: Path) -> None:
    mine = ["input", "brand", "type", "status"]
    under = make(mine)
    night = Night(tmp_path, under.board)
    added = under.board.ensure_schema(schema_for(night.config, with_template_columns=True))
    assert added == [c for c in NEW_BOARD if c not in mine]
    assert list(under.board.read().columns) == [*mine, *added]


def test_without_a_checklist_in_any_workflow_there_is_no_checklist_column(tmp_path: Path) -> None:
    workflows = {name: {k: v for k, v in wf.items() if k != "checklist"} for name, wf in WORKFLOWS.items()}
    night = Night(tmp_path, BOARDS["memory"](tmp_path, ExitStack(), None).board, workflows=workflows)
    assert "checklist" not in schema_for(night.config).columns


def test_after_a_night_each_output_has_its_workflow_s_checklist_beside_it(make: Make, tmp_path: Path) -> None:
    under = make(["id", "type", "priority", "input", "brand"])
    workflows = {**WORKFLOWS, "listing": {**WORKFLOWS["listing"], "checklist": ["Facts unchanged", "=1+1 stays text"]}}
    night = Night(tmp_path, under.board, workflows=workflows)
    under.person.add(type="listing", input="Trail tent", brand="Kestrel")
    under.person.add(type="blog", input="Rain")
    night.lock()
    night.clock.set(at("2026-11-24T01:00"))
    assert night.run().done.total() == 2
    rows = {r["input"]: r for r in under.person.rows()}
    tent, rain = rows["Trail tent"], rows["Rain"]
    assert tent["status"] == "review" and tent["checklist"] == "☐ Facts unchanged\n☐ =1+1 stays text"
    assert not under.person.is_formula(tent["id"], "checklist")
    assert rain["status"] == "review" and rain["checklist"] == ""  # its workflow has no checklist
