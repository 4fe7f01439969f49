"""A formula in the local workbook reaches the model as its value, as Google's does, or fails its row clearly.

The files are real .xlsx: built by openpyxl (which stores no computed value), then the value Excel would
have stored on save is written into the sheet's XML by hand.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from harness import Shop
from xlsx_cache import save_as_excel_would

from sheetbot.boards.base import RowUpdate
from sheetbot.boards.local import LocalBoard
from sheetbot.status import Status


def test_the_model_gets_the_formulas_value_and_a_row_without_one_fails_clearly(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    shop.add(type="listing", priority="P1", input='=CONCAT("Blue mug, ","350 ml")', brand='=UPPER("kestrel")')
    shop.add(type="listing", priority="P1", input='=CONCAT("Red mug, ","250 ml")', brand="Kestrel")
    save_as_excel_would(shop.book, {"D2": "Blue mug, 350 ml", "E2": "KESTREL"})  # row 3: never calculated

    report = shop.lock()
    shop.run()

    sent = " ".join(str(r.json) for r in shop.fake.requests)
    assert "Blue mug, 350 ml" in sent and "You write listings for KESTREL." in sent
    assert "CONCAT" not in sent and "UPPER" not in sent and "Red mug" not in sent
    assert len(shop.fake.requests) == 1
    failed = dict(report.failed)
    assert list(failed.values()) == [
        "cell input of row 3 holds a formula with no saved value: open and save the workbook in Excel, "
        "or type the value"
    ]
    rows = {r["id"]: r for r in shop.rows()}
    (bad,) = [r for r in rows.values() if r["error"]]
    assert bad["status"] == Status.FAILED and "row 3 holds a formula" in bad["error"]
    assert str(bad["input"]).startswith("=CONCAT(")  # the person's formula is kept, not overwritten


def test_a_formula_in_a_column_no_template_reads_does_not_fail_the_row(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    shop.add(type="listing", priority="P1", input="A blue mug", brand="Kestrel", memo="=NOW()")
    save_as_excel_would(shop.book, {})  # saved by a program: the formula has no value
    assert shop.lock().failed == []
    shop.run()
    assert len(shop.fake.requests) == 1


def test_the_board_reads_saved_values_and_keeps_formulas_when_it_writes(tmp_path: Path) -> None:
    book = tmp_path / "q.xlsx"
    shop = Shop(tmp_path)
    shop.add(id="t1", type="listing", input='=CONCAT("a","b")')
    save_as_excel_would(shop.book, {"D2": "ab"})
    shutil.copy(shop.book, book)
    board = LocalBoard(book, "Queue")
    (row,) = board.read().rows
    assert row.get("input") == "ab" and not row.problems
    assert board.write([RowUpdate(task_id="t1", values={"brand": '=HYPERLINK("x")'})]).written == 1
    again = LocalBoard(book, "Queue").read().rows[0]
    assert again.get("brand") == '=HYPERLINK("x")'  # sheetbot's own value stays text, never a formula
    assert again.get("input") == "" and "input" in again.problems  # openpyxl's save stores no value
