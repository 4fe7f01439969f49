"""The weekly review (issue 14 item 5): service levels against the YAML's targets, what broke, what changed.

Over seven nights, read from the state only (so `serve`'s digest and `sheetbot report --week` agree and a
restart changes nothing). The figures a person reads:

- success rate: rows done of the rows that ran to an end (done + failed + deferred; over-cap rows never ran);
- p95 latency per priority: a row's model time (every call of its attempt), nearest rank;
- time to recover: from a failure alert (a night not drained / not started / not finished, outputs not
  written, a refused key, a completion drift) to the end of the next night in which that workflow ran with
  no failed or deferred row; one not recovered yet counts the hours so far;
- cost per task: every call's cost over the outputs produced.

Text written from cells or reasons (rework notes, failure reasons) is data: secrets scrubbed, personal data
masked, one line each and cut short, as the audit export does.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sheetbot.config.models import Config, ScheduleConfig
from sheetbot.config.weekly import WEEK_DAYS, WeeklyConfig, WeeklyTargets
from sheetbot.errors import SheetbotError
from sheetbot.night.windows import window_for_night
from sheetbot.notify.base import Message
from sheetbot.safety.masking import mask_text
from sheetbot.safety.secrets import scrub
from sheetbot.state import State
from sheetbot.state.reports import TaskRun

WIDTH = 100
#: The alerts that say a night failed someone (morning/messages.py, service/serve.py, morning/alerts.py).
FAILURE_KINDS = frozenset(
    {
        "night_not_drained",
        "night_not_started",
        "night_not_finished",
        "output_not_written",
        "credentials_refused",
        "completion_drift",
    }
)
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


# -- which nights -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Period:
    """Seven nights, oldest first; ``label`` is the ISO week of the last one (a Monday digest: last week)."""

    nights: tuple[str, ...]

    @property
    def label(self) -> str:
        year, week, _ = date.fromisoformat(self.nights[-1]).isocalendar()
        return f"{year}-W{week:02d}"

    def bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """From the first night's day to the day after the last one, at midnight (alerts look back from it)."""
        first, last = date.fromisoformat(self.nights[0]), date.fromisoformat(self.nights[-1])
        after = last + timedelta(days=1)
        return datetime.combine(first, time(0), tzinfo=tz), datetime.combine(after, time(0), tzinfo=tz)

    def span(self, schedule: ScheduleConfig, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """Where "what changed" looks: from the end of the night before the first to the end of the last
        night's window. A night runs past midnight, so a lock by hand at 02:30 on Monday is last week's."""
        first, last = date.fromisoformat(self.nights[0]), date.fromisoformat(self.nights[-1])
        before = window_for_night(first - timedelta(days=1), schedule, tz).end
        return before, window_for_night(last, schedule, tz).end


def nights_ending(last: date) -> Period:
    return Period(tuple((last - timedelta(days=n)).isoformat() for n in range(6, -1, -1)))


def period_of_week(label: str) -> Period:
    """`2026-W47`: the nights Monday to Sunday of that ISO week."""
    match = _WEEK.match(label.strip())
    try:
        if match is None:
            raise ValueError
        sunday = date.fromisocalendar(int(match.group(1)), int(match.group(2)), 7)
    except ValueError:
        raise SheetbotError(f"--week {label!r} is not an ISO week: write it as YYYY-Www, e.g. 2026-W47") from None
    return nights_ending(sunday)


def weekly_moment(now: datetime, cfg: WeeklyConfig, tz: ZoneInfo) -> datetime:
    """This ISO week's digest time (the week ``now`` is in, in the board's timezone)."""
    local = now.astimezone(tz).date()
    monday = local - timedelta(days=local.weekday())
    return datetime.combine(monday + timedelta(days=WEEK_DAYS.index(cfg.day)), cfg.at, tzinfo=tz)


def digest_period(moment: datetime) -> Period:
    """The seven nights a digest sent at ``moment`` covers: the last one is the night before its day."""
    return nights_ending(moment.date() - timedelta(days=1))


# -- the figures --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Level:
    key: str  # the target's YAML key (p95 per priority: p95_latency_s.P0)
    name: str
    value: float | None
    shown: str
    target: float | None
    target_shown: str
    met: bool | None  # None: no target, or nothing to judge


@dataclass(frozen=True)
class Recovery:
    workflow: str
    kind: str
    night: str
    hours: float
    recovered: bool


@dataclass
class WeeklyReport:
    week: str
    nights: list[str]
    levels: list[Level] = field(default_factory=list)
    recoveries: list[Recovery] = field(default_factory=list)
    failures: list[tuple[str, str, int]] = field(default_factory=list)  # (outcome, reason, rows)
    rework_notes: list[tuple[str, int]] = field(default_factory=list)
    outliers: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)  # (task, workflow, figure)
    changes: list[str] = field(default_factory=list)

    @property
    def missed(self) -> list[Level]:
        return [level for level in self.levels if level.met is False]

    def as_dict(self) -> dict[str, object]:
        return asdict(self) | {"missed": [level.key for level in self.missed]}


def data(text: str, limit: int = 60) -> str:
    """Cell text or a reason, made safe to show: no secret, no personal data, one line, cut short."""
    one_line = " ".join(mask_text(scrub(text)).split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


def _reason(run: TaskRun) -> str:
    """Why a row failed or was deferred, without the outcome repeated in front ("deferred: …")."""
    text = run.reason.strip()
    text = text[len(run.outcome) + 1 :].strip() if text.startswith(f"{run.outcome}:") else text
    return data(text or "(no reason recorded)")


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _level(key: str, name: str, value: float | None, shown: str, target: float | None, *, most: bool) -> Level:
    """``most``: the target is a ceiling (latency, hours, cost); else a floor (success rate)."""
    met = None if value is None or target is None else (value <= target if most else value >= target)
    if target is None:
        target_shown = "–"
    elif key == "success_rate":
        target_shown = f"≥ {target:.1%}"
    elif key == "cost_per_task_usd":
        target_shown = f"≤ ${target:g}"
    elif key == "recover_h":
        target_shown = f"≤ {target:g} h"
    else:
        target_shown = f"≤ {target:g} s"
    return Level(key, name, value, shown, target, target_shown, met)


def _levels(runs: Sequence[TaskRun], recoveries: Sequence[Recovery], targets: WeeklyTargets) -> list[Level]:
    done = [r for r in runs if r.outcome == "done"]
    ended = len(runs)
    rate = len(done) / ended if ended else None
    out = [
        _level(
            "success_rate",
            "success rate",
            rate,
            "–" if rate is None else f"{rate:.1%} ({len(done)}/{ended})",
            targets.success_rate,
            most=False,
        )
    ]
    ceilings: dict[str, float] = {str(p): s for p, s in targets.p95_latency_s.items()}
    priorities = sorted({r.priority or "P?" for r in done} | set(ceilings))
    for priority in priorities:
        p95 = _p95([r.latency_s for r in done if (r.priority or "P?") == priority])
        limit = ceilings.get(priority)
        shown = "–" if p95 is None else f"{p95:.1f} s"
        out.append(_level(f"p95_latency_s.{priority}", f"p95 latency {priority}", p95, shown, limit, most=True))
    worst = max((r.hours for r in recoveries), default=None)
    shown = "no failure alert" if worst is None else f"{worst:.1f} h worst of {len(recoveries)}"
    out.append(_level("recover_h", "time to recover", worst, shown, targets.recover_h, most=True))
    cost = sum(r.cost_usd for r in runs)
    per = cost / len(done) if done else None
    shown = "–" if per is None else f"${per:.6f} (${cost:.4f} / {len(done)})"
    out.append(_level("cost_per_task_usd", "cost per task", per, shown, targets.cost_per_task_usd, most=True))
    return out


def _recoveries(state: State, period: Period, tz: ZoneInfo, now: datetime) -> list[Recovery]:
    start, _ = period.bounds(tz)
    seen: dict[tuple[str, str, str], datetime] = {}  # (workflow or "" for the whole night, kind, night)
    for entry in state.audit_since(("notified", "alert"), start - timedelta(days=2)):
        detail = json.loads(entry.detail)
        kind = str(detail.get("kind", ""))
        if kind not in FAILURE_KINDS:
            continue
        keys = detail.get("keys") or [f":{detail.get('night')}"]
        for key in keys if isinstance(keys, list) else []:
            workflow, _, night = str(key).rpartition(":")
            if night in period.nights:
                seen.setdefault((workflow, kind, night), datetime.fromisoformat(entry.at))
    if not seen:
        return []
    later = sorted(n for n in state.recorded_nights(400) if n >= period.nights[0])
    runs = state.task_runs(later)
    finished = {n["night"]: at for n in state.nights(400) if (at := n["run_finished_at"])}
    by_night: dict[tuple[str, str], Counter[str]] = {}
    for r in runs:
        by_night.setdefault((r.night, r.workflow), Counter())[r.outcome] += 1
    incidents: dict[tuple[str, str], tuple[datetime, str]] = {}  # (workflow, night) → its first alert
    for (workflow, kind, night), alerted in sorted(seen.items(), key=lambda item: item[1]):
        hit = {w for (n, w), c in by_night.items() if n == night and (c["failed"] or c["deferred"])}
        for name in {workflow} if workflow else hit or {w for (n, w) in by_night if n == night}:
            incidents.setdefault((name, night), (alerted, kind))
    out = []
    for (name, night), (alerted, kind) in sorted(incidents.items(), key=lambda item: (item[1][0], item[0])):
        ok_at = next(
            (
                datetime.fromisoformat(finished[n])
                for n in later
                if n > night
                and n in finished
                and (c := by_night.get((n, name)))
                and c["done"]
                and not (c["failed"] or c["deferred"])
            ),
            None,
        )
        hours = max(((ok_at or now) - alerted).total_seconds() / 3600, 0.0)
        out.append(Recovery(name, kind, night, round(hours, 2), ok_at is not None))
    return out


def _changes(state: State, period: Period, config: Config) -> list[tuple[datetime, str]]:
    """Workflows added, prompts or guidelines edited (each version against the one before it), pauses, resumes."""
    start, end = period.span(config.schedule, config.tz)
    out: list[tuple[datetime, str]] = []
    previous: dict[str, dict[str, object]] = {}
    for entry in state.audit_entries("workflow_version"):
        detail = json.loads(entry.detail)
        name, at = str(detail.get("workflow")), datetime.fromisoformat(entry.at)
        before, previous[name] = previous.get(name), detail
        if not start <= at < end:
            continue
        if before is None:
            out.append((at, f"{data(name, 40)}: added"))
        else:
            parts = [p for p in ("prompt", "guidelines") if before.get(f"{p}_hash") != detail.get(f"{p}_hash")]
            out.append((at, f"{data(name, 40)}: {' and '.join(parts)} edited"))
    for entry in state.audit_since(("pause", "resume"), start - timedelta(days=2)):
        at, detail = datetime.fromisoformat(entry.at), json.loads(entry.detail)
        if not start <= at < end:
            continue
        if entry.event == "pause" and not detail.get("workflows"):
            continue  # an escalation that found every workflow paused already changed nothing
        if entry.event == "pause":
            names = ", ".join(data(str(w), 40) for w in detail.get("workflows", [])) or "nothing"
            out.append((at, f"paused {names}: {data(str(detail.get('reason', '')))}"))
        else:
            out.append((at, f"resumed {data(str(detail.get('workflow')), 40)}"))
    return sorted(out, key=lambda item: item[0])


def weekly_report(state: State, config: Config, period: Period, *, now: datetime) -> WeeklyReport:
    tz = config.tz
    targets = config.weekly.targets if config.weekly is not None else WeeklyTargets()
    runs = state.task_runs(period.nights)
    recoveries = _recoveries(state, period, tz, now)
    report = WeeklyReport(week=period.label, nights=list(period.nights), recoveries=recoveries)
    report.levels = _levels(runs, recoveries, targets)
    reasons = Counter((r.outcome, _reason(r)) for r in runs if r.outcome != "done")
    report.failures = [(o, reason, n) for (o, reason), n in reasons.most_common(8)]
    notes: Counter[str] = Counter()
    shown: dict[str, str] = {}
    for _, text in state.rework_notes(period.nights):
        if key := " ".join(text.casefold().split()):
            notes[key] += 1
            shown.setdefault(key, data(text))
    report.rework_notes = [(shown[k], n) for k, n in notes.most_common(5)]
    measures: list[tuple[str, Callable[[TaskRun], float], Callable[[TaskRun], str]]] = [
        ("most expensive", lambda r: r.cost_usd, lambda r: f"${r.cost_usd:.4f}"),
        ("slowest", lambda r: r.latency_s, lambda r: f"{r.latency_s:.1f} s"),
        ("longest output", lambda r: float(r.output_chars), lambda r: f"{r.output_chars} chars"),
    ]
    for name, figure, show in measures:
        top = sorted((r for r in runs if figure(r) > 0), key=lambda r: (-figure(r), r.night, r.task_id))[:3]
        report.outliers[name] = [(data(r.task_id, 24), f"{data(r.workflow, 24)} {r.night[5:]}", show(r)) for r in top]
    report.changes = [f"{at.astimezone(tz):%a %m-%d} {line}" for at, line in _changes(state, period, config)]
    return report


# -- what people read ---------------------------------------------------------------------------------
def _fit(line: str) -> str:
    return line if len(line) <= WIDTH else line[: WIDTH - 1] + "…"


def _mark(level: Level) -> str:
    return {True: "✔", False: "✘", None: " "}[level.met]


def sections(report: WeeklyReport) -> list[tuple[str, list[str]]]:
    levels = [f"{_mark(lv)} {lv.name:<18} {lv.shown:<34} target {lv.target_shown}" for lv in report.levels]
    levels += [
        f"  {r.workflow} after {r.kind} (night {r.night}): "
        + (f"recovered in {r.hours:.1f} h" if r.recovered else f"not recovered yet ({r.hours:.1f} h)")
        for r in report.recoveries[:5]
    ]
    failures = [f"{n} {outcome}: {reason}" for outcome, reason, n in report.failures] or ["none"]
    notes = [f"{n}× {text}" for text, n in report.rework_notes] or ["none"]
    outliers = [
        f"{name if i == 0 else '':<15} {figure:>14}  {task} ({workflow})"
        for name, rows in report.outliers.items()
        for i, (task, workflow, figure) in enumerate(rows)
    ] or ["none"]
    out = [
        ("Service levels", levels),
        ("Failures and dead letters by reason", failures),
        ("Most frequent rework notes", notes),
        ("Outliers", outliers),
        ("What changed", report.changes or ["nothing"]),
    ]
    return [(heading, [_fit(line) for line in lines]) for heading, lines in out]


def weekly_text(report: WeeklyReport) -> str:
    lines = [f"sheetbot weekly review {report.week}: nights {report.nights[0]} – {report.nights[-1]}"]
    for heading, body in sections(report):
        lines += ["", f"{heading}:", *(f"  {line}" for line in body)]
    return "\n".join(_fit(line) for line in lines)


def _inert(line: str) -> str:
    """A line for rich channels: Slack reads `<!channel>` or `<url|text>` in a section as a command or a
    link, so its three control characters are escaped (it shows them as typed); cell text stays data."""
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def weekly_message(report: WeeklyReport, *, board: str) -> Message:
    return Message(
        kind="weekly_digest",
        title=f"sheetbot weekly review {report.week}",
        text=weekly_text(report) + f"\n\nreview on {board}",
        severity="warning" if report.missed else "info",
        facts={"night": report.week, "week": report.week, "missed": [lv.key for lv in report.missed]},
        sections=[(heading, [_inert(line) for line in lines]) for heading, lines in sections(report)],
    )


def missed_alerts(report: WeeklyReport, cfg: WeeklyConfig) -> list[Message]:
    """One alert per target missed; keyed by target and week, so `deliver` sends each once."""
    span = f"nights {report.nights[0]} – {report.nights[-1]}"
    return [
        Message(
            kind="weekly_target_missed",
            title=f"sheetbot week {report.week}: {lv.name} missed its target",
            text=f"{lv.name}: {lv.shown}, target {lv.target_shown} ({span}).",
            severity="warning",
            facts={"night": report.week, "target": lv.key, "keys": [f"{lv.key}:{report.week}"]},
            route=cfg.route,
        )
        for lv in report.missed
    ]
