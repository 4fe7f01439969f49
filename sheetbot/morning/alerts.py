"""Drift alerts and review capacity, checked after each harvest.

A single night's numbers are noise; quality is watched as a trend. Rates count only for nights
whose run finished and whose outputs are all decided ("settled"): a morning's first three
reviews are not a verdict on the night, and a rate needs `alerts.min_decided` decisions behind it
(one rework out of two rows is not "50% sent to rework"). Each alert carries keys (what it is about: workflow and
night), and `deliver` records them once delivered, so harvesting every 30 minutes never sends
the same alert twice; an alert whose channels all failed is tried again at the next harvest.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime

from sheetbot.config.models import Config
from sheetbot.config.watching import AlertsConfig
from sheetbot.morning.metrics import NightMetrics, night_metrics
from sheetbot.notify.base import Fanout, Message, Notifier
from sheetbot.state import State


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def finished_nights(state: State, *, limit: int = 30) -> set[str]:
    """Nights whose run finished: a night still to run has no completion to judge."""
    return {n["night"] for n in state.nights(limit) if n.get("run_finished_at")}


def by_workflow(state: State, *, nights: int = 14) -> dict[str, list[NightMetrics]]:
    """Finished nights' metrics per workflow, newest first."""
    finished = finished_nights(state, limit=nights * 2)
    out: dict[str, list[NightMetrics]] = {}
    for m in night_metrics(state, nights=nights * 2):
        if m.night in finished:
            out.setdefault(m.workflow, []).append(m)
    return out


def _message(kind: str, m: NightMetrics, title: str, text: str, cfg: AlertsConfig, **facts: object) -> Message:
    return Message(
        kind=kind,
        title=title,
        text=text,
        severity="warning",
        facts={"workflow": m.workflow, "night": m.night, "keys": [f"{m.workflow}:{m.night}"], **facts},
        route=cfg.route,
    )


def _decided(m: NightMetrics) -> int:
    return m.approved + m.edited + m.rework


def _drift(history: list[NightMetrics], cfg: AlertsConfig) -> list[Message]:
    out: list[Message] = []
    settled = [m for m in history if m.waiting == 0 and m.approval_rate is not None]
    if len(settled) >= cfg.approval_nights:
        run = settled[: cfg.approval_nights]
        if sum(map(_decided, run)) >= cfg.min_decided and all(
            m.approval_rate is not None and m.approval_rate < cfg.approval_min for m in run
        ):
            rates = ", ".join(f"{m.night} {_pct(m.approval_rate)}" for m in reversed(run))
            out.append(
                _message(
                    "approval_drift",
                    run[0],
                    f"{run[0].workflow}: approval as-is under {_pct(cfg.approval_min)} {len(run)} nights running",
                    f"Approved as-is: {rates}.\nRead the rework notes (`sheetbot feedback {run[0].workflow}`) "
                    "and add what recurs to the workflow's guidelines.",
                    cfg,
                    approval_rate=run[0].approval_rate,
                )
            )
    if settled and _decided(settled[0]) >= cfg.min_decided:  # a rate of a handful of decisions is noise
        last = settled[0]
        for kind, rate, limit, what in (
            ("edit_drift", last.edit_rate, cfg.edit_max, "edited"),
            ("rework_drift", last.rework_rate, cfg.rework_max, "sent to rework"),
        ):
            if rate is not None and rate > limit:
                out.append(
                    _message(
                        kind,
                        last,
                        f"{last.workflow}: {_pct(rate)} of night {last.night}'s outputs {what} (limit {_pct(limit)})",
                        f"{what.capitalize()}: {_pct(rate)} of {_decided(last)} "
                        f"decided outputs.\nSee `sheetbot feedback {last.workflow}` for what reviewers change.",
                        cfg,
                        rate=rate,
                    )
                )
    if history and history[0].completion_rate is not None and history[0].completion_rate < cfg.completion_min:
        m = history[0]
        out.append(
            _message(
                "completion_drift",
                m,
                f"{m.workflow}: night {m.night} completed {_pct(m.completion_rate)} of its rows",
                f"{m.done} of {m.locked} locked rows done; {m.failed} failed, {m.deferred} deferred.\n"
                "Failed rows say why in the error column; deferred rows run on a later night.",
                cfg,
                completion_rate=m.completion_rate,
            )
        )
    costs = [m for m in history if m.cost_per_output_usd is not None]
    needed = cfg.cost_rising_nights + 1
    if len(costs) >= needed:
        run = costs[:needed]
        if all((a.cost_per_output_usd or 0) > (b.cost_per_output_usd or 0) for a, b in itertools.pairwise(run)):
            series = " → ".join(f"${m.cost_per_output_usd:.4f}" for m in reversed(run))
            out.append(
                _message(
                    "cost_drift",
                    run[0],
                    f"{run[0].workflow}: cost per output rose {cfg.cost_rising_nights} nights running",
                    f"Cost per output: {series}.\nLonger inputs, rework rounds or a pricier model? "
                    "Compare the nights with `sheetbot report`.",
                    cfg,
                    cost_per_output_usd=run[0].cost_per_output_usd,
                )
            )
    return out


def backlog_by_night(state: State, *, nights: int = 14) -> list[tuple[str, int, int, int]]:
    """(night, backlog, produced, cleared), oldest first: outputs waiting for review when each night's run
    finished (the morning's peak), what that night produced, and what reviewers decided since the night before."""
    finished = sorted(
        (n["night"], datetime.fromisoformat(finished_at))
        for n in state.nights(nights)
        if (finished_at := n["run_finished_at"])
    )
    outputs = [(r.night, r.task_id, r.attempt) for r in state.outputs_produced()]
    reviews = state.review_times()
    done_at = dict(finished)
    out: list[tuple[str, int, int, int]] = []
    previous: datetime | None = None
    for night, at in finished:
        produced_by_then = sum(1 for n, _, _ in outputs if n in done_at and done_at[n] <= at)
        decided_by_then = sum(1 for r in reviews if r <= at)
        produced = sum(1 for n, _, _ in outputs if n == night)
        cleared = sum(1 for r in reviews if r <= at and (previous is None or r > previous))
        out.append((night, max(produced_by_then - decided_by_then, 0), produced, cleared))
        previous = at
    return out


def review_capacity(state: State, cfg: AlertsConfig) -> list[Message]:
    """A warning when the review backlog grew `backlog_rising_nights` nights running."""
    series = backlog_by_night(state, nights=cfg.backlog_rising_nights + 8)
    needed = cfg.backlog_rising_nights + 1
    if len(series) < needed:
        return []
    run = series[-needed:]
    if not all(b[1] > a[1] for a, b in itertools.pairwise(run)):
        return []
    produced = sum(r[2] for r in run[1:]) / (needed - 1)
    cleared = sum(r[3] for r in run[1:]) / (needed - 1)
    night = run[-1][0]
    return [
        Message(
            kind="review_backlog",
            title=f"review backlog grew {cfg.backlog_rising_nights} nights running: {run[-1][1]} outputs waiting",
            text=(
                f"Waiting for review: {' → '.join(str(r[1]) for r in run)}.\n"
                f"The nights produce {produced:.1f} outputs a night; reviewers clear {cleared:.1f}.\n"
                "Add reviewers, or lower nightly_rows until the queue drains."
            ),
            severity="warning",
            facts={"night": night, "backlog": run[-1][1], "keys": [f"backlog:{night}"]},
            route=cfg.route,
        )
    ]


def evaluate(state: State, config: Config) -> list[Message]:
    """Every drift and capacity alert the state shows now (already-sent ones included; see `deliver`)."""
    cfg = config.alerts
    if not cfg.enabled:
        return []
    nights = max(cfg.approval_nights, cfg.cost_rising_nights + 1, 2) + 2
    out: list[Message] = []
    for _, history in sorted(by_workflow(state, nights=nights).items()):
        out += _drift(history, cfg)
    return out + review_capacity(state, cfg)


def deliver(state: State, notifier: Notifier | Fanout, messages: Sequence[Message], *, now: datetime) -> list[Message]:
    """Send each message whose keys were not all sent before; record them once delivered. Returns what was sent."""
    sent: list[Message] = []
    for message in messages:
        listed = message.facts.get("keys", [message.title])  # every alert lists its keys
        keys = [str(k) for k in listed] if isinstance(listed, list) else [str(listed)]
        if all(state.alert_sent(message.kind, k) for k in keys):
            continue
        if not notifier.send(message):
            continue  # tried again at the next harvest
        with state.transaction():
            for key in keys:
                state.record_alert(message.kind, key, now=now)
            state.audit("alert", now=now, detail={"kind": message.kind, "keys": keys, "route": message.route})
        sent.append(message)
    return sent


def send_alerts(state: State, config: Config, notifier: Notifier | Fanout, *, now: datetime) -> list[Message]:
    return deliver(state, notifier, evaluate(state, config), now=now)
