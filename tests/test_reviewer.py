"""Issue 13 item 5, who decided: a `reviewer` column on the board (or Airtable's "Last modified by" named as
that column) is read at the harvest and recorded with the review, in the audit log and in the metrics. A board
without it works as before; the cell is a name, never a formula, never a page."""

from __future__ import annotations

import json
import sqlite3
from contextlib import ExitStack
from pathlib import Path
from typing import cast

import pytest
from boards_under_test import TEAM_HEADER, Night, airtable_board
from fake_airtable import AirtablePerson
from harness import Shop, at
from stored import rows_in_state

from sheetbot.cli.main import main
from sheetbot.night.context import schema_for
from sheetbot.night.harvest import REVIEWER_CHARS, reviewer_name
from sheetbot.state import State


def _reviewed(shop: Shop, decisions: dict[str, dict[str, str]]) -> list[str]:
    """Lock and run one row per decision (adding those not on the board yet), then set each row's cells
    (review, reviewer, …) and harvest."""
    for index in range(len(decisions) - len(shop.rows())):
        shop.add(type="listing", input=f"Trail tent number {index}", brand="Kestrel")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    shop.clock.set(at("2026-11-24T09:00"))
    ids = [r["id"] for r in shop.rows() if r["status"] == "review"]
    for task_id, cells in zip(ids, decisions.values(), strict=True):
        shop.set(task_id, **cells)
    shop.harvest()
    return ids


def _stored_reviewers(shop: Shop) -> dict[str, str | None]:
    return {r["task_id"]: r["reviewer"] for r in rows_in_state(shop, "SELECT task_id, reviewer FROM reviews")}


def _audited(shop: Shop) -> dict[str, dict[str, object]]:
    rows = rows_in_state(shop, "SELECT task_id, detail FROM audit WHERE event = 'decision'")
    return {r["task_id"]: json.loads(r["detail"]) for r in rows}


def test_the_reviewer_column_is_recorded_in_the_state_the_audit_and_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop = Shop(tmp_path)
    shop.add(type="listing", input="Lantern, brass", brand="Kestrel", reviewer="")  # the team adds the column
    cells = {
        "a": {"review": "approve", "reviewer": "  Ana  "},
        "b": {"review": "edit", "edited_output": "Mine", "reviewer": "Ben"},
        "c": {"review": "approve", "reviewer": "Ana"},
    }
    ids = _reviewed(shop, {"lantern": {"review": "rework", "notes": "Shorter", "reviewer": "Ana"}, **cells})
    assert _stored_reviewers(shop) == dict(zip(ids, ["Ana", "Ana", "Ben", "Ana"], strict=True))
    audited = _audited(shop)
    assert [audited[i]["reviewer"] for i in ids] == ["Ana", "Ana", "Ben", "Ana"]
    capsys.readouterr()
    assert main(["report", "--config", str(shop.config_path), "--json"]) == 0
    [listing] = json.loads(capsys.readouterr().out)
    assert listing["reviewers"] == {"Ana": 3, "Ben": 1}


def test_a_board_without_the_column_works_as_before(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shop = Shop(tmp_path)
    ids = _reviewed(shop, {"a": {"review": "approve"}, "b": {"review": "edit", "edited_output": "Mine"}})
    assert _stored_reviewers(shop) == dict.fromkeys(ids)
    assert all("reviewer" not in detail for detail in _audited(shop).values())
    assert "reviewer" not in shop.rows()[0]  # nothing was added to the team's board
    capsys.readouterr()
    assert main(["report", "--config", str(shop.config_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["reviewers"] == {}


@pytest.mark.parametrize(
    ("cell", "stored"),
    [
        # A formula in the workbook is read as its value (none here, never computed): its text is never stored.
        ('=HYPERLINK("http://x.test","Ana")', None),
        ("@Ana", "'@Ana"),  # text that a spreadsheet would run, were it pasted into one, keeps a quote
        ("+Ana -", "'+Ana -"),
        ("Ana\nLopez\t\u200b", "Ana Lopez"),
        ("x" * 10_000, "x" * (REVIEWER_CHARS - 1) + "…"),
        ("   ", None),
    ],
)
def test_the_reviewer_cell_is_stored_as_one_short_line_of_text(tmp_path: Path, cell: str, stored: str | None) -> None:
    shop = Shop(tmp_path)
    shop.add(type="listing", input="Lantern, brass", brand="Kestrel", reviewer="")
    [task_id] = _reviewed(shop, {"lantern": {"review": "approve", "reviewer": cell}})
    assert _stored_reviewers(shop) == {task_id: stored}
    assert _audited(shop)[task_id].get("reviewer") == stored


def test_the_migration_adds_the_reviewer_to_an_old_state_file(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    ids = _reviewed(shop, {"a": {"review": "approve"}})
    with sqlite3.connect(shop.config.state_path) as db:  # what the previous version left: no reviewer column
        db.execute("ALTER TABLE reviews DROP COLUMN reviewer")
    assert "reviewer" not in [c["name"] for c in rows_in_state(shop, "PRAGMA table_info(reviews)")]
    with State(shop.config.state_path):
        pass
    assert "reviewer" in [c["name"] for c in rows_in_state(shop, "PRAGMA table_info(reviews)")]
    assert _stored_reviewers(shop) == {ids[0]: None}  # the old decision kept, its reviewer unknown


def test_init_adds_the_reviewer_column_only_when_asked(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    assert "reviewer" not in schema_for(shop.config).columns
    asked = shop.config.model_copy(update={"board": shop.config.board.model_copy(update={"reviewer_column": True})})
    columns = schema_for(asked).columns
    assert columns[columns.index("edited_output") + 1 : columns.index("reviewer")] in ([], ["checklist"])


def test_a_name_from_any_board_is_one_line_of_printable_text() -> None:
    # Google and Airtable send what a cell holds as it is: control characters included.
    assert reviewer_name("\x00Ana\x1b[31m\r\n") == "Ana [31m"
    assert reviewer_name("\t=1+1") == "'=1+1"  # the tab is gone, and what it hid is still quoted


def test_airtable_s_last_modified_by_named_as_the_reviewer_column(tmp_path: Path) -> None:
    """Airtable tells who changed a record: a "Last modified by" field (set to watch `review`), named as the
    reviewer column, records the collaborator's name. sheetbot never writes to it, and never creates it."""
    with ExitStack() as stack:
        under = airtable_board(tmp_path, stack, [*TEAM_HEADER, "Last modified by"])
        fake = cast(AirtablePerson, under.person).fake
        field = fake.table.field("Last modified by")
        assert field is not None
        field["type"] = "lastModifiedBy"
        night = Night(tmp_path, under.board, columns={"reviewer": "Last modified by"})
        under.person.add(type="listing", input="Trail tent", brand="Kestrel")
        night.lock()
        night.clock.set(at("2026-11-24T01:00"))
        night.run()
        [row] = under.person.rows()
        under.person.set(row["id"], review="approve")
        [record] = fake.table.records.values()
        record["fields"]["Last modified by"] = {"id": "usrAna", "email": "ana@shop.test", "name": "Ana Lopez"}
        night.harvest()
        with sqlite3.connect(night.config.state_path) as db:
            assert db.execute("SELECT reviewer FROM reviews").fetchall() == [("Ana Lopez",)]
        assert record["fields"]["Last modified by"]["name"] == "Ana Lopez"
        types = {f["name"]: f["type"] for f in fake.table.fields}
        assert "reviewer" not in types and types["Last modified by"] == "lastModifiedBy"
