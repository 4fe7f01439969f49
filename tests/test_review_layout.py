"""Issue 13 items 1-3: a new board puts the reviewer's columns first, the same on every board, and each
output arrives with its workflow's checklist beside it; the workbook reads at a glance (colours, filter,
frozen id, widths, dropdowns). A board that already has columns keeps them, and its look, as its team made it."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path

import pytest
from boards_under_test import BOARDS, BoardUnderTest, Night
from fake_google import FakeGoogleSheets
from harness import WORKFLOWS, at
from openpyxl import Workbook, load_workbook
from openpyxl.worksheet.datavalidation import DataValidation

from sheetbot.boards.base import STATUS_COLOURS
from sheetbot.boards.local import LocalBoard
from sheetbot.boards.local_look import ROW_HEIGHT
from sheetbot.cli.demo import demo_config
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


# -- item 2: readable at a glance -----------------------------------------------------------------------------
def test_the_demo_workbook_is_readable_at_a_glance(tmp_path: Path) -> None:
    assert main(["demo", "--dir", str(tmp_path / "d")]) == 0
    ws = load_workbook(tmp_path / "d" / "queue.xlsx")["Queue"]
    header = {c.value: c.column_letter for c in ws[1]}
    last = max(header.values(), key=lambda letter: (len(letter), letter))
    assert ws.freeze_panes == "B2"  # the header, and the id beside every row
    assert ws.auto_filter.ref == f"A1:{last}{ws.max_row}"  # every column, every row the night wrote

    status = header["status"]
    coloured = {
        rule.formula[0].strip('"'): rule.dxf.fill.fgColor.rgb
        for cf in ws.conditional_formatting
        if f"{status}2" in cf.sqref
        for rule in cf.rules
    }
    assert set(coloured) == set(STATUS_COLOURS) and coloured["review"] == "FFFFF299"

    lists = {str(dv.sqref): dv for dv in ws.data_validations.dataValidation if dv.type == "list"}
    kind = lists[f"{header['type']}2:{header['type']}1048576"]
    assert kind.formula1.strip('"').split(",") == sorted(demo_config()["workflows"])
    assert kind.errorStyle == "warning"  # a workflow added to the YAML later can still be typed
    assert lists[f"{header['review']}2:{header['review']}1048576"].formula1 == '"approve,edit,rework"'

    for name, width in (("input", 40), ("output", 60)):
        assert ws.column_dimensions[header[name]].width == width
        cells = [ws[f"{header[name]}{row}"] for row in range(2, ws.max_row + 1)]
        assert all(c.alignment.wrap_text and c.alignment.vertical == "top" for c in cells if c.value)
    assert {ws.row_dimensions[row].ht for row in range(2, ws.max_row + 1)} == {ROW_HEIGHT}


def test_init_keeps_a_person_s_filter_and_type_dropdown(tmp_path: Path) -> None:
    path = tmp_path / "queue.xlsx"
    book = Workbook()
    ws = book.active
    assert ws is not None
    ws.title = "Queue"
    ws.append(["type", "input", "id"])
    ws.auto_filter.ref = "B1:C9"
    own = DataValidation("list", formula1='"listing,other"')
    own.add("A2:A50")
    ws.add_data_validation(own)
    book.save(path)
    night = Night(tmp_path, LocalBoard(path, "Queue"))
    night.board.ensure_schema(schema_for(night.config))
    ws = load_workbook(path)["Queue"]
    assert ws.auto_filter.ref == "B1:C9" and ws.freeze_panes == "A2"  # the id is not column A here
    assert [dv.formula1 for dv in ws.data_validations.dataValidation if "A2" in dv.sqref] == ['"listing,other"']


def test_the_google_board_gets_the_type_dropdown_too(tmp_path: Path) -> None:
    with FakeGoogleSheets(tmp_path, {}) as google:
        night = Night(tmp_path, google.board("Queue"))
        night.board.ensure_schema(schema_for(night.config))
        rules = {v["range"]["startColumnIndex"]: v["rule"] for v in google.grid("Queue").validations}
        kind = rules[NEW_BOARD.index("type")]
        assert [v["userEnteredValue"] for v in kind["condition"]["values"]] == list(WORKFLOWS)
        assert kind["strict"] is False and rules[NEW_BOARD.index("review")]["strict"] is True


def test_every_picture_the_readme_shows_is_in_the_repository() -> None:
    """The README's picture of the demo board is rendered from the workbook (bench/render_board.py) and
    committed: a link to a missing file shows a broken image on the project's front page."""
    import re

    root = Path(__file__).resolve().parent.parent
    pictures = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", (root / "README.md").read_text(encoding="utf-8"))
    assert "docs/demo-board.png" in pictures
    for picture in pictures:
        assert (root / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", picture
