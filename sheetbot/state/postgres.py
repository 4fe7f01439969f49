"""The state in PostgreSQL (issue 15): a psycopg 3 connection that speaks the part of ``sqlite3.Connection``
the store and its mixins use, so both engines run the same SQL text.

What it translates, and why:

- Placeholders. The store's SQL uses SQLite's ``?`` (qmark); psycopg has no qmark paramstyle (only ``%s`` and
  ``%(name)s``), so each statement's ``?`` outside string literals becomes ``%s`` and a literal ``%`` becomes
  ``%%`` (cached per statement text).
- ``BEGIN IMMEDIATE``. SQLite takes the write lock at BEGIN, so two writers serialise instead of one failing
  late. Here it is ``BEGIN`` and a transaction-level advisory lock keyed on the board's schema: every writer of a
  board waits for the one before it, whichever process it is in, and the lock goes with COMMIT or ROLLBACK.
  ``set_busy_timeout`` is ``lock_timeout``: a writer waits that long, then fails as SQLite's busy handler does.
- Values. A Python bool is stored as 0/1 (the schema's flags are integers on both engines); NUMERIC results
  (``SUM`` of a bigint) come back as float, as SQLite's REAL would.
- Rows read by name and by index (``row["task_id"]``, ``row[0]``), as ``sqlite3.Row``.
- Faults. Connection loss, a lock waited out, a full disk or a refused permission become the same
  ``StateError`` types sheetbot.state.faults gives for SQLite; an integrity error (the append-only audit, a
  unique constraint) passes through unchanged, as it does there (``INTEGRITY_ERRORS`` names both kinds).

Each board's tables live in its own schema (``search_path`` set on connect), so boards share a database.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import suppress
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus
from psycopg.types.numeric import FloatLoader

from sheetbot.config.state_target import SCHEMA_NAME, PostgresTarget, shown_url
from sheetbot.errors import StateError, StateUnavailableError
from sheetbot.safety import secrets
from sheetbot.state import fence

#: What a broken rule of the schema raises on either engine (the audit's trigger, a unique key).
INTEGRITY_ERRORS: tuple[type[Exception], ...] = (sqlite3.IntegrityError, psycopg.IntegrityError)
#: Any error of either engine's driver (what a rollback after a failure may raise and may be ignored).
DB_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, psycopg.Error)


def lock_key(schema: str, purpose: str = "writer") -> int:
    """A signed 64-bit advisory lock key for ``purpose`` on the board in ``schema`` (other purposes, e.g. a
    leader's lock, get other keys, so they never block the writers)."""
    digest = hashlib.sha256(f"sheetbot:{purpose}:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@lru_cache(maxsize=1024)
def to_pyformat(sql: str) -> str:
    """``?`` → ``%s`` and ``%`` → ``%%`` outside single-quoted literals and double-quoted names."""
    out: list[str] = []
    quote = ""
    for ch in sql:
        if quote:
            out.append("%%" if ch == "%" else ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


def _value(v: object) -> object:
    return int(v) if isinstance(v, bool) else v


def _params(parameters: Any) -> Sequence[object]:
    return [_value(v) for v in parameters]


class Row(tuple[Any, ...]):
    """A result row readable by column name and by index, like ``sqlite3.Row``."""

    _index: dict[str, int]

    def __new__(cls, values: Sequence[Any], index: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._index = index
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    index = {col.name: i for i, col in enumerate(cursor.description or ())}
    return lambda values: Row(values, index)


def pg_fault(exc: psycopg.Error, target: PostgresTarget, *, wait_s: float | None = None) -> StateError | None:
    """The admin's sentence for a PostgreSQL error, or None for sheetbot's own mistake or a rule of the schema."""
    where = str(target)
    rule = isinstance(exc, (psycopg.IntegrityError, psycopg.ProgrammingError, psycopg.DataError))
    if rule and not isinstance(exc, pg_errors.InsufficientPrivilege):
        return None
    if isinstance(exc, (pg_errors.LockNotAvailable, pg_errors.QueryCanceled, pg_errors.DeadlockDetected)):
        waited = f" for more than {wait_s:g} s" if wait_s else ""
        return StateUnavailableError(
            "locked", f"the state in {where} is locked by another writer{waited}", "let it finish, or try again"
        )
    if isinstance(exc, pg_errors.DiskFull):
        return StateUnavailableError("full", f"the disk of the database server holding {where} is full", "free space")
    if isinstance(exc, (pg_errors.InsufficientPrivilege, pg_errors.ReadOnlySqlTransaction)):
        return StateUnavailableError(
            "readonly",
            f"the state in {where} cannot be written ({_first_line(exc)})",
            "grant the role rights on the database (CREATE) and its schema, or point at the primary server",
        )
    if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
        return StateUnavailableError(
            "unusable",
            f"the state database {where} cannot be reached ({_first_line(exc)})",
            "check the server is running, the URL, and PGPASSWORD",
        )
    return StateError(f"cannot use the state in {where}: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


class Cursor:
    """The rows of one statement; fetching them maps faults too."""

    def __init__(self, cursor: psycopg.Cursor[Row], owner: Connection) -> None:
        self._cursor = cursor
        self._owner = owner

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def fetchone(self) -> Row | None:
        return self._owner.guarded(self._cursor.fetchone) if self._cursor.description else None

    def fetchall(self) -> list[Row]:
        return self._owner.guarded(self._cursor.fetchall) if self._cursor.description else []

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())


class Connection:
    """The subset of ``sqlite3.Connection`` the store uses, over one psycopg connection in autocommit mode
    (transactions are the store's explicit ``BEGIN IMMEDIATE`` … ``COMMIT``, as with SQLite)."""

    def __init__(self, target: PostgresTarget, *, busy_timeout_s: float) -> None:
        if not SCHEMA_NAME.match(target.schema):
            raise StateError(
                f"state_schema {target.schema!r} is not a schema name sheetbot uses: lower-case letters, digits and _"
            )
        self.target = target
        self.path = target.path
        secrets.learn([urlsplit(target.url).password])  # DATABASE_URL's password: masked in every exit
        self.busy_timeout_s: float | None = busy_timeout_s
        self._writer_key = lock_key(target.schema)
        try:
            self._conn: psycopg.Connection[Row] = psycopg.connect(
                target.url,
                autocommit=True,
                row_factory=_row_factory,
                connect_timeout=max(int(busy_timeout_s), 2),
                application_name="sheetbot",
            )
        except psycopg.Error as exc:
            raise StateUnavailableError(
                "unusable",
                f"cannot connect to the state database {shown_url(target.url)} ({_first_line(exc)})",
                "check the server is running, the URL, and PGPASSWORD (never in the YAML)",
            ) from None
        self._conn.adapters.register_loader("numeric", FloatLoader)
        # the board's tables, and only them (a name checked by the config: lower-case letters, digits, _)
        self.guarded(lambda: self._conn.execute(f"SET search_path TO {target.schema}".encode()))
        self.set_busy_timeout(busy_timeout_s)

    def guarded(self, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except psycopg.Error as exc:
            fault = pg_fault(exc, self.target, wait_s=self.busy_timeout_s)
            if fault is None:
                raise
            raise fault from None

    def set_busy_timeout(self, seconds: float) -> None:
        self.busy_timeout_s = seconds
        self.guarded(lambda: self._conn.execute(f"SET lock_timeout = {max(int(seconds * 1000), 1)}"))

    @property
    def in_transaction(self) -> bool:
        return self._conn.info.transaction_status != TransactionStatus.IDLE

    def execute(self, sql: str, parameters: Any = (), /) -> Cursor:
        if sql.strip().upper() == "BEGIN IMMEDIATE":
            self.guarded(lambda: self._conn.execute("BEGIN"))
            try:
                self.guarded(lambda: self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._writer_key,)))
                self._fence()
            except BaseException:  # as SQLite's BEGIN IMMEDIATE that gave up waiting: no transaction left open
                with suppress(psycopg.Error):
                    self._conn.execute("ROLLBACK")
                raise
            return Cursor(self._conn.cursor(), self)
        cursor = self._conn.cursor()
        self.guarded(lambda: cursor.execute(to_pyformat(sql), _params(parameters)))
        return Cursor(cursor, self)

    def _fence(self) -> None:
        """With a standby, a write commits only while our leader session holds the lock (sheetbot.state.fence)."""
        leader = fence.leader_of(self.target.schema)
        if leader is not None:
            key, pid = leader
            row = self.guarded(lambda: self._conn.execute(fence.CHECK, (pid, *fence.lock_parts(key))).fetchone())
            fence.still_leading(self.target.schema, row is not None)

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Cursor:
        cursor = self._conn.cursor()
        rows = [_params(p) for p in parameters]
        if rows:
            self.guarded(lambda: cursor.executemany(to_pyformat(sql), rows))
        return Cursor(cursor, self)

    def executescript(self, script: str, /) -> None:
        """Several statements at once (DDL): sent without parameters, so psycopg passes them as written."""
        self.guarded(lambda: self._conn.execute(script.encode()))

    def close(self) -> None:
        self._conn.close()
