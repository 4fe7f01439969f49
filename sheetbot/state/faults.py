"""The state's connection edge: every SQLite fault becomes a StateError the admin can act on.

SQLite reports a held lock, a full disk, an I/O error or a read-only file as ``sqlite3.OperationalError``;
left alone it reaches the user as "unexpected error: OperationalError: database is locked". The
connection below is a ``sqlite3.Connection`` (so the store's SQL and its type hints stay as they are)
whose statements, and the cursors they return, translate those faults where they happen. An
IntegrityError (e.g. the append-only audit log refusing an UPDATE) is not a fault of the machine and
passes through unchanged.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from sheetbot.errors import StateError, StateUnavailableError


class Rows(Protocol):
    """What a statement returns: its rows (readable by name and index) and how many rows it changed."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Db(Protocol):
    """What the store uses of a connection: ``sqlite3.Connection`` (GuardedConnection below), or the PostgreSQL
    adapter (sheetbot.state.postgres.Connection), which speaks the same subset with the same SQL text."""

    @property
    def in_transaction(self) -> bool: ...

    def execute(self, sql: str, parameters: Any = (), /) -> Rows: ...

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Rows: ...

    def executescript(self, sql_script: str, /) -> Any: ...

    def close(self) -> None: ...


#: SQLite's primary result codes (https://sqlite.org/rescode.html) that mean "the machine, not sheetbot".
_BUSY, _LOCKED, _PERM, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 5, 6, 3, 8, 10, 11, 13, 14, 26


def state_fault(exc: sqlite3.Error, path: Path, *, wait_s: float | None = None) -> StateError:
    """The admin's sentence for a SQLite error on the state file at ``path``."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    if code in (_BUSY, _LOCKED):
        return locked(path, wait_s)
    if code == _FULL:
        return disk_full(path)
    if code == _IOERR:
        return StateUnavailableError(
            "io", f"the state file {path} could not be written ({exc})", "check the disk and its free space"
        )
    if code in (_READONLY, _PERM):
        return StateUnavailableError(
            "readonly",
            f"the state file {path} is read-only ({exc})",
            "make the file, its folder and its -wal/-shm files writable for this user",
        )
    if code == _CANTOPEN:
        return StateUnavailableError(
            "unusable", f"the state file {path} cannot be opened ({exc})", "check the path and its folder's permissions"
        )
    if code in (_CORRUPT, _NOTADB):
        return StateError(
            f"the state file {path} is damaged or not a sheetbot state file ({exc}): restore it from a backup"
        )
    return StateError(f"cannot use the state file {path}: {exc}")


def disk_full(path: Path) -> StateUnavailableError:
    """SQLite's "database or disk is full", or a write beside the state refused for want of space."""
    return StateUnavailableError("full", f"the disk holding {path} is full", "free space")


def locked(path: Path, wait_s: float | None) -> StateUnavailableError:
    waited = f" for more than {wait_s:g} s" if wait_s else ""
    return StateUnavailableError(
        "locked",
        f"the state file {path} is locked by another program (a backup tool, a database browser, or "
        f"sheetbot on another machine){waited}",
        "let it finish or close it",
    )


def _translate(exc: sqlite3.Error, conn: GuardedConnection) -> StateError | None:
    if isinstance(exc, (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)):
        return None  # sheetbot's own mistake or a rule of the schema: not the machine's fault
    if not isinstance(exc, (sqlite3.OperationalError, sqlite3.DatabaseError)):
        return None
    return state_fault(exc, conn.path, wait_s=conn.busy_timeout_s)


class GuardedCursor(sqlite3.Cursor):
    """A cursor whose row fetching translates faults too (a long SELECT reads pages as it goes)."""

    connection: GuardedConnection

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.Error as exc:
            fault = _translate(exc, self.connection)
            if fault is None:
                raise
            raise fault from None

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.Error as exc:
            fault = _translate(exc, self.connection)
            if fault is None:
                raise
            raise fault from None

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except sqlite3.Error as exc:
            fault = _translate(exc, self.connection)
            if fault is None:
                raise
            raise fault from None


class GuardedConnection(sqlite3.Connection):
    """``sqlite3.connect(path, factory=GuardedConnection)``: statements raise StateError for machine faults."""

    def __init__(self, database: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self.path = Path(database)
        #: What SQLite's busy handler waits for a lock, for the message ("for more than 30 s").
        self.busy_timeout_s: float | None = kwargs.get("timeout")

    def set_busy_timeout(self, seconds: float) -> None:
        self.busy_timeout_s = seconds
        self.execute(f"PRAGMA busy_timeout = {max(int(seconds * 1000), 0)}")

    def cursor(self, factory: Any = None) -> Any:
        return super().cursor(factory or GuardedCursor)

    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        try:
            return self.cursor().execute(sql, parameters)
        except sqlite3.Error as exc:
            fault = _translate(exc, self)
            if fault is None:
                raise
            raise fault from None

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Any:
        try:
            return self.cursor().executemany(sql, parameters)
        except sqlite3.Error as exc:
            fault = _translate(exc, self)
            if fault is None:
                raise
            raise fault from None

    def executescript(self, sql_script: str, /) -> Any:
        try:
            return self.cursor().executescript(sql_script)
        except sqlite3.Error as exc:
            fault = _translate(exc, self)
            if fault is None:
                raise
            raise fault from None
