"""What the commands print: one short paragraph per phase, a metrics table, the morning summary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from rich import box
from rich.table import Table

from sheetbot.morning.gate_report import describe_gate_decisions
from sheetbot.morning.metrics import NightMetrics
from sheetbot.night.harvest import HarvestReport
from sheetbot.night.lock import LockReport
from sheetbot.night.outcomes import describe_failures
from sheetbot.night.run import RunReport
from sheetbot.status import FINAL, Status


def _per_workflow(counts: Counter[str]) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(counts.items())) or "none"


def describe_lock(report: LockReport) -> str:
    lines = [f"night {report.night}: locked {report.locked.total()} row(s) ({_per_workflow(report.locked)})"]
    if report.columns_added:
        lines.append(f"added missing columns: {', '.join(report.columns_added)}")
    if report.new_ids:
        lines.append(f"gave {report.new_ids} new row(s) an id")
    if report.paused:
        lines.append(
            f"skipped, workflow paused: {report.paused.total()} ({_per_workflow(report.paused)}); "
            "`sheetbot resume WORKFLOW` to run them again"
        )
    if report.deferred:
        lines.append(f"deferred over the caps: {report.deferred.total()} ({_per_workflow(report.deferred)})")
    for task_id, reason in report.failed[:10]:
        lines.append(f"failed {task_id}: {reason}")
    if len(report.failed) > 10:
        lines.append(f"… and {len(report.failed) - 10} more failed rows (see the error column)")
    if report.still_failed:
        lines.append(f"{report.still_failed} row(s) still cannot run, as reported before (see the error column)")
    if report.missing:
        lines.append(f"rows gone from the board: {', '.join(report.missing)}")
    if not report.locked and not report.deferred and not report.paused:
        lines.append(_nothing_to_lock(report.waiting))
    return "\n".join(lines)


def _nothing_to_lock(waiting: Counter[str]) -> str:
    """Why a lock took no row, and what to do: a bare "locked 0" reads like a fault."""
    parts = []
    if waiting[Status.REVIEW]:
        parts.append(
            f"{waiting[Status.REVIEW]} wait for review (decide them in the review column, then `sheetbot harvest`)"
        )
    if busy := waiting[Status.LOCKED] + waiting[Status.RUNNING]:
        parts.append(f"{busy} are already locked for a night (`sheetbot run` runs them)")
    if done := sum(waiting[s] for s in FINAL):
        parts.append(f"{done} are done")
    held = f": {'; '.join(parts)}" if parts else ""
    return (
        f"nothing to lock: no row is queued{held}. A new row (a type and an input) or a row whose status you set"
        " back to `queued` is locked at the next `sheetbot lock`."
    )


def describe_run(report: RunReport) -> str:
    lines = [
        f"night {report.night}: {report.done.total()} output(s) ready for review "
        f"({_per_workflow(report.done)}), cost ${report.cost_usd:.4f}"
    ]
    if report.failed:
        lines.append(f"failed: {report.failed.total()} ({_per_workflow(report.failed)}): see the error column")
    if report.deferred:
        lines.append(f"deferred: {report.deferred.total()} ({_per_workflow(report.deferred)}): the queue did not drain")
        lines += describe_failures(report.deferred_by)  # which provider failed, why, how many (exit 3)
    if report.changed_after_lock:
        lines.append(
            f"{len(report.changed_after_lock)} row(s) were edited after the lock; their outputs answer "
            "the locked input (noted in the error column)"
        )
    if report.missing:
        lines.append(f"rows gone from the board (outputs kept in the state): {', '.join(report.missing)}")
    if report.repaired:
        lines.append(
            f"put back {report.repaired} row(s) whose cells the board had lost or someone had typed over "
            "(from the state; nothing paid again)"
        )
    lines += [f"note: {note}" for note in report.notes]
    if not (report.done or report.failed or report.deferred):
        if report.written:  # a rerun after a failed write, or after an old copy was saved over the board
            lines = [
                f"night {report.night}: no row left to run; wrote {report.written} row(s) back to the board "
                "from the state (nothing paid again)",
                *lines[1:],
            ]
        else:
            lines = [f"night {report.night}: nothing locked to run (run `sheetbot lock` first)"]
    return "\n".join(lines)


def describe_harvest(report: HarvestReport) -> str:
    d = report.decisions
    lines = [
        f"harvested {d.total()} decision(s): {d['approve']} approved, {d['edit']} edited, "
        f"{d['rework']} sent to rework; {report.waiting} still waiting for review"
    ]
    if report.gates:  # review gates between steps (issue 14)
        lines.append(describe_gate_decisions(report.gates))
    if report.requeued:
        lines.append(f"{report.requeued} failed row(s) sent back to the queue by a person")
    for task_id, problem in report.problems[:10]:
        lines.append(f"{task_id}: {problem}")
    if report.missing:
        lines.append(f"rows gone from the board: {', '.join(report.missing)}")
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _usd(value: float | None) -> str:
    return "–" if value is None else f"${value:.4f}"


def metrics_table(metrics: Sequence[NightMetrics]) -> Table:
    table = Table(title="sheetbot nights", show_lines=False, box=box.SIMPLE, pad_edge=False)
    for header in (
        "night",
        "workflow",
        "lock",
        "done",
        "fail",
        "defer",
        "appr",
        "edit",
        "rwk",
        "appr%",
        "compl%",
        "cost",
        "live",
        "$/out",
        "p50s",
        "p95s",
    ):
        table.add_column(header, justify="left" if header in ("night", "workflow") else "right")
    for m in metrics:
        table.add_row(
            m.night,
            m.workflow,
            str(m.locked),
            str(m.done),
            str(m.failed),
            str(m.deferred),
            str(m.approved),
            str(m.edited),
            str(m.rework),
            _pct(m.approval_rate),
            _pct(m.completion_rate),
            _usd(m.cost_usd),
            _usd(m.live_usd),
            _usd(m.cost_per_output_usd),
            "–" if m.p50_latency_s is None else f"{m.p50_latency_s:.1f}",
            "–" if m.p95_latency_s is None else f"{m.p95_latency_s:.1f}",
        )
    return table


def trend_table(metrics: Sequence[NightMetrics]) -> Table:
    """The last nights side by side, oldest to newest, one block of rows per workflow: drift shows as a
    line of numbers sliding, which one night's table cannot show."""
    nights = sorted({m.night for m in metrics})
    by_key = {(m.workflow, m.night): m for m in metrics}
    table = Table(title="trend", show_lines=False)
    table.add_column("workflow")
    table.add_column("metric")
    for night in nights:
        table.add_column(night[5:], justify="right")  # MM-DD: the year is in the table above
    figures: list[tuple[str, Callable[[NightMetrics], str]]] = [
        ("approved as-is", lambda m: _pct(m.approval_rate)),
        ("edited", lambda m: _pct(m.edit_rate)),
        ("rework", lambda m: _pct(m.rework_rate)),
        ("completion", lambda m: _pct(m.completion_rate)),
        ("per output", lambda m: _usd(m.cost_per_output_usd)),
        ("waiting", lambda m: str(m.waiting)),
    ]
    for workflow in sorted({m.workflow for m in metrics}):
        for index, (label, show) in enumerate(figures):
            cells = [show(by_key[(workflow, n)]) if (workflow, n) in by_key else "" for n in nights]
            table.add_row(workflow if index == 0 else "", label, *cells)
    return table


def morning_summary(metrics: Sequence[NightMetrics], *, board: str) -> str:
    """Plain text: per workflow new / done / exceptions / deferred, cost, rows waiting for review."""
    if not metrics:
        return "sheetbot: no night recorded yet."
    night = metrics[0].night
    rows = [m for m in metrics if m.night == night]
    lines = [f"sheetbot — night {night} — review on {board}", ""]
    for m in rows:
        lines.append(
            f"• {m.workflow}: {m.done}/{m.locked} done, {m.failed} failed, {m.deferred} deferred, "
            f"{m.waiting} waiting for review, cost ${m.cost_usd:.4f}"
        )
    total = sum(m.cost_usd for m in rows)
    waiting = sum(m.waiting for m in rows)
    lines += ["", f"total cost ${total:.4f}; {waiting} output(s) waiting for review"]
    live = sum(m.live_usd or 0.0 for m in rows)
    if live > total + 1e-9:
        lines.append(f"the same night live would have cost ${live:.4f} (batch mode and caching saved the rest)")
    estimated = sum(m.estimated_usd for m in rows)
    if estimated:
        lines.append(f"preview rows would cost up to ≈${estimated:.4f} live (if every answer used max_tokens)")
    if any(m.deferred for m in rows):
        lines.append("the queue did not drain: deferred rows run on a later night")
    return "\n".join(lines)
