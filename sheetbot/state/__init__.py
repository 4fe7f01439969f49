"""The SQLite state: what must survive a crash. All of sheetbot's SQL is in this package.

What lives here: every task sheetbot has seen (its status is the truth; the
board's `status` cell is a mirror), the locked snapshot of each night, every
model call with its tokens and cost, review decisions, per-night events and an
append-only audit log.

Three rules keep money safe:

* An output is committed here before anything is written to the board, so a
  failed board write never costs a second model call.
* A task whose board cells are out of date is marked ``dirty``; each phase ends by
  writing every dirty task and marking it clean. A crash between the two only
  means the same values are written again.
* A fault of the machine (another program's lock, a full disk) never loses a paid
  answer: ``faults`` turns every SQLite fault into a one-line StateUnavailableError
  at the connection, and an answer the state cannot take is kept in
  ``<state>.journal`` (``journal``) and stored, once, when the state is next opened;
  ``<state>.reserve`` (``reserve``) holds the space that append needs on a full disk.

Modules: ``schema`` (the tables), ``records`` (Task, Attempt, BoardProjection and the other rows handed back),
``store`` (``State``: connection, transactions, tasks, the board mirror) and its mixins ``attempts``, ``history``,
``reports``, ``batches``, ``outbox``, ``chains`` (chained workflows' intents), ``governance``, ``journal``,
``claims``, ``tallies`` (what /metrics counts) and ``urgent`` (the daytime lane's marker); ``faults`` (the
connection edge); ``reserve`` (space held for the journal). Nothing outside this package runs SQL on the state:
each read is a ``State`` method named for what it asks.
"""

from sheetbot.state.records import Attempt, BoardProjection, Task
from sheetbot.state.schema import SCHEMA, SCHEMA_VERSION
from sheetbot.state.store import State

__all__ = ["SCHEMA", "SCHEMA_VERSION", "Attempt", "BoardProjection", "State", "Task"]
