"""The journal: paid answers kept beside the state when the state cannot take them, stored from there later.

A model call is paid the moment its answer arrives. If the state cannot be written then (another program
holds its lock past the wait, the disk is full, an I/O error), the answer must survive anyway, or the next
run pays for it again. So it is appended to ``<state>.journal``: one JSON object per line, written and
fsync'd before sheetbot moves on, mode 0600 like anything holding customers' text. What a journal entry
holds:

* ``call``: one model call exactly as ``attempts`` and ``audit`` would have stored it;
* ``settled``: how a row ended (review / failed) when that could not be recorded either.

Every ``State`` stores a non-empty journal when it opens, before any phase can make a call, and the night
stores it again at its end if the state can be written again. Each entry carries an id that is recorded in
``journal_replayed`` in the same transaction as the entry itself, so a replay interrupted (or repeated)
never stores anything twice; an answer whose step is already stored is skipped too. The file is emptied
only once every entry in it is stored. Appends and replays hold an exclusive lock on the file (portalocker's:
flock, or LockFileEx on Windows), so a `sheetbot report` opened while a night is still appending cannot
empty it under the night's feet.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypedDict, cast

import portalocker

from sheetbot.errors import StateUnavailableError
from sheetbot.safety.private import chmod_private
from sheetbot.safety.secrets import scrub
from sheetbot.state.faults import Db
from sheetbot.state.history import NIGHT_TASK
from sheetbot.state.records import Attempt, Task, TaskFields
from sheetbot.status import MOVES_INTO, Status


def journal_path(state_path: Path) -> Path:
    return state_path.with_name(state_path.name + ".journal")


@dataclass(frozen=True)
class TaskSettled:
    """How a row ended tonight, as the state records it: its status change and the night's record."""

    task_id: str
    night: str
    workflow: str
    attempt: int
    status: Status
    result: str  # done | failed | deferred (the night_tasks outcome)
    error: str = ""
    failure: str | None = None
    reason: str = ""
    clear_review: bool = False


class CallEntry(TypedDict):
    """A model call the state could not take: its attempt row and its audit detail, as they would be stored."""

    id: str
    kind: Literal["call"]
    at: str
    #: ``asdict(Attempt)``: JSON, rebuilt by ``Attempt(**...)``, whose constructor checks the names.
    attempt: dict[str, Any]
    audit: dict[str, object]


class SettledEntry(TypedDict):
    """A row's outcome the state could not take."""

    id: str
    kind: Literal["settled"]
    at: str
    #: ``asdict(TaskSettled)``: JSON, rebuilt by ``TaskSettled(**...)``, whose constructor checks the names.
    change: dict[str, Any]


#: One line of the journal.
JournalEntry = CallEntry | SettledEntry


def call_entry(attempt: Attempt, audit_detail: Mapping[str, object], *, now: datetime) -> CallEntry:
    return {
        "id": uuid.uuid4().hex,
        "kind": "call",
        "at": now.isoformat(),
        "attempt": asdict(attempt),
        "audit": dict(audit_detail),
    }


def settled_entry(change: TaskSettled, *, now: datetime) -> SettledEntry:
    change = replace(change, error=scrub(change.error), reason=scrub(change.reason))  # the journal is state too
    return {"id": uuid.uuid4().hex, "kind": "settled", "at": now.isoformat(), "change": asdict(change)}


class Journal:
    """The file: append (fsync'd) and read under an exclusive lock; emptied only by a complete replay."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def pending(self) -> bool:
        """Cheap: is there anything to store? (A stat on every open; nothing more when the file is empty.)"""
        try:
            return self.path.is_file() and self.path.stat().st_size > 0
        except OSError:
            return False

    @contextmanager
    def _locked(self, flags: int) -> Iterator[int]:
        existed = self.path.exists()
        # O_BINARY: on Windows a descriptor is in text mode unless told, and would write \r\n.
        fd = os.open(self.path, flags | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o600)
        try:
            # portalocker: flock on Linux and macOS, LockFileEx on Windows (fcntl does not exist there).
            portalocker.lock(fd, portalocker.LOCK_EX)
            if not existed:  # the file's name must survive a power cut too
                chmod_private(fd)
                _fsync_dir(self.path.parent)
            yield fd
        finally:
            with suppress(portalocker.LockException, OSError):
                portalocker.unlock(fd)
            os.close(fd)

    def append(self, entry: JournalEntry) -> None:
        """Write one entry and fsync it; raises OSError when even this cannot be written. A failed append
        leaves the file as it was: a half-written line (a full disk stops a write midway) would otherwise
        swallow the next append, e.g. the same entry written again once space is freed."""
        line = (json.dumps(entry, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        with self._locked(os.O_WRONLY | os.O_APPEND) as fd:
            start = os.fstat(fd).st_size
            try:
                written = 0
                while written < len(line):
                    written += os.write(fd, line[written:])
                os.fsync(fd)
            except OSError:
                with suppress(OSError):
                    os.ftruncate(fd, start)
                raise

    def replay(self, store: Callable[[JournalEntry], None]) -> int:
        """``store`` every entry (it must be idempotent), then empty the file. Returns how many entries."""
        if not self.pending():
            return 0
        with self._locked(os.O_RDWR) as fd:
            data = b""
            while chunk := os.read(fd, 1 << 20):
                data += chunk
            entries = _parse(data)
            for entry in entries:
                store(entry)
            os.ftruncate(fd, 0)
            os.fsync(fd)
        return len(entries)

    def entries(self) -> list[JournalEntry]:
        if not self.pending():
            return []
        return _parse(self.path.read_bytes())


def paid_answers(entries: Iterable[JournalEntry]) -> int:
    """Model calls in these entries that were paid for: an answer (even one that did not validate)."""
    return sum(
        1
        for e in entries
        if "kind" in e and e["kind"] == "call" and (e["attempt"]["ok"] or e["attempt"]["output_tokens"])
    )


def _parse(data: bytes) -> list[JournalEntry]:
    """Every whole entry; a line torn by a kill in the middle of an append is the last one, and skipped.
    An entry is taken as ``append`` wrote it (the file is sheetbot's own, mode 0600)."""
    out: list[JournalEntry] = []
    for line in data.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "id" in entry:
            out.append(cast("JournalEntry", entry))
    return out


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class JournalMixin:
    """The state's side: store one entry idempotently, and replay the journal beside the state file."""

    _db: Db
    path: Path
    transaction: Callable[[], AbstractContextManager[None]]
    record_attempt: Callable[..., None]
    stored_output: Callable[..., Attempt | None]
    audit: Callable[..., None]
    move: Callable[..., None]
    night_task: Callable[..., None]
    task: Callable[[str], Task | None]

    @property
    def journal(self) -> Journal:
        return Journal(journal_path(self.path))

    def replay_journal(self) -> int:
        """Store what the journal keeps (before any new call is made); how many entries it held. If the state
        still cannot take them, the error says how many paid answers wait in the journal."""
        try:
            return self.journal.replay(self.store_entry)
        except StateUnavailableError as exc:
            kept = paid_answers(self.journal.entries())
            raise exc.told(again=exc.again, kept=kept, journal=str(self.journal.path)) from None

    def store_entry(self, entry: JournalEntry) -> None:
        """One journal entry into the state, once: a second replay of the same entry changes nothing."""
        with self.transaction():
            seen = self._db.execute("SELECT 1 FROM journal_replayed WHERE entry = ?", (entry["id"],)).fetchone()
            if seen is not None:
                return
            now = datetime.fromisoformat(entry["at"])
            if entry["kind"] == "call":
                self._store_call(entry, now)
            elif entry["kind"] == "settled":
                self._store_settled(entry, now)
            self._db.execute("INSERT INTO journal_replayed(entry, at) VALUES (?, ?)", (entry["id"], entry["at"]))

    def _store_call(self, entry: CallEntry, now: datetime) -> None:
        attempt = Attempt(**entry["attempt"])
        if attempt.ok and self.stored_output(attempt.task_id, attempt.attempt, attempt.step) is not None:
            return  # stored after all (e.g. the commit went through before the error was reported)
        self.record_attempt(attempt, now=now)
        self.audit("model_call", now=now, task_id=attempt.task_id, detail=entry["audit"])

    def _store_settled(self, entry: SettledEntry, now: datetime) -> None:
        change = TaskSettled(**{**entry["change"], "status": Status(entry["change"]["status"])})
        task = self.task(change.task_id)
        if task is None or task.attempt != change.attempt or task.status not in (Status.RUNNING, Status.LOCKED):
            return  # the row has moved on since (a later run settled it): the newer truth stands
        self.settle_task(change, now=now)

    def settle_tasks(self, changes: Sequence[tuple[TaskSettled, datetime]]) -> None:
        """``settle_task`` for many rows (a preview group's, sheetbot/night/preview_group.py): an executemany
        per status instead of two statements a row. The UPDATE is guarded as ``move``'s is; if it skipped any
        row, every row is settled again alone (idempotent), which raises ``move``'s own error for that row."""
        by_status: dict[Status, list[tuple[TaskSettled, datetime]]] = {}
        for change, now in changes:
            by_status.setdefault(change.status, []).append((change, now))
        with self.transaction():
            for status, group in by_status.items():
                sources = MOVES_INTO[status]
                marks = ", ".join("?" * len(sources))
                rows = [
                    (str(status), at.isoformat(), c.failure, scrub(c.error), int(c.clear_review), c.task_id, *sources)
                    for c, at in group
                ]
                changed = self._db.executemany(
                    "UPDATE tasks SET status = ?, updated_at = ?, failure = ?, error = ?, dirty = 1, clear_review = "
                    f"CASE WHEN ? = 1 THEN 1 ELSE clear_review END WHERE task_id = ? AND status IN ({marks})",
                    rows,
                ).rowcount
                if changed != len(group):
                    for change, now in group:
                        self.settle_task(change, now=now)
                    continue
                self._db.executemany(
                    NIGHT_TASK,
                    [(c.night, c.task_id, c.workflow, c.attempt, c.result, scrub(c.reason)) for c, _ in group],
                )

    def settle_task(self, change: TaskSettled, *, now: datetime) -> None:
        """A row's outcome tonight: its status (and error) and the night's record of it, in one commit."""
        extra: TaskFields = {"clear_review": 1} if change.clear_review else {}
        with self.transaction():
            self.move(change.task_id, change.status, now=now, error=change.error, failure=change.failure, **extra)
            self.night_task(
                change.night,
                change.task_id,
                workflow=change.workflow,
                attempt=change.attempt,
                outcome=change.result,
                reason=change.reason,
            )
