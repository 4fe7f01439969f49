"""Opening the state on either engine: a SQLite file (WAL, the schema, its forward migrations) or a board's
schema in PostgreSQL (sheetbot.state.pg_schema), and the schema version both keep in ``meta``.

Separate from the store so that ``State`` reads as what it offers, not how each engine is brought up.
"""

from __future__ import annotations

import sqlite3
from contextlib import suppress
from pathlib import Path

from sheetbot.config.state_target import PostgresTarget
from sheetbot.errors import StateError
from sheetbot.safety.private import create_private
from sheetbot.state.faults import Db, GuardedConnection, state_fault
from sheetbot.state.pg_schema import create_or_migrate
from sheetbot.state.postgres import Connection as PgConnection
from sheetbot.state.schema import SCHEMA, SCHEMA_VERSION, migrate, migrate_night_tasks_by_attempt


def open_sqlite(path: Path, busy_timeout_s: float) -> Db:
    """The SQLite file at ``path``, made private, in WAL mode, its schema created and brought forward."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with suppress(OSError):  # cannot be made here: SQLite's own open says why, as a StateError
            create_private(path)  # before SQLite makes it 0644; its -wal and -shm take this file's mode
        db = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout_s, factory=GuardedConnection)
    except sqlite3.Error as exc:
        raise state_fault(exc, path) from None
    try:
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.executescript(SCHEMA)
        migrate(db)
        check_version(db, path)  # before rebuilding a table: a newer sheetbot's file is left as it is
        migrate_night_tasks_by_attempt(db)
    except BaseException:
        db.close()
        raise
    return db


def open_postgres(target: PostgresTarget, busy_timeout_s: float) -> Db:
    """The board's schema in PostgreSQL (sheetbot.state.postgres): created or brought forward on open."""
    with suppress(OSError):  # the journal, claims and reserve files live beside this name
        target.path.parent.mkdir(parents=True, exist_ok=True)
    db = PgConnection(target, busy_timeout_s=busy_timeout_s)
    try:
        create_or_migrate(db)
    except BaseException:
        db.close()
        raise
    return db


def check_version(db: Db, where: Path | PostgresTarget) -> None:
    """Record the schema version of a new state; refuse one a newer sheetbot wrote, or one not ours."""
    row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row is None:
        db.execute(  # two processes opening a new state at once: the first one's record stands
            "INSERT INTO meta(key, value) VALUES('schema_version', ?) ON CONFLICT(key) DO NOTHING",
            (str(SCHEMA_VERSION),),
        )
        return
    try:
        version = int(row["value"])
    except (TypeError, ValueError):  # a hand edit or another program's file: say so instead of a traceback
        raise StateError(
            f"the state file {where} has schema version {row['value']!r}, which is not a number: "
            "put back a backup of the state file, or move it away to start a new one"
        ) from None
    if version > SCHEMA_VERSION:
        raise StateError(f"the state {where} was written by a newer sheetbot (schema {row['value']}); upgrade sheetbot")
