"""A workbook sheetbot cannot keep whole is refused before anything is saved (issue 10, item 8).

openpyxl rewrites the whole file from what it understands; a text box, a picture, a person's chart, a pivot
table, slicers or macros elsewhere in the workbook would go at sheetbot's first save. `check`, `init`, `lock`
and every phase refuse such a workbook with one line naming the sheet and the object, and write nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from pathlib import Path

import pytest
import xlsx_objects as X
from harness import ENV, Shop, at
from openpyxl import load_workbook

import sheetbot.boards.local as local
from sheetbot.boards import xlsx_parts
from sheetbot.boards.local import LocalBoard
from sheetbot.cli.check import run_check
from sheetbot.cli.main import main
from sheetbot.errors import WorkbookNotKept

Build = Callable[[Path], None]
OBJECTS: dict[str, tuple[Build, str, str]] = {
    # name: (how a person adds it, the sheet named in the error, the kind named in the error)
    "text box": (lambda p: X.add_drawing(p, "Notes", X.TEXT_BOX), "Notes", "a text box"),
    "picture": (lambda p: X.add_drawing(p, "Notes", X.PICTURE, picture=True), "Notes", "a picture"),
    "user chart": (lambda p: X.add_chart(p, "Notes"), "Notes", "a chart"),
    "pivot table": (lambda p: X.add_pivot_table(p, "Notes"), "Notes", "a pivot table"),
    "macros": (X.add_macros, "", "macros"),
    "slicer": (
        lambda p: X.inject(p, sheet="Notes", rel_type="slicer", part="xl/slicers/slicer1.xml", body=b"<slicers/>"),
        "Notes",
        "a slicer",
    ),
    "threaded comments": (
        lambda p: X.inject(
            p, sheet="Notes", rel_type="threadedComment", part="xl/threadedComments/tc1.xml", body=b"<x/>"
        ),
        "Notes",
        "threaded comments",
    ),
    "form control": (
        lambda p: X.inject(p, sheet="Notes", rel_type="ctrlProp", part="xl/ctrlProps/ctrlProp1.xml", body=b"<x/>"),
        "Notes",
        "a form control",
    ),
    "embedded object": (
        lambda p: X.inject(p, sheet="Notes", rel_type="oleObject", part="xl/embeddings/o1.bin", body=b"\0"),
        "Notes",
        "an embedded object",
    ),
    "text box on the queue": (lambda p: X.add_drawing(p, "Queue", X.TEXT_BOX), "Queue", "a text box"),
}


def _shop(tmp_path: Path, build: Build) -> Shop:
    shop = Shop(tmp_path)
    X.workbook(shop.book)
    build(shop.book)
    return shop


def _fingerprint(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), os.stat(path).st_mtime_ns


@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_check_init_and_lock_refuse_a_workbook_they_would_damage_and_write_nothing(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build, sheet, kind = OBJECTS[name]
    shop = _shop(tmp_path, build)
    before = _fingerprint(shop.book)

    problems = run_check(shop.config_path, env=ENV)
    assert any(kind in p and "workbook of its own" in p for p in problems), problems
    for command in ("init", "lock", "harvest"):
        capsys.readouterr()
        assert main([command, "--config", str(shop.config_path)]) == 1, command
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and kind in lines[0] and "workbook of its own" in lines[0], lines
        if sheet:
            assert f"sheet {sheet!r}" in lines[0]
    assert _fingerprint(shop.book) == before  # not one byte saved
    assert not list(tmp_path.glob(".queue.xlsx.*.tmp"))


def test_openpyxl_really_drops_them_which_is_why_they_are_refused(tmp_path: Path) -> None:
    """The premise, checked on real files: a save through openpyxl loses these parts."""
    for build, part in (
        (lambda p: X.add_drawing(p, "Notes", X.TEXT_BOX), "xl/drawings/drawing91.xml"),
        (lambda p: X.add_drawing(p, "Notes", X.PICTURE, picture=True), "xl/media/image91.png"),
        (X.add_macros, "xl/vbaProject.bin"),
    ):
        path = X.workbook(tmp_path / "book.xlsx")
        build(path)
        assert part in X.parts(path)
        load_workbook(path).save(path)
        assert part not in X.parts(path)


def test_a_macro_enabled_name_is_refused_even_without_macros(tmp_path: Path) -> None:
    path = X.workbook(tmp_path / "queue.xlsm")
    with pytest.raises(WorkbookNotKept, match=r"macro-enabled .*\.xlsm.*workbook of its own"):
        LocalBoard(path, "Queue").read()


def test_sheetbots_own_dashboard_chart_is_no_reason_to_refuse(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    shop.add(type="listing", input="Trail tent", brand="Kestrel")
    for day in ("2026-11-23", "2026-11-24"):  # two nights: the Dashboard gets its trend chart
        shop.clock.set(at(f"{day}T17:00"))
        shop.lock()
        shop.clock.set(at(f"{day}T23:00"))
        shop.run()
        (row,) = shop.rows()
        shop.set(row["id"], review="rework", notes="again")
        shop.clock.set(at(f"{day}T23:30"))
        shop.harvest()
    assert "Dashboard" in load_workbook(shop.book).sheetnames
    assert any(p.startswith("xl/charts/") for p in X.parts(shop.book))
    assert main(["init", "--config", str(shop.config_path)]) == 0
    shop.clock.set(at("2026-11-25T17:00"))
    assert shop.lock().locked.total() == 1
    assert not [p for p in run_check(shop.config_path, env=ENV) if "workbook" in p]


def test_an_object_added_during_the_night_stops_the_next_save_and_the_state_keeps_the_outputs(
    tmp_path: Path,
) -> None:
    shop = Shop(tmp_path)
    shop.add(type="listing", input="Trail tent", brand="Kestrel")
    shop.lock()
    X.add_drawing(shop.book, "Queue", X.TEXT_BOX)  # a person's note, saved from Excel at midnight
    before = _fingerprint(shop.book)
    shop.clock.set(at("2026-11-24T01:00"))
    with pytest.raises(WorkbookNotKept, match="a text box or shape on sheet 'Queue'"):
        shop.run()
    assert _fingerprint(shop.book) == before
    (row,) = shop.rows()
    with shop.state() as state:  # the answer is paid for once and kept
        stored = state.final_output(row["id"], 1)
        assert stored is not None and stored.output
    book = load_workbook(shop.book)  # the admin moves the note elsewhere (openpyxl's save drops it)
    book.save(shop.book)
    shop.run()
    assert len(shop.fake.requests) == 1 and shop.rows()[0]["output"] == stored.output


def test_the_inspection_runs_once_per_version_of_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = xlsx_parts.losses

    def counted(data: bytes, *, own_sheets: Collection[str] = ()) -> list[xlsx_parts.Loss]:
        calls.append(len(data))
        return real(data, own_sheets=own_sheets)

    monkeypatch.setattr(local, "losses", counted)
    path = X.workbook(tmp_path / "queue.xlsx")
    board = LocalBoard(path, "Queue")
    for _ in range(3):
        board.read()
    assert len(calls) == 1
    from sheetbot.boards.base import RowUpdate

    board.write([RowUpdate("", {"status": "x"})])  # a save of ours is not a new version to inspect
    board.read()
    assert len(calls) == 1
    X.add_drawing(path, "Notes", X.TEXT_BOX)  # a person's save is
    with pytest.raises(WorkbookNotKept):
        board.read()
    assert len(calls) == 2
