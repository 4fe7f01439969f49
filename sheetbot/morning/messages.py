"""The messages `serve` sends: the morning summary and the completion alerts, built from the state.

Alerts are sent as soon as they are known (after the run, or when an ended night is found
unfinished) and once per night and kind: each sent alert is recorded in the audit log, which is
also where the morning summary finds "what broke".
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime

from sheetbot.morning.metrics import night_metrics
from sheetbot.morning.summary import morning_summary
from sheetbot.night.run import RunReport
from sheetbot.notify.base import Message, Severity
from sheetbot.state import State

_KEY_WORDS = ("api key", "refused the", "http 401", "http 403", "not set")
#: A deferral the account caused, not the row: a refused key ("(HTTP 401)", "(HTTP 403)"), no quota left, an open
#: circuit breaker. Letters match in any case (ASCII only), as SQL's LIKE does.
_HELD_BY_ACCOUNT = re.compile(r"\(HTTP 40.\)|out of quota|circuit breaker", re.IGNORECASE | re.ASCII | re.DOTALL)


def alert(kind: str, night: str, title: str, text: str, *, severity: Severity = "critical", **facts: object) -> Message:
    return Message(
        kind=kind,
        title=f"sheetbot night {night}: {title}",
        text=text,
        severity=severity,
        facts={"night": night, **facts},
    )


def already_sent(state: State, kind: str, night: str) -> bool:
    """Delivered already (a failed delivery is tried again at the next chance)."""
    return state.notification_delivered(kind, night)


def record_sent(state: State, message: Message, *, now: datetime, delivered: bool) -> None:
    detail = {"kind": message.kind, "night": message.facts.get("night"), "title": message.title, "ok": delivered}
    with state.transaction():
        state.audit("notified", now=now, detail=detail)


def run_alerts(report: RunReport, state: State, *, since: datetime) -> list[Message]:
    """What a finished run tells people at once: not drained, rows not written, credentials refused."""
    night, out = report.night, []
    if not report.drained and not report.stopped:
        out.append(
            alert(
                "night_not_drained",
                night,
                "the queue did not drain",
                f"{report.deferred.total()} row(s) were deferred to a later night "
                f"({', '.join(f'{w} {n}' for w, n in sorted(report.deferred.items()))}).",
                severity="warning",
                deferred=report.deferred.total(),
            )
        )
    if report.missing:
        out.append(
            alert(
                "output_not_written",
                night,
                "outputs could not be written to the board",
                f"rows gone from the board (outputs kept in the state): {', '.join(report.missing[:20])}",
                rows=list(report.missing),
            )
        )
    refused = [r for r in report.reasons if any(w in r.lower() for w in _KEY_WORDS)]
    circuits = [detail.get("provider", "?") for detail in state.circuits_opened_since(since)]
    if refused or circuits:
        lines = [f"{report.reasons[r]} row(s): {r}" for r in refused]
        lines += [f"the circuit breaker opened for provider {p}" for p in dict.fromkeys(circuits)]
        out.append(alert("credentials_refused", night, "a provider refused the work", "\n".join(lines)))
    return out


def what_broke(state: State, night: str) -> list[str]:
    lines = [
        str(detail.get("title", "notified"))
        for detail in state.notifications_of_night(night, except_kind="morning_summary")
    ]
    reasons: Counter[str] = Counter(state.reasons_of_night(night, "failed"))
    lines += [f"{n} row(s) failed: {reason}" for reason, n in reasons.most_common(5)]
    # A refused key or an open breaker defers rows (the account's problem, not theirs): still something broke.
    held: Counter[str] = Counter()
    for reason in state.reasons_of_night(night, "deferred"):
        if _HELD_BY_ACCOUNT.search(reason):
            held[reason] += 1
    lines += [f"{n} row(s) deferred: {reason}" for reason, n in held.most_common(5)]
    return lines


def morning_message(state: State, night: str, *, board: str) -> Message:
    """Per workflow new / done / exceptions / deferred, cost, rows waiting, the board, what broke."""
    metrics = [m for m in night_metrics(state, nights=14) if m.night == night]
    text = morning_summary(metrics, board=board) if metrics else f"sheetbot — night {night}: nothing ran."
    broke = what_broke(state, night)
    per_workflow = [
        f"{m.workflow}: {m.locked} new, {m.done} done, {m.failed} exceptions, {m.deferred} deferred, "
        f"{m.waiting} waiting for review, ${m.cost_usd:.4f}"
        for m in metrics
    ]
    totals = [
        f"cost ${sum(m.cost_usd for m in metrics):.4f}; {sum(m.waiting for m in metrics)} waiting for review",
        f"review on {board}",
    ]
    sections: list[tuple[str, list[str]]] = [("Workflows", per_workflow or ["nothing ran"]), ("Totals", totals)]
    if broke:
        sections.append(("What broke", broke))
        text += "\n\nWhat broke:\n" + "\n".join(f"- {line}" for line in broke)
    return Message(
        kind="morning_summary",
        title=f"sheetbot morning summary, night {night}",
        text=text,
        severity="warning" if broke else "info",
        facts={
            "night": night,
            "board": board,
            "workflows": {m.workflow: {"new": m.locked, "done": m.done, "failed": m.failed} for m in metrics},
        },
        sections=sections,
    )
