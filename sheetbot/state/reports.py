"""What the morning reads back: a night's outcomes, decisions, spend and latencies, and the reviews behind them.

A mixin of ``State``. The metrics, the alerts, the feedback report and the live-price comparison compute
their figures from these (sheetbot/morning/); none of them reads a table itself, so
a second state backend needs to answer only these questions, each named for what it asks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sheetbot.state.faults import Db
from sheetbot.state.records import CallUsage, OutputProduced, ReviewedOutput, Spend


@dataclass(frozen=True)
class TaskRun:
    """What one night did with one row's attempt, with what its calls cost and took, and how long its output
    is (in characters; 0 without one): the weekly review's unit (sheetbot/morning/weekly.py)."""

    night: str
    task_id: str
    workflow: str
    priority: str | None
    outcome: str
    reason: str
    cost_usd: float
    latency_s: float
    output_chars: int


class ReportsMixin:
    """Read-only questions about past nights, over night_tasks, attempts and reviews."""

    _db: Db

    # -- what each night did ---------------------------------------------------------
    def recorded_nights(self, limit: int) -> list[str]:
        """The latest ``limit`` nights that locked any row, newest first."""
        rows = self._db.execute("SELECT DISTINCT night FROM night_tasks ORDER BY night DESC LIMIT ?", (limit,))
        return [r["night"] for r in rows.fetchall()]

    def outcome_counts(self, night: str) -> dict[str, dict[str, int]]:
        """Workflow → outcome (locked, done, failed, deferred, over_cap) → rows of ``night`` with it; a rework
        run again the same night counts once per attempt."""
        out: dict[str, dict[str, int]] = {}
        for r in self._db.execute(
            "SELECT workflow, outcome, COUNT(*) AS n FROM night_tasks WHERE night = ? GROUP BY workflow, outcome",
            (night,),
        ).fetchall():
            out.setdefault(r["workflow"], {})[r["outcome"]] = int(r["n"])
        return out

    def outputs_produced(self) -> list[OutputProduced]:
        """Every output any night produced (outcome ``done``), one per task and attempt."""
        rows = self._db.execute("SELECT night, task_id, attempt FROM night_tasks WHERE outcome = 'done'").fetchall()
        return [OutputProduced(r["night"], r["task_id"], int(r["attempt"])) for r in rows]

    # -- what the calls cost ----------------------------------------------------------
    def spend_of_night(self, night: str, workflow: str) -> Spend:
        """What ``workflow``'s calls of ``night`` cost, and what its preview calls would have cost live."""
        r = self._db.execute(
            "SELECT COALESCE(SUM(cost_usd), 0) AS c, COALESCE(SUM(estimated_usd), 0) AS e "
            "FROM attempts WHERE night = ? AND workflow = ?",
            (night, workflow),
        ).fetchone()
        return Spend(cost_usd=float(r["c"]), estimated_usd=float(r["e"]))

    def calls_of_night(self, night: str, workflow: str) -> list[CallUsage]:
        """Every call ``workflow`` made in ``night`` (answered or not, every mode), with its tokens and cost."""
        rows = self._db.execute(
            "SELECT model, mode, cost_usd, input_tokens, output_tokens, cache_write_tokens, cache_read_tokens "
            "FROM attempts WHERE night = ? AND workflow = ? ORDER BY id",
            (night, workflow),
        ).fetchall()
        return [
            CallUsage(
                model=r["model"],
                mode=r["mode"],
                cost_usd=float(r["cost_usd"]),
                input_tokens=int(r["input_tokens"]),
                output_tokens=int(r["output_tokens"]),
                cache_write_tokens=int(r["cache_write_tokens"]),
                cache_read_tokens=int(r["cache_read_tokens"]),
            )
            for r in rows
        ]

    def call_latencies_s(self, night: str, workflow: str) -> list[float]:
        """Seconds each answered call of ``workflow`` took in ``night``; preview calls (nothing was called) and
        failed calls are left out."""
        rows = self._db.execute(
            "SELECT latency_s FROM attempts WHERE night = ? AND workflow = ? AND ok = 1 AND mode != 'preview' "
            "ORDER BY id",
            (night, workflow),
        ).fetchall()
        return [float(r["latency_s"]) for r in rows]

    # -- what reviewers decided -------------------------------------------------------
    def decision_counts(self, night: str) -> dict[str, dict[str, int]]:
        """Workflow → decision (approve, edit, rework) → reviews of the outputs ``night`` produced, each matched
        to the attempt the night ran (a decision on a rework's earlier attempt is not this night's)."""
        out: dict[str, dict[str, int]] = {}
        for r in self._db.execute(
            "SELECT r.workflow, r.decision, COUNT(*) AS n FROM reviews r JOIN night_tasks t "
            "ON t.task_id = r.task_id AND t.night = r.night AND t.attempt = r.attempt "
            "WHERE r.night = ? GROUP BY r.workflow, r.decision",
            (night,),
        ).fetchall():
            if r["workflow"] is not None:  # a review of a row without a workflow belongs to no workflow's figures
                out.setdefault(r["workflow"], {})[r["decision"]] = int(r["n"])
        return out

    def reviewer_counts(self, night: str) -> dict[str, dict[str, int]]:
        """Workflow → reviewer → decisions they made on the outputs ``night`` produced (matched as in
        ``decision_counts``); decisions whose reviewer the board could not tell are not counted here."""
        out: dict[str, dict[str, int]] = {}
        for r in self._db.execute(
            "SELECT r.workflow, r.reviewer, COUNT(*) AS n FROM reviews r JOIN night_tasks t "
            "ON t.task_id = r.task_id AND t.night = r.night AND t.attempt = r.attempt "
            "WHERE r.night = ? AND r.reviewer IS NOT NULL AND r.reviewer != '' "
            "GROUP BY r.workflow, r.reviewer ORDER BY r.workflow, r.reviewer",
            (night,),
        ).fetchall():
            if r["workflow"] is not None:
                out.setdefault(r["workflow"], {})[r["reviewer"]] = int(r["n"])
        return out

    def review_times(self) -> list[datetime]:
        """When each review decision was recorded, in the order they were."""
        return [datetime.fromisoformat(r["at"]) for r in self._db.execute("SELECT at FROM reviews ORDER BY id")]

    def reviewed_nights(self, workflow: str, limit: int) -> list[str]:
        """The latest ``limit`` nights whose outputs of ``workflow`` were reviewed, newest first."""
        rows = self._db.execute(
            "SELECT DISTINCT night FROM reviews WHERE workflow = ? AND night IS NOT NULL ORDER BY night DESC LIMIT ?",
            (workflow, limit),
        ).fetchall()
        return [r["night"] for r in rows]

    def reviews_with_output(self, workflow: str, nights: Sequence[str]) -> list[ReviewedOutput]:
        """Every review of ``workflow``'s outputs from ``nights``, in the order decided, each beside the output
        it judged (the attempt's final stored answer): what the feedback report learns from."""
        if not nights:
            return []
        marks = ",".join("?" * len(nights))
        rows = self._db.execute(
            "SELECT r.decision, r.notes, r.edited_output, "
            "(SELECT a.output FROM attempts a WHERE a.task_id = r.task_id AND a.attempt = r.attempt AND a.ok = 1 "
            " AND a.final = 1 ORDER BY a.id DESC LIMIT 1) AS output "
            f"FROM reviews r WHERE r.workflow = ? AND r.night IN ({marks}) ORDER BY r.id",
            (workflow, *nights),
        ).fetchall()
        return [ReviewedOutput(r["decision"], r["notes"], r["edited_output"], r["output"]) for r in rows]

    # -- the weekly review ------------------------------------------------------------
    def task_runs(self, nights: Sequence[str]) -> list[TaskRun]:
        """Every row ``nights`` ran to an end (done, failed or deferred), one per task and attempt, with its
        calls' summed cost and time (preview calls took no time) and the length of its final output."""
        if not nights:
            return []
        marks = ",".join("?" * len(nights))
        rows = self._db.execute(
            "SELECT t.night, t.task_id, t.workflow, t.outcome, t.reason, k.priority, "
            "(SELECT COALESCE(SUM(a.cost_usd), 0) FROM attempts a WHERE a.task_id = t.task_id "
            " AND a.night = t.night AND a.attempt = t.attempt) AS cost, "
            "(SELECT COALESCE(SUM(a.latency_s), 0) FROM attempts a WHERE a.task_id = t.task_id "
            " AND a.night = t.night AND a.attempt = t.attempt AND a.mode != 'preview') AS latency, "
            "(SELECT COALESCE(LENGTH(a.output), 0) FROM attempts a WHERE a.task_id = t.task_id AND a.night = t.night "
            " AND a.attempt = t.attempt AND a.ok = 1 AND a.final = 1 ORDER BY a.id DESC LIMIT 1) AS chars "
            f"FROM night_tasks t LEFT JOIN tasks k ON k.task_id = t.task_id WHERE t.night IN ({marks}) "
            "AND t.outcome IN ('done', 'failed', 'deferred') ORDER BY t.night, t.task_id, t.attempt",
            tuple(nights),
        ).fetchall()
        return [
            TaskRun(
                r["night"],
                r["task_id"],
                r["workflow"],
                r["priority"],
                r["outcome"],
                r["reason"],
                float(r["cost"]),
                float(r["latency"]),
                int(r["chars"] or 0),
            )
            for r in rows
        ]

    def rework_notes(self, nights: Sequence[str]) -> list[tuple[str, str]]:
        """(workflow, notes) of every rework decision on the outputs of ``nights``, in the order decided."""
        if not nights:
            return []
        marks = ",".join("?" * len(nights))
        rows = self._db.execute(
            f"SELECT workflow, notes FROM reviews WHERE decision = 'rework' AND night IN ({marks}) ORDER BY id",
            tuple(nights),
        ).fetchall()
        return [(r["workflow"] or "", r["notes"]) for r in rows]
