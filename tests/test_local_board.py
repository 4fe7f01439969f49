"""The workbook board on real .xlsx files: people edit the file with openpyxl between our read and write."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from sheetbot.boards.base import Claim, RowUpdate, SchemaSpec, WriteResult
from sheetbot.boards.local import LocalBoard
from sheetbot.boards.memory import MemoryBoard
from sheetbot.errors import BoardError, BoardNotFound

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
    review_choices=["approve", "edit", "rework"],
    status_column="status",
    status_choices=["queued", "locked", "running", "review"],
    wide_columns=["input", "output", "notes", "edited_output"],
)


# -- helpers: a person with the workbook open ----------------------------------------------------------
def make_workbook(path: Path, header: Sequence[str | None], rows: list[list[object]], sheet: str = "Queue") -> Path:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = sheet
    ws.append(header)
    for row in rows:
        ws.append(row)
    wb.save(path)
    return path


def person_edits(path: Path, change: Callable[[Worksheet], None], sheet: str = "Queue") -> None:
    """Load, change and save the file as a person would, making sure the file's mtime moves."""
    before = path.stat().st_mtime_ns
    wb = load_workbook(path)
    change(wb[sheet])
    wb.save(path)
    after = path.stat()
    if after.st_mtime_ns == before:
        os.utime(path, ns=(after.st_atime_ns, before + 1_000_000))


def cells(path: Path, sheet: str = "Queue") -> list[list[object]]:
    ws = load_workbook(path)[sheet]
    return [list(row) for row in ws.iter_rows(values_only=True)]


def by_id(path: Path, sheet: str = "Queue") -> dict[str, dict[str, object]]:
    rows = cells(path, sheet)
    header = [str(h) for h in rows[0]]
    out = {}
    for row in rows[1:]:
        values = dict(zip(header, row, strict=False))
        if values.get("id"):
            out[str(values["id"])] = values
    return out


@pytest.fixture
def queue(tmp_path: Path) -> Path:
    return make_workbook(
        tmp_path / "queue.xlsx",
        ["id", "type", "input", "status", "output"],
        [
            ["t1", "summary", "first", "locked", None],
            ["t2", "summary", "second", "locked", None],
            ["t3", "summary", "third", "locked", None],
        ],
    )


# -- read ----------------------------------------------------------------------------------------------
def test_read_gives_header_rows_and_row_numbers(queue: Path) -> None:
    sheet = LocalBoard(queue, "Queue").read()
    assert sheet.columns == ("id", "type", "input", "status", "output")
    assert [row.ref for row in sheet.rows] == ["2", "3", "4"]
    assert sheet.rows[0].values == {"id": "t1", "type": "summary", "input": "first", "status": "locked", "output": ""}


def test_read_turns_cells_into_text_and_skips_blank_rows_and_headers(tmp_path: Path) -> None:
    path = make_workbook(
        tmp_path / "q.xlsx",
        ["id", None, "n", "f", "whole", "day", "at", "flag"],
        [
            ["a", "x", 3, 0.25, 3.0, date(2026, 11, 22), datetime(2026, 11, 22, 1, 30), True],
            [None, None, None, None, None, None, None, None],
            ["b", None, None, None, None, datetime(2026, 11, 23), None, False],
        ],
    )
    sheet = LocalBoard(path, "Queue").read()
    assert sheet.columns == ("id", "n", "f", "whole", "day", "at", "flag")
    first, second = sheet.rows
    assert dict(first.values) == {
        "id": "a",
        "n": "3",
        "f": "0.25",
        "whole": "3",
        "day": "2026-11-22",
        "at": "2026-11-22T01:30:00",
        "flag": "TRUE",
    }
    assert second.ref == "4"
    assert second.get("day") == "2026-11-23"
    assert second.get("flag") == "FALSE"


# -- write ---------------------------------------------------------------------------------------------
def test_write_round_trip(queue: Path) -> None:
    board = LocalBoard(queue, "Queue")
    board.read()
    result = board.write(
        [
            RowUpdate("t2", {"status": "review", "output": "done two", "cost": 0.0123}),
            RowUpdate("t1", {"status": "review", "output": None}),
        ]
    )
    assert result == WriteResult(written=2, missing=[])
    sheet = LocalBoard(queue, "Queue").read()
    assert sheet.columns[-1] == "cost"  # a column the header lacked is added at the end
    rows = {row.get("id"): row for row in sheet.rows}
    assert rows["t2"].get("output") == "done two"
    assert rows["t2"].get("cost") == "0.0123"
    assert rows["t1"].get("status") == "review"
    assert rows["t3"].get("status") == "locked"


def test_consecutive_writes_without_a_read_in_between(queue: Path) -> None:
    board = LocalBoard(queue, "Queue")
    board.write([RowUpdate("t1", {"status": "running"})])
    board.write([RowUpdate("t1", {"output": "out"})])
    assert by_id(queue)["t1"]["status"] == "running"
    assert by_id(queue)["t1"]["output"] == "out"


def test_numbers_stay_numbers_and_dates_are_written_as_text(queue: Path) -> None:
    LocalBoard(queue, "Queue").write([RowUpdate("t1", {"cost": 0.0123, "attempt": 2, "night": "2026-11-22"})])
    ws = load_workbook(queue)["Queue"]
    header = [c.value for c in ws[1]]
    row = {h: ws.cell(row=2, column=i + 1) for i, h in enumerate(header)}
    assert isinstance(row["cost"].value, float) and row["cost"].value == 0.0123
    assert row["cost"].data_type == "n"
    assert row["attempt"].value == 2 and isinstance(row["attempt"].value, int)
    assert row["night"].value == "2026-11-22" and row["night"].data_type == "s"


@pytest.mark.parametrize("text", ["=1+1", "+SUM(A1)", "-3 items", "@mention", '=HYPERLINK("http://x")', "#N/A"])
def test_text_that_looks_like_a_formula_is_written_as_text(queue: Path, text: str) -> None:
    LocalBoard(queue, "Queue").write([RowUpdate("t1", {"output": text})])
    cell = load_workbook(queue, data_only=False)["Queue"]["E2"]
    assert cell.value == text
    assert cell.data_type == "s"
    assert LocalBoard(queue, "Queue").read().rows[0].get("output") == text


def test_illegal_control_characters_are_stripped(queue: Path) -> None:
    LocalBoard(queue, "Queue").write([RowUpdate("t1", {"output": "a\x00b\x07c\x1fd\te\nf"})])
    assert load_workbook(queue)["Queue"]["E2"].value == "abcd\te\nf"


def test_no_temp_file_stays_behind(queue: Path) -> None:
    board = LocalBoard(queue, "Queue")
    board.read()
    board.write([RowUpdate("t1", {"output": "x"})])
    board.ensure_schema(SPEC)
    assert sorted(p.name for p in queue.parent.iterdir()) == ["queue.xlsx"]


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_write_keeps_the_file_mode(queue: Path) -> None:
    queue.chmod(0o640)
    LocalBoard(queue, "Queue").write([RowUpdate("t1", {"output": "x"})])
    assert queue.stat().st_mode & 0o777 == 0o640


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_a_symlinked_workbook_stays_a_symlink(queue: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.xlsx"
    link.symlink_to(queue)
    LocalBoard(link, "Queue").write([RowUpdate("t1", {"output": "x"})])
    assert link.is_symlink()
    assert by_id(queue)["t1"]["output"] == "x"


def test_an_update_for_no_row_writes_nothing(queue: Path) -> None:
    before = queue.stat().st_mtime_ns
    assert LocalBoard(queue, "Queue").write([RowUpdate("nope", {"output": "x"})]).missing == ["nope"]
    assert queue.stat().st_mtime_ns == before


# -- people change the workbook between our read and our write ----------------------------------------
def test_rows_are_found_by_id_after_a_person_sorts_inserts_and_deletes(queue: Path) -> None:
    board = LocalBoard(queue, "Queue")
    board.read()

    def shuffle(ws: Worksheet) -> None:
        ws.delete_rows(2)  # t1 gone
        ws.insert_rows(2, 2)
        ws["A2"], ws["C2"] = "t9", "typed by a person"
        # sort what is left by hand: t3 above t2
        t2 = [c.value for c in ws[4]]
        t3 = [c.value for c in ws[5]]
        for col, (a, b) in enumerate(zip(t3, t2, strict=True), start=1):
            ws.cell(row=4, column=col, value=a)
            ws.cell(row=5, column=col, value=b)

    person_edits(queue, shuffle)
    result = board.write(
        [RowUpdate("t1", {"output": "one"}), RowUpdate("t2", {"output": "two"}), RowUpdate("t3", {"output": "three"})]
    )
    assert result.written == 2
    assert result.missing == ["t1"]
    rows = by_id(queue)
    assert rows["t2"]["output"] == "two" and rows["t2"]["input"] == "second"
    assert rows["t3"]["output"] == "three" and rows["t3"]["input"] == "third"
    assert rows["t9"]["input"] == "typed by a person" and rows["t9"]["output"] is None


def test_a_claim_finds_its_row_after_rows_were_inserted_above(tmp_path: Path) -> None:
    path = make_workbook(tmp_path / "q.xlsx", ["id", "type", "input"], [[None, "summary", "new A"]])
    board = LocalBoard(path, "Queue")
    (row,) = board.read().rows
    claim = RowUpdate("t1", {"id": "t1", "status": "queued"}, claim=Claim(row.ref, "", row.values))

    def insert(ws: Worksheet) -> None:
        ws.insert_rows(2, 2)  # the new row moves from row 2 to row 4
        ws["B2"], ws["C2"] = "summary", "someone else's row, now at row 2"
        ws["B3"], ws["C3"] = "summary", "new A, but edited"

    person_edits(path, insert)
    assert board.write([claim]) == WriteResult(written=1, missing=[])
    assert cells(path)[1:] == [
        [None, "summary", "someone else's row, now at row 2", None],
        [None, "summary", "new A, but edited", None],
        ["t1", "summary", "new A", "queued"],
    ]


def test_a_claim_whose_row_was_changed_is_missing_not_guessed(tmp_path: Path) -> None:
    path = make_workbook(tmp_path / "q.xlsx", ["id", "input"], [[None, "draft"]])
    board = LocalBoard(path, "Queue")
    row = board.read().rows[0]
    person_edits(path, lambda ws: ws.cell(row=2, column=2, value="rewritten"))
    claim = RowUpdate("t1", {"id": "t1"}, claim=Claim(ref=row.ref, old_id="", fingerprint=row.values))
    assert board.write([claim]).missing == ["t1"]


def test_a_person_s_save_between_read_and_write_is_kept(queue: Path) -> None:
    board = LocalBoard(queue, "Queue")
    board.read()

    def type_notes(ws: Worksheet) -> None:
        ws["F1"] = "notes"
        ws["F4"] = "please shorter"
        ws["C3"] = "second, fixed"

    person_edits(queue, type_notes)
    board.write([RowUpdate("t1", {"output": "one"}), RowUpdate("t2", {"output": "two"})])
    rows = by_id(queue)
    assert rows["t3"]["notes"] == "please shorter"
    assert rows["t2"]["input"] == "second, fixed"
    assert rows["t1"]["output"] == "one" and rows["t2"]["output"] == "two"
    assert cells(queue)[0] == ["id", "type", "input", "status", "output", "notes"]


def test_a_save_between_two_writes_is_kept(queue: Path) -> None:
    board = LocalBoard(queue, "Queue")
    board.write([RowUpdate("t1", {"status": "running"})])
    person_edits(queue, lambda ws: ws.cell(row=4, column=3, value="edited by hand"))
    board.write([RowUpdate("t1", {"status": "review"})])
    rows = by_id(queue)
    assert rows["t3"]["input"] == "edited by hand" and rows["t1"]["status"] == "review"


def test_a_new_column_never_lands_on_data_under_a_blank_header(queue: Path) -> None:
    person_edits(queue, lambda ws: ws.cell(row=3, column=7, value="a person's aside"))
    LocalBoard(queue, "Queue").write([RowUpdate("t1", {"cost": 0.5})])
    header = cells(queue)[0]
    assert header[:8] == ["id", "type", "input", "status", "output", None, None, "cost"]
    assert cells(queue)[2][6] == "a person's aside"


# -- errors --------------------------------------------------------------------------------------------
def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BoardNotFound) as info:
        LocalBoard(tmp_path / "queue.xlsx", "Queue").read()
    message = str(info.value)
    assert "queue.xlsx not found" in message and "sheetbot init" in message and "\n" not in message


def test_missing_sheet_names_the_sheets_there_are(queue: Path) -> None:
    with pytest.raises(BoardNotFound) as info:
        LocalBoard(queue, "Tasks").read()
    message = str(info.value)
    assert "'Tasks'" in message and "'Queue'" in message and "\n" not in message


@pytest.mark.parametrize("content", [b"", b"id,type,input\nt1,summary,hello\n", b"PK\x03\x04garbage"])
def test_a_file_that_is_not_a_workbook(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "queue.xlsx"
    path.write_bytes(content)
    calls: list[Callable[[LocalBoard], object]] = [
        lambda b: b.read(),
        lambda b: b.write([RowUpdate("t1", {"x": 1})]),
        lambda b: b.ensure_schema(SPEC),
    ]
    for call in calls:
        with pytest.raises(BoardError) as info:
            call(LocalBoard(path, "Queue"))
        assert not isinstance(info.value, BoardNotFound)
        assert "not a valid .xlsx" in str(info.value) and "\n" not in str(info.value)
    assert path.read_bytes() == content  # never overwritten


@pytest.mark.skipif(os.name != "posix", reason="needs RLIMIT_FSIZE")
def test_a_failed_save_is_a_board_write_error_and_leaves_the_file_alone(queue: Path) -> None:
    """The disk fills up mid-save (a file size limit stands in for a full disk)."""
    before = queue.read_bytes()
    script = textwrap.dedent(f"""
        import resource, signal
        from pathlib import Path
        from sheetbot.boards.base import RowUpdate
        from sheetbot.boards.local import LocalBoard
        from sheetbot.errors import BoardWriteError
        board = LocalBoard(Path({str(queue)!r}), "Queue")
        board.read()
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, resource.RLIM_INFINITY))
        try:
            board.write([RowUpdate("t1", {{"output": "x" * 10_000}})])
        except BoardWriteError as err:
            print(err)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    message = done.stdout.strip()
    assert "close the workbook" in message and "next run" in message and "\n" not in message
    assert queue.read_bytes() == before
    assert sorted(p.name for p in queue.parent.iterdir()) == ["queue.xlsx"]


# -- ensure_schema -------------------------------------------------------------------------------------
def review_validations(path: Path, sheet: str = "Queue") -> list[DataValidation]:
    ws = load_workbook(path)[sheet]
    return [dv for dv in ws.data_validations.dataValidation if dv.type == "list"]


def test_ensure_schema_creates_the_workbook(tmp_path: Path) -> None:
    path = tmp_path / "queue.xlsx"
    assert LocalBoard(path, "Queue").ensure_schema(SPEC) == COLUMNS
    wb = load_workbook(path)
    assert wb.sheetnames == ["Queue"]
    ws = wb["Queue"]
    assert [c.value for c in ws[1]] == COLUMNS
    assert all(c.font.b for c in ws[1])
    assert ws.freeze_panes == "B2"  # the header, and the id column (A) beside every row
    assert ws.column_dimensions["G"].width == 60  # output
    (dropdown,) = review_validations(path)
    assert dropdown.formula1 == '"approve,edit,rework"'
    assert "H2" in dropdown.sqref and "H5000" in dropdown.sqref and "H1" not in dropdown.sqref
    assert dropdown.showErrorMessage and dropdown.allow_blank
    assert LocalBoard(path, "Queue").read().rows == ()


def test_ensure_schema_adds_columns_without_touching_existing_ones(tmp_path: Path) -> None:
    path = make_workbook(
        tmp_path / "q.xlsx",
        ["input", "brand", "type", "id"],
        [["hello", "Acme", "summary", "t1"], ["bye", "Beta", "summary", None]],
    )
    added = LocalBoard(path, "Queue").ensure_schema(SPEC)
    assert added == [c for c in COLUMNS if c not in {"input", "type", "id"}]
    rows = cells(path)
    assert rows[0] == ["input", "brand", "type", "id", *added]
    assert rows[1][:4] == ["hello", "Acme", "summary", "t1"]
    assert rows[2][:4] == ["bye", "Beta", "summary", None]
    assert all(value is None for row in rows[1:] for value in row[4:])


def test_ensure_schema_adds_a_sheet_to_an_existing_workbook(tmp_path: Path) -> None:
    path = make_workbook(tmp_path / "q.xlsx", ["anything"], [["kept"]], sheet="Notes")
    LocalBoard(path, "Queue").ensure_schema(SPEC)
    assert load_workbook(path).sheetnames == ["Notes", "Queue"]
    assert cells(path, "Notes") == [["anything"], ["kept"]]


def test_ensure_schema_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "queue.xlsx"
    board = LocalBoard(path, "Queue")
    board.ensure_schema(SPEC)
    board.write([])  # nothing to do
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    assert board.ensure_schema(SPEC) == []
    assert LocalBoard(path, "Queue").ensure_schema(SPEC) == []
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert len(review_validations(path)) == 1


def test_ensure_schema_keeps_a_person_s_dropdown_and_freeze(tmp_path: Path) -> None:
    path = tmp_path / "queue.xlsx"
    LocalBoard(path, "Queue").ensure_schema(SPEC)

    def change(ws: Worksheet) -> None:
        ws.freeze_panes = "C2"  # header and two columns: still a frozen header
        ws.data_validations.dataValidation = []
        own = DataValidation("list", formula1='"approve,edit,rework,skip"')
        own.add("H2:H500")
        ws.add_data_validation(own)

    person_edits(path, change)
    assert LocalBoard(path, "Queue").ensure_schema(SPEC) == []
    assert load_workbook(path)["Queue"].freeze_panes == "C2"
    (dropdown,) = review_validations(path)
    assert dropdown.formula1 == '"approve,edit,rework,skip"'


def test_written_cells_in_a_wide_column_wrap(tmp_path: Path) -> None:
    path = tmp_path / "queue.xlsx"
    board = LocalBoard(path, "Queue")
    board.ensure_schema(SPEC)
    person_edits(path, lambda ws: ws.append(["t1", "summary", "hello"]))
    board.write([RowUpdate("t1", {"output": "a long answer", "status": "review"})])
    ws = load_workbook(path)["Queue"]
    assert ws["G2"].alignment.wrap_text and not ws["E2"].alignment.wrap_text


# -- the same behaviour as the memory board ------------------------------------------------------------
def test_behaves_like_the_memory_board(tmp_path: Path) -> None:
    header = ["id", "type", "input"]
    data: list[list[object]] = [["t1", "summary", "one"], [None, "summary", "two"], ["t3", "summary", "=not a formula"]]
    local = LocalBoard(make_workbook(tmp_path / "q.xlsx", header, data), "Queue")
    person_edits(local.path, lambda ws: setattr(ws["C4"], "data_type", "s"))  # typed as text, not a formula
    memory = MemoryBoard(header, [dict(zip(header, row, strict=True)) for row in data])
    results = []
    for board in (local, memory):
        rows = board.read().rows
        new = rows[1]
        updates = [
            RowUpdate("t1", {"output": "=1+1", "cost": 0.25}),
            RowUpdate("t2", {"id": "t2"}, claim=Claim(new.ref, "", new.values)),
            RowUpdate("gone", {"output": "x"}),
        ]
        result = board.write(updates)
        sheet = board.read()
        results.append((result, sheet.columns, [dict(row.values) for row in sheet.rows]))
    assert results[0] == results[1]


@pytest.mark.parametrize(
    ("before", "value", "after", "written"),
    [
        ("same text", "same text", "same text", False),
        (None, "", None, False),  # an empty output leaves an empty cell empty, not an empty string
        (0.25, 0.25, 0.25, False),
        (1, True, "True", True),  # True == 1 in Python; on the sheet the text replaces the number
        (5, "5", "5", True),  # a number becomes the text it was asked to be
        ("5", 5, 5, True),
        ("=SUM(A1:A2)", "=SUM(A1:A2)", "=SUM(A1:A2)", True),  # a formula with that text becomes plain text
        ("#N/A", "#N/A", "#N/A", True),  # so does an error value
        ("old", None, None, True),
    ],
)
def test_a_cell_already_holding_the_value_is_left_alone_and_every_other_is_written(
    before: object, value: object, after: object, written: bool
) -> None:
    from sheetbot.boards.local_sheet import put_value

    ws = Workbook().active
    assert ws is not None
    cell = ws.cell(row=2, column=1, value=before)
    assert put_value(cell, value) is written  # type: ignore[arg-type]
    assert cell.value == after and type(cell.value) is type(after)
    if isinstance(after, str):
        assert cell.data_type == "s"  # never a formula
        assert cell.quotePrefix is after.startswith("=")


def test_formula_text_already_in_a_cell_still_gets_its_quote_prefix() -> None:
    """Text a person would take for a formula keeps its guard even when the same text was there unguarded."""
    from sheetbot.boards.local_sheet import put_value

    ws = Workbook().active
    assert ws is not None
    cell = ws.cell(row=2, column=1)
    cell.value, cell.data_type = "=1+1", "s"  # text, as a write of an older sheetbot left it
    assert cell.quotePrefix is False
    assert put_value(cell, "=1+1") is True and cell.quotePrefix is True and cell.data_type == "s"
    assert put_value(cell, "=1+1") is False
