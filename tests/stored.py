"""What the state file holds, read with sqlite3 itself: the edge at which a test checks what was stored.

sheetbot's code asks ``State`` named questions and never runs SQL on it from outside sheetbot/state/; a test
that wants the rows behind those answers reads the SQLite file directly, as an admin with the sqlite3 shell
would. Opening it this way replays no journal and migrates nothing: it sees exactly what is on disk.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import closing

from harness import Phases


def rows_in_state(shop: Phases, sql: str, args: Sequence[object] = ()) -> list[sqlite3.Row]:
    """The rows ``sql`` selects from ``shop``'s state file."""
    with closing(sqlite3.connect(shop.config.state_path)) as db:
        db.row_factory = sqlite3.Row
        return db.execute(sql, list(args)).fetchall()
