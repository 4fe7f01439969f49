"""Placing updates on rows: the id rules every positional board shares."""

from sheetbot.boards.base import Claim, RowUpdate
from sheetbot.boards.locate import resolve


def test_a_copy_being_given_its_own_id_does_not_get_the_originals_update() -> None:
    rows = [{"id": "t1", "input": "a"}, {"id": "t1", "input": "a"}]
    updates = [
        RowUpdate("t1", {"output": "x"}),
        RowUpdate("t7", {"id": "t7"}, claim=Claim(ref="1", old_id="t1", fingerprint=rows[1])),
    ]
    placement = resolve(updates, rows, id_column="id", refs=["0", "1"])
    assert placement.targets == {0: [0], 1: [1]}


def test_a_blank_task_id_matches_no_row() -> None:
    rows = [{"id": "", "input": "a"}, {"id": "", "input": "b"}]
    placement = resolve([RowUpdate("", {"output": "oops"})], rows, id_column="id", refs=["0", "1"])
    assert placement.targets == {} and placement.missing == [""]


def test_a_claim_finds_its_row_after_rows_moved() -> None:
    before = {"id": "", "input": "new row"}
    rows = [{"id": "t2", "input": "other"}, dict(before)]
    claim = RowUpdate("t9", {"id": "t9"}, claim=Claim(ref="0", old_id="", fingerprint=before))
    assert resolve([claim], rows, id_column="id", refs=["0", "1"]).targets == {0: [1]}


def test_a_claim_on_a_row_edited_since_the_read_is_missing_not_guessed() -> None:
    rows = [{"id": "", "input": "edited meanwhile"}]
    claim = RowUpdate("t9", {"id": "t9"}, claim=Claim(ref="0", old_id="", fingerprint={"input": "original"}))
    placement = resolve([claim], rows, id_column="id", refs=["0"])
    assert placement.missing == ["t9"]
