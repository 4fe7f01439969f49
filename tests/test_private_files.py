"""Private files and honest exports (issue 11 items 7-9, and a state file with a garbled schema version).

Real files on a real disk under the usual umask 022: every file sheetbot creates that holds prompts,
outputs or customer data is 0600; a CSV export never hands a spreadsheet a live formula; a deleted lock
file never lets a second sheetbot work the board.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sheetbot.errors import StateError
from sheetbot.state import State


def test_a_schema_version_that_is_not_a_number_is_one_line_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "sheetbot.db"
    State(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = 'seven' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(StateError) as caught:
        State(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "'seven'" in message
    assert "backup" in message
