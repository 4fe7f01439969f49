"""Review gates between steps (issue 14): each time a gated step's answer waits for a person, and what they
decided. A mixin of ``State``.

One record per round of a gate: round 1 when the step first answers, one more per `rework` of it. A record
keeps every step's answer up to and including the gated one, so the steps after an approved gate run from
it (a later rework of the final output, or a restart, never pays for an approved step again), and the
decisions are counted per gate apart from the final output's (``gate_counts``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

from sheetbot.state.faults import Db

#: How a gate was decided: the same words as the `review` dropdown.
GATE_DECISIONS = ("approve", "edit", "rework")


@dataclass(frozen=True)
class GateRecord:
    id: int
    task_id: str
    workflow: str
    step: str
    round: int
    attempt: int
    night: str
    #: Step name → answer, for every step up to and including this one, as the model gave them.
    outputs: dict[str, str]
    #: None while waiting; else approve, edit or rework.
    decision: str | None
    #: What the next step sees as {{steps.<step>}}: the answer, or the reviewer's text after `edit`.
    text: str | None
    notes: str | None

    @property
    def output(self) -> str:
        return self.outputs.get(self.step, "")


class GatesMixin:
    """The step_gates table: open a gate, find a task's latest, decide it, count decisions per gate."""

    _db: Db
    transaction: Callable[[], AbstractContextManager[None]]

    def open_gate(
        self,
        *,
        task_id: str,
        workflow: str,
        step: str,
        round_: int,
        attempt: int,
        night: str,
        outputs: Mapping[str, str],
        shown: str,
        now: datetime,
    ) -> None:
        """A gated step answered: its round waits for a person. Idempotent (a restart opens it once)."""
        with self.transaction():
            self._db.execute(
                "INSERT INTO step_gates(task_id, workflow, step, round, attempt, night, outputs, "
                "shown, opened_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (task_id, workflow, step, round_, attempt, night, json.dumps(dict(outputs)), shown, now.isoformat()),
            )

    def latest_gate(self, task_id: str) -> GateRecord | None:
        """The task's last gate round opened (any attempt): where its steps go on from."""
        row = self._db.execute(
            "SELECT * FROM step_gates WHERE task_id = ? ORDER BY id DESC LIMIT 1", (task_id,)
        ).fetchone()
        if row is None:
            return None
        return GateRecord(
            id=row["id"],
            task_id=row["task_id"],
            workflow=row["workflow"],
            step=row["step"],
            round=row["round"],
            attempt=row["attempt"],
            night=row["night"],
            outputs=json.loads(row["outputs"]),
            decision=row["decision"],
            text=row["text"],
            notes=row["notes"],
        )

    def decide_gate(
        self, gate_id: int, decision: str, *, text: str | None, notes: str, reviewer: str | None, now: datetime
    ) -> None:
        """A person's decision on a waiting gate round; a decided round is never decided again."""
        assert decision in GATE_DECISIONS
        with self.transaction():
            self._db.execute(
                "UPDATE step_gates SET decision = ?, text = ?, notes = ?, reviewer = ?, decided_at = ? "
                "WHERE id = ? AND decision IS NULL",
                (decision, text, notes, reviewer, now.isoformat(), gate_id),
            )

    def gate_counts(self, night: str) -> dict[str, dict[str, dict[str, int]]]:
        """Workflow → gated step → decision (approve, edit, rework, or `waiting`) → rounds the night opened."""
        out: dict[str, dict[str, dict[str, int]]] = {}
        for r in self._db.execute(
            "SELECT workflow, step, COALESCE(decision, 'waiting') AS d, COUNT(*) AS n FROM step_gates "
            "WHERE night = ? GROUP BY workflow, step, d",
            (night,),
        ).fetchall():
            out.setdefault(r["workflow"], {}).setdefault(r["step"], {})[r["d"]] = int(r["n"])
        return out
