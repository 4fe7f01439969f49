"""The escalation policy: SLAs per priority, and triggers that page someone or pause spending.

Drift alerts (alerts.py) say quality is sliding; escalations say something needs a person now:
the queue has been deeper than N for M minutes, an item has waited longer than 1.5 × its
priority's SLA, or a night's cost per task went over the line, which pauses every workflow not
listed as critical. A paused workflow's rows are not locked (lock.py skips them with a note)
until someone runs `sheetbot resume WORKFLOW`. Each trigger routes to its own channel.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sheetbot.config.models import Config
from sheetbot.morning.alerts import by_workflow, deliver, send_alerts
from sheetbot.notify.base import Fanout, Message, Notifier
from sheetbot.state import State
from sheetbot.status import DEFAULT_PRIORITY, FINAL, LOCKABLE

#: Row ids an SLA alert's title names (the longest waiting first); its text lists up to 20.
_NAMED = 5


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"


def queue_depth(state: State, config: Config, *, now: datetime) -> list[Message]:
    """Record the queue's depth now; escalate once per episode of it staying over `over` for `for_min`."""
    trigger = config.escalation.queue_depth
    depth = len(state.tasks_with_status(*LOCKABLE))
    state.record_queue_depth(depth, now=now)
    samples = state.queue_depths()
    start = now.timestamp() - trigger.for_min * 60
    streak: list[tuple[float, int]] = []
    for sample in reversed(samples):  # the current run of samples over the line, newest first
        if sample[1] <= trigger.over:
            break
        streak.append(sample)
    if not streak or streak[-1][0] > start:
        return []
    began = datetime.fromtimestamp(streak[-1][0], tz=now.tzinfo)
    minutes = (now.timestamp() - streak[-1][0]) / 60
    return [
        Message(
            kind="queue_depth",
            title=f"queue over {trigger.over} rows for {minutes:.0f} minutes ({depth} now)",
            text=(
                f"The queue has held more than {trigger.over} rows since {began.isoformat(timespec='minutes')}.\n"
                "Raise nightly_rows or the providers' concurrency, or add a night window."
            ),
            severity="critical",
            facts={"depth": depth, "since": began.isoformat(), "keys": [f"queue:{streak[-1][0]:.0f}"]},
            route=trigger.route,
        )
    ]


def overdue(state: State, config: Config, *, now: datetime) -> list[Message]:
    """Items (not yet approved or edited) older than `factor` × their priority's SLA, not reported before."""
    esc = config.escalation
    sla = cast(dict[str, float], esc.sla)
    late: list[tuple[str, str, float]] = []
    for task in state.tasks().values():
        if task.status in FINAL:
            continue
        priority = task.priority or DEFAULT_PRIORITY
        age_s = (now - datetime.fromisoformat(task.first_seen)).total_seconds()
        if age_s > esc.waiting.factor * sla[priority] and not state.alert_sent("sla_breach", task.task_id):
            late.append((task.task_id, f"{task.task_id} ({priority}, {task.status}, waiting {_hours(age_s)})", age_s))
    if not late:
        return []
    late.sort(key=lambda t: -t[2])
    lines = [line for _, line, _ in late[:20]]
    if len(late) > 20:
        lines.append(f"… and {len(late) - 20} more")
    ids = [t for t, _, _ in late]
    named = ", ".join(ids[:_NAMED]) + (f" and {len(ids) - _NAMED} more" if len(ids) > _NAMED else "")
    return [
        Message(
            kind="sla_breach",
            title=f"{len(late)} item(s) waiting over {esc.waiting.factor:g} × their SLA: {named}",
            text="\n".join(lines),
            severity="critical",
            facts={"task_ids": [t for t, _, _ in late], "keys": [t for t, _, _ in late]},
            route=esc.waiting.route,
        )
    ]


def cost_per_task(state: State, config: Config, *, now: datetime) -> list[Message]:
    """A finished night whose cost per task is over the line pauses every non-critical workflow (once)."""
    esc = config.escalation
    limit = esc.cost_per_task.over_usd
    if limit is None:
        return []
    out: list[Message] = []
    for workflow, history in sorted(by_workflow(state, nights=3).items()):
        m = history[0]
        key = f"{workflow}:{m.night}"
        if m.cost_per_output_usd is None or m.cost_per_output_usd <= limit or state.alert_sent("cost_pause", key):
            continue
        reason = f"{workflow} cost ${m.cost_per_output_usd:.4f} per task on night {m.night} (limit ${limit:.4f})"
        paused = [
            name
            for name in sorted(config.workflows)
            if name not in esc.critical and state.pause(name, reason=reason, now=now)
        ]
        state.record_alert("cost_pause", key, now=now)  # resuming by hand must not be undone by this night
        state.audit("pause", now=now, detail={"workflows": paused, "reason": reason})
        kept = ", ".join(esc.critical) or "none"
        out.append(
            Message(
                kind="cost_escalation",
                title=f"paused {len(paused)} workflow(s): {reason}",
                text=(
                    f"Paused: {', '.join(paused) or 'none (already paused)'}; critical, still running: {kept}.\n"
                    "Their rows are not locked until you run `sheetbot resume WORKFLOW`."
                ),
                severity="critical",
                facts={"workflow": workflow, "night": m.night, "paused": paused, "keys": [key]},
                route=esc.cost_per_task.route,
            )
        )
    return out


def evaluate(state: State, config: Config, *, now: datetime) -> list[Message]:
    if not config.escalation.enabled:
        return []
    return queue_depth(state, config, now=now) + overdue(state, config, now=now) + cost_per_task(state, config, now=now)


def escalate(state: State, config: Config, notifier: Notifier | Fanout, *, now: datetime) -> list[Message]:
    """Evaluate the policy (pausing what it says to) and deliver what is new."""
    return deliver(state, notifier, evaluate(state, config, now=now), now=now)


def after_harvest(state: State, config: Config, notifier: Notifier | Fanout, *, now: datetime) -> list[Message]:
    """What runs after each harvest (CLI and serve): drift and capacity alerts, then the escalation policy.
    Here, above both, so that the alerts never import the policy that builds on them."""
    return send_alerts(state, config, notifier, now=now) + escalate(state, config, notifier, now=now)
