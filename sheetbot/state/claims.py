"""Ids handed out by a phase whose commit may not have happened: a kill between the board's save and the state's.

A phase that gives new rows their ids writes them to the board inside its state transaction, so a failed
write leaves no task behind for an id that never reached the board. The other side of that order: a
``kill -9`` after the board was saved but before the state committed leaves rows on the board with ids the
state does not know, shown ``locked`` by the lock that never committed. Without a word they would look like
rows of an emptied or replaced state file, and every phase would stop until an admin decided.

So the ids are written to ``<state>.claims`` (fsync'd, mode 0600, replaced atomically) just before the board
write, and deleted as soon as the transaction commits. Only a phase that died in between leaves it behind; the
next phase treats an unknown row whose id is in it as what it is, a new row of ours (it is queued again and
locked at the next cutoff; it never ran, because nothing runs before the lock commits), and deletes the file
once every id in it is known to the state. Rows of a genuinely foreign state are never in it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Collection, Iterable
from pathlib import Path

#: A claims file larger than this is not ours (a phase claims at most a sheet's rows, ~10 bytes an id).
MAX_CLAIMS_BYTES = 16 * 1024 * 1024


def claims_path(state_path: Path) -> Path:
    return state_path.with_name(state_path.name + ".claims")


class ClaimsMixin:
    """Pending id claims beside the state file (see the module docstring)."""

    path: Path
    _claims_noted: bool = False

    def note_claims(self, task_ids: Iterable[str]) -> None:
        """Record ids about to reach the board, before the board write that carries them."""
        ids = sorted(set(task_ids))
        if not ids:
            return
        target = claims_path(self.path)
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:  # mkstemp: mode 0600
                json.dump({"ids": sorted(set(ids) | self.pending_claims())}, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, target)
            self._claims_noted = True
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def pending_claims(self) -> set[str]:
        """Ids a phase gave out that the state may not know (its commit may not have happened)."""
        target = claims_path(self.path)
        try:
            if target.stat().st_size > MAX_CLAIMS_BYTES:
                return set()
            data = json.loads(target.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return set()
        ids = data.get("ids") if isinstance(data, dict) else None
        return {i for i in ids if isinstance(i, str)} if isinstance(ids, list) else set()

    def settle_claims(self, known: Collection[str]) -> None:
        """Delete the claims file once every id in it is known to the state (its phase committed)."""
        pending = self.pending_claims()
        if pending and pending <= set(known):
            claims_path(self.path).unlink(missing_ok=True)

    def claims_committed(self) -> None:
        """The transaction that noted claims committed: the file has done its job (a rollback keeps it)."""
        if self._claims_noted:
            claims_path(self.path).unlink(missing_ok=True)
            self._claims_noted = False
