"""Where the state lives: a SQLite file (the default) or a schema of a PostgreSQL database (issue 15).

``state: postgresql://user@host:port/db`` in the YAML, or, while the YAML's ``state:`` is left at its default,
``DATABASE_URL`` in the environment (what Heroku-style platforms set), keeps the state in PostgreSQL. The
password never comes from the YAML: libpq reads ``PGPASSWORD`` (or ``~/.pgpass``) itself, and ``DATABASE_URL``
is the environment's own secret. Each board's state is a PostgreSQL schema of its own, so many boards share one
database without seeing each other's rows: ``state_schema:`` names it, else it is derived from the board's
identity (its workbook, spreadsheet or base), stable across restarts and machines.

The journal, the claims file and the disk reserve stay files on the machine (they are what the state could not
take at the moment it failed): with PostgreSQL they live beside the config, named for the schema.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

#: The URL schemes libpq accepts.
SCHEMES = ("postgresql://", "postgres://")
#: A schema name sheetbot creates: lower-case, so it needs no quoting anywhere, within PostgreSQL's 63 bytes.
SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class PostgresTarget:
    """A board's state in PostgreSQL: the server, the board's schema, and the local folder for its files."""

    url: str
    schema: str
    #: Beside which the journal, claims and reserve files live (``<path>.journal`` …), as beside a SQLite file.
    path: Path

    def __str__(self) -> str:
        return f"{shown_url(self.url)} (schema {self.schema})"


def is_postgres(value: str) -> bool:
    return value.startswith(SCHEMES)


def password_in_url(value: str) -> bool:
    """True when a postgresql:// URL carries a password (``user:secret@``, or ``?password=``)."""
    if not is_postgres(value):
        return False
    parts = urlsplit(value)
    return parts.password is not None or "password=" in parts.query


def shown_url(url: str) -> str:
    """The URL as it may be logged or printed: any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None and "password=" not in parts.query:
        return url
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:***@{host}"
    query = re.sub(r"password=[^&]*", "password=***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def board_schema(identity: str) -> str:
    """A schema name for a board: a readable slug of its identity and a hash of all of it (two boards whose
    slugs collide still get two schemas)."""
    slug = re.sub(r"[^a-z0-9]+", "_", Path(identity).stem.lower() if "/" in identity else identity.lower())
    digest = hashlib.sha256(identity.encode()).hexdigest()[:10]
    return f"sheetbot_{slug.strip('_')[:30]}_{digest}".replace("__", "_")


def postgres_url(state: str, default: str, environ: dict[str, str] | None = None) -> str | None:
    """The PostgreSQL URL the state uses, or None for a SQLite file: the YAML's ``state:`` when it is one,
    else ``DATABASE_URL`` while ``state:`` is left at its default."""
    if is_postgres(state):
        return state
    env = os.environ if environ is None else environ
    database_url = env.get("DATABASE_URL", "")
    if state == default and is_postgres(database_url):
        return database_url
    return None
