"""The schema in one place: every table the store uses, created idempotently on open.

``SCHEMA_VERSION`` guards against an older sheetbot opening a file a newer one wrote. New tables are a
``CREATE ... IF NOT EXISTS`` here; a column added to an existing table goes in ``ADDED_COLUMNS``, which
``migrate`` applies on open to a file that lacks it (forward only, idempotent); a change to an existing
table's key is a forward migration below, in its own block, that an existing state file gets on open.

PostgreSQL (issue 15) reads the same text: sheetbot/state/pg_schema.py turns it into PostgreSQL's dialect and
applies ``ADDED_COLUMNS`` there too, so a table or column added here reaches both engines.
"""

from __future__ import annotations

import sqlite3

from sheetbot.errors import StateError

SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,                 -- order first seen: "oldest first" among equals
    first_seen TEXT NOT NULL,
    status TEXT NOT NULL,
    failure TEXT,                         -- 'invalid' (re-checked every lock) | 'call' (needs a person)
    workflow TEXT,
    priority TEXT,
    attempt INTEGER NOT NULL DEFAULT 1,
    night TEXT,
    snapshot TEXT,                        -- JSON: the row as locked
    rework_notes TEXT,
    previous_output TEXT,
    error TEXT NOT NULL DEFAULT '',
    dirty INTEGER NOT NULL DEFAULT 0,     -- the board's cells are behind the state
    clear_review INTEGER NOT NULL DEFAULT 0,
    resend_output INTEGER NOT NULL DEFAULT 0, -- the board's output cells must be (re)written
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks(status);
CREATE INDEX IF NOT EXISTS tasks_seq ON tasks(seq);
CREATE INDEX IF NOT EXISTS tasks_dirty ON tasks(dirty) WHERE dirty = 1;
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY,
    task_id TEXT NOT NULL,
    night TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    step TEXT NOT NULL,
    final INTEGER NOT NULL DEFAULT 1,     -- the task's output (the last step); 0 for a checkpoint
    workflow TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    mode TEXT NOT NULL,
    system TEXT NOT NULL,
    prompt TEXT NOT NULL,
    ok INTEGER NOT NULL,
    output TEXT,
    error TEXT,
    truncated INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    estimated_usd REAL,
    latency_s REAL NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_task ON attempts(task_id, attempt, step);
CREATE UNIQUE INDEX IF NOT EXISTS attempts_one_output ON attempts(task_id, attempt, step) WHERE ok = 1;
CREATE TABLE IF NOT EXISTS reviews (
    id INTEGER PRIMARY KEY,
    task_id TEXT NOT NULL,
    night TEXT,
    attempt INTEGER NOT NULL,
    workflow TEXT,
    decision TEXT NOT NULL,
    notes TEXT NOT NULL DEFAULT '',
    edited_output TEXT,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS night_tasks (     -- what each night did with each task: the metrics' source
    night TEXT NOT NULL,
    task_id TEXT NOT NULL,
    workflow TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    outcome TEXT NOT NULL,                -- locked | done | failed | deferred | over_cap
    reason TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (night, task_id, attempt)  -- a rework re-run in the same night is a second record
);
CREATE TABLE IF NOT EXISTS nights (
    night TEXT PRIMARY KEY,
    locked_at TEXT,
    run_started_at TEXT,
    run_finished_at TEXT,
    drained INTEGER,
    note TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS batches (         -- Batch API jobs: stored the moment the provider returns an id
    batch_id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    night TEXT NOT NULL,
    step TEXT NOT NULL,                   -- the round: the step its requests are for ("+" joins several)
    status TEXT NOT NULL,                 -- open | ended | collected | cancelled | foreign
    custom_ids TEXT NOT NULL,             -- JSON list: these requests are paid for; never send them again
    requests TEXT NOT NULL DEFAULT '{}',  -- JSON: custom_id -> what the attempt row needs (system, prompt, ...)
    submitted_at TEXT NOT NULL,
    finished_at TEXT,
    counts TEXT NOT NULL DEFAULT '{}'
    -- found_by: see ADDED_COLUMNS
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    event TEXT NOT NULL,
    task_id TEXT,
    detail TEXT NOT NULL DEFAULT '{}'
);
-- governance: the audit log is append-only, enforced by the database itself
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE IF NOT EXISTS alerts_sent (  -- one row per alert delivered: never the same alert twice
    kind TEXT NOT NULL,
    key TEXT NOT NULL,                    -- what it is about: workflow and night, or a task id
    at TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE TABLE IF NOT EXISTS paused (       -- workflows whose rows the lock skips until resumed
    workflow TEXT PRIMARY KEY,
    since TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS queue_samples (  -- queue depth over time, for "over N for M minutes"
    at_s REAL NOT NULL,                   -- unix seconds: comparable whatever the clock's timezone
    depth INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS actions (         -- approval-gated actions (morning/on_approve.py): one per approval
    task_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    workflow TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'webhook',
    state TEXT NOT NULL,                  -- pending | sending | delivered
    tries INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (task_id, attempt)
);
-- batch mode (issue 10): every batch create, recorded BEFORE it is sent, so that a create whose answer
-- was lost (a kill, a timeout, a 502) is found again instead of sent twice (sheetbot/batch/send.py)
CREATE TABLE IF NOT EXISTS batch_sends (
    key TEXT PRIMARY KEY,                 -- ours: OpenAI metadata.sheetbot_key; every wire custom_id starts with it
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    night TEXT NOT NULL,
    step TEXT NOT NULL,
    requests TEXT NOT NULL,               -- JSON: custom_id -> what the attempt row needs, and its wire id
    file_id TEXT NOT NULL DEFAULT '',     -- OpenAI: the input file, once its upload returned
    recorded_at TEXT NOT NULL,
    sent_at TEXT,                         -- the create went out; NULL: it never did, so no batch exists
    status TEXT NOT NULL                  -- sending | created | found | absent | refused
);
CREATE INDEX IF NOT EXISTS batch_sends_open ON batch_sends(status) WHERE status = 'sending';
"""

# -- the journal (issue 10, state faults) --------------------------------------------------------------------
# Paid answers that could not be stored when they arrived (the state was locked or the disk full) are kept
# in a journal file beside the state (sheetbot/state/journal.py) and stored from there later; each entry's id
# is recorded here in the same transaction, so replaying a journal twice stores it once. A new table only:
# an existing state file gets it on open, and an older sheetbot ignores it.
SCHEMA += """
CREATE TABLE IF NOT EXISTS journal_replayed (
    entry TEXT PRIMARY KEY,               -- the journal entry's id
    at TEXT NOT NULL
);
"""

# -- self-check (issue 13, item 4) ----------------------------------------------------------------------------
# The verdict of a cheap model grading an output against the workflow's checklist: one per output (task,
# attempt), recorded before the board is written, so a restart never pays for the same grading twice and a
# rework (a new attempt) is graded again. ``passed`` is 1 (every item passed), 0 (one failed) or NULL (the
# grading failed or was skipped). The grading call itself is an `attempts` row (step `self-check`, final 0), so
# its cost is in the row's cost and the night's spend. A new table only: an older sheetbot ignores it.
SCHEMA += """
CREATE TABLE IF NOT EXISTS self_checks (
    task_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    verdict TEXT NOT NULL,                -- the `checks` cell, as written
    passed INTEGER,
    at TEXT NOT NULL,
    PRIMARY KEY (task_id, attempt)
);
"""

# -- chained workflows (issue 14, item 2) ---------------------------------------------------------------------
# The intent to add a chained row, recorded in the same transaction as the decision that asks for it, so a
# crash between the decision and the board's append neither loses the row nor adds it twice: the child's id is
# fixed here, a retried append first looks for it on the board (sheetbot/morning/chains.py). A new table only:
# an existing state file gets it on open, and an older sheetbot ignores it.
SCHEMA += """
CREATE TABLE IF NOT EXISTS chain_intents (
    task_id TEXT NOT NULL,                -- the approved (or edited) row
    entry INTEGER NOT NULL,               -- its workflow's `on_approve.queue` entry, from 0
    attempt INTEGER NOT NULL,
    child_id TEXT NOT NULL UNIQUE,        -- the new row's id, deterministic: <task>.<workflow>
    workflow TEXT NOT NULL,
    input TEXT NOT NULL,                  -- rendered once, here; never rendered again
    priority TEXT,
    state TEXT NOT NULL,                  -- pending | done
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (task_id, entry)
);
"""

# -- the intake API (issue 15, item 4) -------------------------------------------------------------------------
# A row a caller asked for through `POST /tasks`, recorded before the board's append (sheetbot/morning/intake.py):
# the id is fixed here, so a crash between the record and the append is completed by the next POST with the same
# Idempotency-Key or by the next harvest, which first look for the id on the board. Also where the task's
# decision is sent (callback_url) and which attempt's decision it received. A new table only: an existing state
# file gets it on open, and an older sheetbot ignores it.
SCHEMA += """
CREATE TABLE IF NOT EXISTS intake_tasks (
    task_id TEXT PRIMARY KEY,
    key_sha256 TEXT UNIQUE,               -- the Idempotency-Key's SHA-256; NULL: none was sent
    body_sha256 TEXT NOT NULL,            -- the request, canonical JSON: the same key with another body is refused
    row TEXT NOT NULL,                    -- JSON: the cells appended, column -> text
    callback_url TEXT,
    state TEXT NOT NULL,                  -- pending | done (the row is on the board)
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    callback_delivered INTEGER NOT NULL DEFAULT 0,   -- the attempt whose decision the callback received
    callback_error TEXT
);
"""

#: Columns added after their table first shipped: (table, column, definition), applied by ``migrate``.
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    # batch mode (issue 10): how the batch became known. '' its create answered; 'key' found by the key it
    # carries (certainly ours); 'listing' found by size and time (ours only if its results say so, never cancelled)
    ("batches", "found_by", "TEXT NOT NULL DEFAULT ''"),
)

# -- who decided (issue 13, item 5) --------------------------------------------------------------------------
# Each review record names its reviewer when the board could tell (a `reviewer` column, or Airtable's "Last
# modified by" named as that column); NULL when it could not. A nullable column added on open: an older
# sheetbot reading a newer file ignores it, so the schema version stays (as for `found_by` above).
ADDED_COLUMNS += (("reviews", "reviewer", "TEXT"),)


# -- review gates between steps (issue 14, item 1) ---------------------------------------------------------------
# One row per round of a gated step's review (sheetbot/state/gates.py): the answers so far, the decision and the
# reviewer's text or notes. A new table only: an existing state file gets it on open, an older sheetbot ignores it.
SCHEMA += """
CREATE TABLE IF NOT EXISTS step_gates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL,
    workflow TEXT NOT NULL,
    step TEXT NOT NULL,
    round INTEGER NOT NULL,               -- 1, then one more per rework of this gate
    attempt INTEGER NOT NULL,
    night TEXT NOT NULL,                  -- the night the step answered
    outputs TEXT NOT NULL,                -- JSON: step -> answer, up to and including this step
    shown TEXT NOT NULL,                  -- the `output` cell while it waits: the answer, marked as a step
    opened_at TEXT NOT NULL,
    decision TEXT,                        -- NULL: waiting | approve | edit | rework
    text TEXT,                            -- what the next step sees: the answer, or the reviewer's edit
    notes TEXT,
    reviewer TEXT,
    decided_at TEXT,
    UNIQUE (task_id, step, round)
);
CREATE INDEX IF NOT EXISTS step_gates_night ON step_gates(night);
"""


def migrate(db: sqlite3.Connection) -> None:
    """Bring an existing state file forward: add the columns it lacks."""
    for table, column, definition in ADDED_COLUMNS:
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            try:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
            except (sqlite3.OperationalError, StateError) as exc:  # another process added it a moment ago
                if "duplicate column" not in str(exc):  # (a StateError: the guarded connection's words for it)
                    raise


# -- migration to schema 2: night_tasks keeps every attempt of a row in a night (issue 10, item 10) ----------------
# Before, the key was (night, task_id): a rework locked again under the same night overwrote the first attempt's
# record, and `report` lost the rework. SQLite cannot change a primary key in place: the table is rebuilt.
def migrate_night_tasks_by_attempt(db: sqlite3.Connection) -> None:
    key = [row[1] for row in sorted(db.execute("PRAGMA table_info(night_tasks)"), key=lambda r: r[5]) if row[5]]
    if "attempt" in key:
        return
    db.executescript(
        """
        BEGIN IMMEDIATE;
        CREATE TABLE night_tasks_by_attempt (
            night TEXT NOT NULL,
            task_id TEXT NOT NULL,
            workflow TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            outcome TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (night, task_id, attempt)
        );
        INSERT INTO night_tasks_by_attempt(night, task_id, workflow, attempt, outcome, reason)
            SELECT night, task_id, workflow, attempt, outcome, reason FROM night_tasks;
        DROP TABLE night_tasks;
        ALTER TABLE night_tasks_by_attempt RENAME TO night_tasks;
        COMMIT;
        """
    )


# -- the urgent daytime lane (issue 14, item 3) ----------------------------------------------------------------
# The lane marker: which rows the daytime lane took (ran = 1) or deferred to the night at its cap (ran = 0), for
# the night they belong to. A table of its own, so night_tasks (the night's metrics) keeps its shape and key;
# a row the lane deferred and the night then ran is the night's (ran stays 0). `report` keeps ran = 1 apart.
SCHEMA += """
CREATE TABLE IF NOT EXISTS urgent_rows (
    night TEXT NOT NULL,                  -- the coming night: its budgets count the day's urgent spend
    task_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    workflow TEXT NOT NULL,
    ran INTEGER NOT NULL,                 -- 1: locked and run in the day; 0: deferred to the night
    reason TEXT NOT NULL DEFAULT '',
    at TEXT NOT NULL,
    PRIMARY KEY (night, task_id, attempt)
);
"""
