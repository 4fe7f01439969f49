"""Both state backends for one contract (issue 15): a fixture that yields a SQLite file or a fresh PostgreSQL schema.

The PostgreSQL side runs against a real server named by ``SHEETBOT_TEST_POSTGRES`` (a URL; `.ci/run` starts the
machine's PostgreSQL and sets it). Without it, or with the server unreachable, those tests SKIP and say how to run
them, so the suite passes on a fresh machine. Each test gets its own schema, dropped after it.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from sheetbot.config.state_target import PostgresTarget

ENV = "SHEETBOT_TEST_POSTGRES"
HOW = (
    f"PostgreSQL state tests skipped: {{why}}. To run them: `pg_ctlcluster --skip-systemctl-redirect 15 main start`"
    ' (as root), `su postgres -c "psql -c \\"CREATE ROLE sheetbot LOGIN PASSWORD \'sheetbot\'\\""`, '
    "`su postgres -c 'createdb -O sheetbot sheetbot_test'`, then "
    f"`export {ENV}=postgresql://sheetbot:sheetbot@127.0.0.1:5432/sheetbot_test` (or run .ci/run)"
)

Target = Path | PostgresTarget


@cache
def postgres_url() -> tuple[str | None, str]:
    """The test server's URL, or None and why not (checked once per test run)."""
    url = os.environ.get(ENV, "")
    if not url:
        return None, f"{ENV} is not set"
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return None, f"the server at {ENV} cannot be reached ({str(exc).strip().splitlines()[0]})"
    return url, ""


def without_password(url: str) -> tuple[str, str | None]:
    """(the URL a YAML names, the password): the YAML carries no password, libpq reads PGPASSWORD."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    bare = urlunsplit((parts.scheme, f"{user}{parts.netloc.rpartition('@')[2]}", parts.path, parts.query, ""))
    return bare, parts.password


def fresh_schema(tmp_path: Path) -> Iterator[PostgresTarget]:
    """A PostgreSQL target with a schema of its own, dropped afterwards; skips without a server."""
    url, why = postgres_url()
    if url is None:
        pytest.skip(HOW.format(why=why))
    schema = f"test_{uuid.uuid4().hex[:16]}"
    try:
        yield PostgresTarget(url=url, schema=schema, path=tmp_path / "state.db")
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE".encode())


@pytest.fixture(params=["sqlite", "postgres"])
def state_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """Where a State opens: a SQLite file, then a fresh PostgreSQL schema (every test that takes it runs twice)."""
    if request.param == "sqlite":
        yield tmp_path / "state.db"
    else:
        yield from fresh_schema(tmp_path)


def read_back(target: Target, sql: str) -> list[tuple[object, ...]]:
    """What a second connection, as another process, reads from the state (either engine); a statement
    without rows (an UPDATE, DDL) is committed and reads as []."""
    if isinstance(target, PostgresTarget):
        with psycopg.connect(target.url, autocommit=True) as conn:
            conn.execute(f"SET search_path TO {target.schema}".encode())
            cursor = conn.execute(sql.encode())
            return [tuple(r) for r in cursor.fetchall()] if cursor.description else []
    db = sqlite3.connect(target, isolation_level=None)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()
