"""Chained workflows' intents (sheetbot/morning/chains.py): a new row to add for an approved one, once.

A mixin of ``State``. :meth:`add_chain_intent` runs inside the harvest's transaction, with the decision;
:meth:`chain_intents_done` commits on its own, after the row is on the board.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

from sheetbot.state.faults import Db


@dataclass(frozen=True)
class ChainIntent:
    """A row to add to the board for the approved task ``parent``."""

    parent: str
    entry: int
    child_id: str
    workflow: str
    input: str
    priority: str | None


class ChainsMixin:
    """The chain intents: pending until the child row is on the board, then done."""

    _db: Db
    transaction: Callable[[], AbstractContextManager[None]]

    def add_chain_intent(self, intent: ChainIntent, *, attempt: int, now: datetime) -> bool:
        """Record the intent (in the caller's transaction); False if it was recorded before (never twice)."""
        cursor = self._db.execute(
            "INSERT INTO chain_intents(task_id, entry, attempt, child_id, workflow, input, priority, state, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT DO NOTHING",
            (
                intent.parent,
                intent.entry,
                attempt,
                intent.child_id,
                intent.workflow,
                intent.input,
                intent.priority,
                now.isoformat(),
                now.isoformat(),
            ),
        )
        return cursor.rowcount == 1

    def chain_intents_pending(self) -> list[ChainIntent]:
        """Intents whose row is not known to be on the board yet, oldest first."""
        rows = self._db.execute(
            "SELECT * FROM chain_intents WHERE state = 'pending' ORDER BY created_at, task_id, entry"
        ).fetchall()
        return [
            ChainIntent(r["task_id"], r["entry"], r["child_id"], r["workflow"], r["input"], r["priority"]) for r in rows
        ]

    def chain_child_ids(self) -> set[str]:
        """Every child id ever intended: an id a parent gave out is never given to another row."""
        return {str(r[0]) for r in self._db.execute("SELECT child_id FROM chain_intents")}

    def chain_intents_done(self, child_ids: Iterable[str], *, now: datetime) -> None:
        """The rows are on the board: never append them again. Commits on its own."""
        with self.transaction():
            self._db.executemany(
                "UPDATE chain_intents SET state = 'done', updated_at = ? WHERE child_id = ?",
                [(now.isoformat(), child_id) for child_id in child_ids],
            )
