"""The board contract: one suite, run against every board in boards_under_test.BOARDS.

What every backend promises the night: `init` adds what is missing and nothing twice; rows are found by
id whatever people did to them; what sheetbot writes is never a formula; a failed write costs no second
model call; and the whole lifecycle, over two nights, behaves the same on every board.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path

import pytest
from boards_under_test import BOARDS, TEAM_HEADER, BoardUnderTest, Night
from harness import at

from sheetbot.boards.base import Claim, RowUpdate, SchemaSpec, Sheet, WriteResult
from sheetbot.boards.capabilities import read_then_write
from sheetbot.errors import BoardWriteError, UnknownRowsError
from sheetbot.status import Decision, Status

COLUMNS = [
    "id",
    "type",
    "input",
    "priority",
    "status",
    "night",
    "output",
    "review",
    "notes",
    "edited_output",
    "error",
    "cost",
]
SPEC = SchemaSpec(
    columns=COLUMNS,
    review_column="review",
    review_choices=[str(d) for d in Decision],
    status_column="status",
    status_choices=[str(s) for s in Status],
    wide_columns=["input", "output", "notes", "edited_output", "error"],
)
Make = Callable[..., BoardUnderTest]


@pytest.fixture(params=sorted(BOARDS))
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Make]:
    with ExitStack() as stack:

        def build(header: Sequence[str] | None = tuple(TEAM_HEADER)) -> BoardUnderTest:
            return BOARDS[request.param](tmp_path, stack, header)

        yield build


def by_id(under: BoardUnderTest) -> dict[str, dict[str, str]]:
    return {r["id"]: r for r in under.person.rows()}


def only(under: BoardUnderTest, **match: str) -> dict[str, str]:
    found = [r for r in under.person.rows() if all(r.get(k) == v for k, v in match.items())]
    assert len(found) == 1, f"{len(found)} rows match {match}: {under.person.rows()}"
    return found[0]


# -- schema ------------------------------------------------------------------------------------------
def test_init_creates_a_missing_board_and_running_it_again_changes_nothing(make: Make) -> None:
    under = make(None)
    assert under.board.ensure_schema(SPEC) == COLUMNS
    sheet = under.board.read()
    assert list(sheet.columns) == COLUMNS and sheet.rows == ()
    assert under.board.ensure_schema(SPEC) == []
    assert list(under.board.read().columns) == COLUMNS


def test_init_adds_missing_columns_at_the_end_and_keeps_what_people_typed(make: Make) -> None:
    under = make(["type", "input", "brand"])
    under.person.add(type="listing", input="Trail tent", brand="Kestrel")
    added = under.board.ensure_schema(SPEC)
    assert added == [c for c in COLUMNS if c not in ("type", "input")]
    sheet = under.board.read()
    assert list(sheet.columns) == ["type", "input", "brand", *added]
    assert [(r.get("type"), r.get("input"), r.get("brand")) for r in sheet.rows] == [
        ("listing", "Trail tent", "Kestrel")
    ]
    assert under.board.ensure_schema(SPEC) == []
    assert list(under.board.read().columns) == ["type", "input", "brand", *added]


# -- reading and writing -----------------------------------------------------------------------------
def test_what_is_written_reads_back_and_none_clears_a_cell(make: Make) -> None:
    under = make()
    under.person.add(id="t1", type="listing", input="Trail tent")
    under.person.add(id="t2", type="blog", input="Rain")
    under.board.ensure_schema(SPEC)
    assert [r.get("id") for r in under.board.read().rows] == ["t1", "t2"]
    result = under.board.write(
        [
            RowUpdate("t2", {"status": "review", "output": "Line one\nline two", "cost": 0.25, "error": "a note"}),
            RowUpdate("t1", {"status": "locked"}),
        ]
    )
    assert result.written == 2 and result.missing == []
    rows = by_id(under)
    assert rows["t2"]["output"] == "Line one\nline two" and rows["t2"]["status"] == "review"
    assert float(rows["t2"]["cost"]) == 0.25 and rows["t2"]["input"] == "Rain"
    assert rows["t1"]["status"] == "locked" and rows["t1"]["output"] == ""
    read = {r.get("id"): r for r in under.board.read().rows}
    assert read["t2"].get("output") == "Line one\nline two" and read["t1"].get("type") == "listing"

    under.board.write([RowUpdate("t2", {"error": None})])
    assert by_id(under)["t2"]["error"] == "" and by_id(under)["t2"]["output"] == "Line one\nline two"


def test_rows_are_found_by_id_after_people_sort_insert_delete_and_copy(make: Make) -> None:
    under = make()
    names = {"t1": "alpha", "t2": "bravo", "t3": "charlie", "t4": "delta"}
    for task_id, name in names.items():
        under.person.add(id=task_id, type="listing", input=name)
    under.board.ensure_schema(SPEC)
    under.board.read()
    person = under.person
    person.sort_by("input", reverse=True)
    person.insert_at_top(type="listing", input="new on top")
    person.delete("t3")
    person.copy("t2")

    result = under.board.write([RowUpdate(t, {"output": f"for {name}"}) for t, name in names.items()])
    assert result.missing == ["t3"]
    rows = person.rows()
    assert sorted(r["input"] for r in rows) == ["alpha", "bravo", "bravo", "delta", "new on top"]
    for row in rows:  # nothing lands on the wrong row
        assert row["output"] in ("", f"for {row['input']}")
    for name in ("alpha", "bravo", "delta"):
        assert any(r["output"] == f"for {name}" for r in rows if r["input"] == name)
    assert only(under, input="new on top")["output"] == ""


def test_a_write_planned_from_its_own_read_finds_rows_by_id_after_people_sort_meanwhile(make: Make) -> None:
    """read_then_write (the run's last read and write, sheetbot/night/writeback.py reconcile): people who sort,
    insert, delete and copy while the updates are planned, taking a few seconds for it, move no output."""
    under = make()
    names = {"t1": "alpha", "t2": "bravo", "t3": "charlie", "t4": "delta"}
    for task_id, name in names.items():
        under.person.add(id=task_id, type="listing", input=name)
    under.board.ensure_schema(SPEC)

    def plan(sheet: Sheet) -> list[RowUpdate]:
        assert sorted(r.get("input") for r in sheet.rows) == sorted(names.values())  # the board as it was
        person = under.person
        person.sort_by("input", reverse=True)
        person.insert_at_top(type="listing", input="new on top")
        person.delete("t3")
        person.copy("t2")
        under.pass_time(5.0)
        return [RowUpdate(t, {"output": f"for {name}"}) for t, name in names.items()]

    sheet, result = read_then_write(under.board, plan)
    assert len(sheet.rows) == 4 and result.missing == ["t3"]
    rows = under.person.rows()
    for row in rows:  # nothing lands on the wrong row
        assert row["output"] in ("", f"for {row['input']}")
    for name in ("alpha", "delta"):
        assert only(under, input=name)["output"] == f"for {name}"
    assert only(under, input="new on top")["output"] == ""


def test_a_plan_that_raises_writes_nothing(make: Make) -> None:
    under = make()
    under.person.add(id="t1", type="listing", input="alpha")
    under.board.ensure_schema(SPEC)

    def plan(sheet: Sheet) -> list[RowUpdate]:
        raise UnknownRowsError("rows this state does not know", task_ids=["x1"])

    with pytest.raises(UnknownRowsError):
        read_then_write(under.board, plan)
    assert only(under, input="alpha")["output"] == ""
    assert read_then_write(under.board, lambda sheet: [])[1] == WriteResult()  # nothing planned, nothing sent


def test_new_rows_get_their_ids_on_the_rows_they_were_read_from(make: Make) -> None:
    under = make()
    for kind, text in (("listing", "a"), ("listing", "b"), ("blog", "c")):
        under.person.add(type=kind, input=text)
    under.board.ensure_schema(SPEC)
    sheet = under.board.read()
    claims = [
        RowUpdate(f"new{n}", {"id": f"new{n}"}, claim=Claim(ref=r.ref, old_id="", fingerprint=dict(r.values)))
        for n, r in enumerate(sheet.rows)
    ]
    under.person.sort_by("input", reverse=True)
    under.person.insert_at_top(type="blog", input="typed later")
    assert under.board.write(claims).missing == []
    assert {r["input"]: r["id"] for r in under.person.rows()} == {
        "a": "new0",
        "b": "new1",
        "c": "new2",
        "typed later": "",
    }


def test_values_that_look_like_formulas_are_written_as_text(make: Make) -> None:
    under = make()
    texts = ["=1+1", "+1", "-1", "@SUM(A1:A3)", '=HYPERLINK("http://evil.test","click")']
    for n in range(len(texts)):
        under.person.add(id=f"t{n}", type="listing", input="x")
    under.board.ensure_schema(SPEC)
    under.board.read()
    under.board.write([RowUpdate(f"t{n}", {"output": text}) for n, text in enumerate(texts)])
    rows = by_id(under)
    read = {r.get("id"): r for r in under.board.read().rows}
    for n, text in enumerate(texts):
        assert rows[f"t{n}"]["output"] == text and read[f"t{n}"].get("output") == text
        assert not under.person.is_formula(f"t{n}", "output")


# -- the lifecycle -----------------------------------------------------------------------------------
def test_two_nights_from_queue_to_approved_edited_and_rework(make: Make, tmp_path: Path) -> None:
    under = make()
    night = Night(tmp_path, under.board)
    person = under.person
    person.add(type="listing", input="Trail tent, 2 person", brand="Kestrel")
    person.add(type="listing", input="Down jacket, 800 fill", brand="Kestrel", priority="P1")
    person.add(type="blog", input="Pitching a tent in the rain")

    assert night.lock().locked.total() == 3
    rows = person.rows()
    assert all(r["status"] == "locked" and r["night"] == "2026-11-23" for r in rows)
    assert len({r["id"] for r in rows}) == 3 and all(r["id"] for r in rows)

    night.clock.set(at("2026-11-24T01:00"))
    ran = night.run()
    assert ran.done.total() == 3 and ran.drained and ran.missing == []
    tent, jacket, blog = (
        only(under, input=i) for i in ("Trail tent, 2 person", "Down jacket, 800 fill", "Pitching a tent in the rain")
    )
    assert tent["status"] == "review" and tent["output"].startswith("OUTPUT for: Rewrite this listing:")
    assert float(tent["cost"]) > 0
    assert any("You write listings for Kestrel." in str(r.json) for r in night.fake.requests)

    night.clock.set(at("2026-11-24T09:00"))
    person.set(tent["id"], review="approve")
    person.set(jacket["id"], review="edit", edited_output="My own jacket copy")
    person.set(blog["id"], review="rework", notes="Shorter, and mention the footprint")
    assert night.harvest().decisions == {"approve": 1, "edit": 1, "rework": 1}
    decided = by_id(under)
    assert decided[tent["id"]]["status"] == "approved" and decided[jacket["id"]]["status"] == "edited"
    assert decided[jacket["id"]]["edited_output"] == "My own jacket copy" and decided[blog["id"]]["status"] == "rework"

    night.clock.set(at("2026-11-24T17:00"))
    assert night.lock().locked.total() == 1
    night.clock.set(at("2026-11-25T01:00"))
    night.run()
    assert len(night.fake.requests) == 4
    assert "Shorter, and mention the footprint" in str(night.fake.requests[-1].json)
    again = by_id(under)[blog["id"]]
    assert again["status"] == "review" and again["night"] == "2026-11-24" and again["review"] == ""


def test_a_row_deleted_mid_night_is_reported_and_its_output_kept(make: Make, tmp_path: Path) -> None:
    under = make()
    night = Night(tmp_path, under.board)
    for name in ("alpha", "bravo", "charlie", "delta"):
        under.person.add(type="listing", input=name)
    night.lock()
    ids = {r["input"]: r["id"] for r in under.person.rows()}
    under.person.sort_by("input", reverse=True)
    under.person.insert_at_top(type="listing", input="new on top")
    under.person.delete(ids["charlie"])
    under.person.copy(ids["bravo"])

    night.clock.set(at("2026-11-24T01:00"))
    report = night.run()
    assert report.missing == [ids["charlie"]]
    for name in ("alpha", "bravo", "delta"):
        assert any(
            r["output"] == f"OUTPUT for: Rewrite this listing: {name}"
            for r in under.person.rows()
            if r["input"] == name
        )
    with night.state() as state:
        kept = state.stored_output(ids["charlie"], 1, "final")
        assert kept is not None and kept.output is not None and "charlie" in kept.output

    night.clock.set(at("2026-11-24T09:00"))
    night.harvest()  # the next phase gives the copy its own id and clears what sheetbot wrote on it
    bravos = [r for r in under.person.rows() if r["input"] == "bravo"]
    assert len(bravos) == 2 and len({r["id"] for r in bravos}) == 2
    (original,) = [r for r in bravos if r["id"] == ids["bravo"]]
    (copied,) = [r for r in bravos if r["id"] != ids["bravo"]]
    assert original["status"] == "review" and original["output"]
    assert copied["status"] == "" and copied["output"] == "" and copied["id"]
    assert only(under, input="new on top")["id"]


def test_a_failed_write_raises_and_the_next_phase_writes_the_same_values(make: Make, tmp_path: Path) -> None:
    under = make()
    night = Night(tmp_path, under.board)
    under.person.add(type="listing", input="lamp")
    night.lock()
    night.clock.set(at("2026-11-24T01:00"))
    under.break_write(0)  # the run's write, the one with the outputs, fails
    with pytest.raises(BoardWriteError):
        night.run()
    assert only(under, input="lamp")["status"] == "locked"
    report = night.run()
    assert len(night.fake.requests) == 1  # no second model call
    assert report.done.total() == 0
    row = only(under, input="lamp")
    assert row["status"] == "review" and row["output"] == "OUTPUT for: Rewrite this listing: lamp"
