"""`sheetbot serve`: the always-on process. Each tick it does what is due (see `scheduler` for the
missed-run policy: we catch up from the state), then sleeps until the next moment something may be.

Time and sleep are passed in: production uses the system clock and a stop event's ``wait`` (so
SIGTERM wakes it at once); tests pass a fake clock whose sleep moves the clock, and drive whole
days in milliseconds. A phase that fails is logged, shown on /healthz and retried after
``retry_after_s``; it never ends the process. On SIGTERM/SIGINT no new work starts, calls in
flight get a short grace, stored outputs are written back, and the process exits 0.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta

from sheetbot.boards.capabilities import Fingerprinted
from sheetbot.clock import Clock
from sheetbot.config.models import Config
from sheetbot.morning.messages import alert, already_sent, morning_message, record_sent, run_alerts
from sheetbot.morning.weekly import digest_period, weekly_moment
from sheetbot.night.context import NightContext
from sheetbot.night.expire import expire, left_over
from sheetbot.night.stopping import GRACE_S
from sheetbot.night.urgent import poll_every
from sheetbot.notify.base import Delivery, Fanout, Message, Notifier
from sheetbot.safety import secrets
from sheetbot.service.health import Health, failed_outcome
from sheetbot.service.process_lock import install_stop_handlers
from sheetbot.service.scheduler import Day, Facts, day_at, due, next_wake
from sheetbot.status import Status

log = logging.getLogger("sheetbot.service.serve")

OpenContext = Callable[[], AbstractContextManager[NightContext]]

#: How often serve re-projects the state onto a board it cannot watch cheaply (Google Sheets, Airtable: a
#: whole read each time); a workbook on disk is watched every tick by its size and mtime instead.
REMOTE_REPAIR_EVERY_S = 15 * 60


def board_fingerprint(board: object) -> object | None:
    """What changes whenever someone saves the board (a workbook's mtime and size); None: no cheap way to tell."""
    return board.fingerprint() if isinstance(board, Fingerprinted) else None


def said_of_summary(night: str, delivery: Delivery | None) -> str:
    """What the log and /healthz say about the morning summary: "sent" only when a channel got it."""
    if delivery is None:
        return f"summary of night {night} already sent"
    if delivery.reached:
        failed = f" (not to {', '.join(delivery.failed)}: tried again later)" if delivery.failed else ""
        return f"summary of night {night} sent to {', '.join(delivery.reached)}{failed}"
    if delivery.failed:
        return f"summary of night {night} NOT sent: {', '.join(delivery.failed)} failed; tried again later"
    return f"summary of night {night} not sent: no notify channel is configured (notify: in the YAML)"


class Server:
    def __init__(
        self,
        *,
        config: Config,
        open_context: OpenContext,
        clock: Clock,
        sleep: Callable[[float], object],
        notifier: Notifier | Fanout,
        health: Health | None = None,
        stop: threading.Event | None = None,
        max_sleep_s: float = 60.0,
        retry_after_s: float = 300.0,
        grace_s: float = GRACE_S,
    ) -> None:
        self.config = config
        self.open_context = open_context
        self.clock = clock
        self.sleep = sleep
        self.notifier = notifier
        self.health = health or Health()
        self.stop = stop or threading.Event()
        self.max_sleep_s = max_sleep_s
        self.retry_after = timedelta(seconds=retry_after_s)
        #: How long a model call in flight may still answer once a stop was asked for, before it is cancelled.
        self.grace_s = grace_s
        self.last_harvest: datetime | None = None
        #: The urgent daytime lane (sheetbot/night/urgent.py): how often it looks, and when it last did.
        self.urgent_every = poll_every(config)
        self.last_urgent: datetime | None = None
        self.blocked: dict[str, datetime] = {}
        self.done: list[tuple[str, datetime]] = []
        #: The board as serve last wrote or repaired it, and when: a change means someone saved it since.
        self.board_seen: object | None = None
        self.last_repair: datetime | None = None

    def stopping(self) -> bool:
        return self.stop.is_set()

    # -- deciding ---------------------------------------------------------------------
    def day(self) -> Day:
        return day_at(self.clock.now(), self.config.schedule, self.config.tz)

    def facts(self, ctx: NightContext, day: Day) -> Facts:
        nights = {n["night"]: n for n in ctx.state.nights(limit=7)}
        tonight = nights.get(day.tonight.night)
        last = nights.get(day.last.night)
        locked_at = tonight["locked_at"] if tonight is not None else None
        working = ctx.state.tasks_with_status(Status.LOCKED, Status.RUNNING)
        return Facts(
            # A lock by hand before the cutoff does not count: rows added until the cutoff still go tonight.
            tonight_locked=bool(locked_at and datetime.fromisoformat(locked_at) >= day.tonight.cutoff),
            work_left_tonight=any(t.night == day.tonight.night for t in working),
            work_left_last=bool(left_over(ctx, day.tonight.night)),
            last_recorded=bool(last is not None and last["locked_at"]),
            last_summary_sent=already_sent(ctx.state, "morning_summary", day.last.night),
            last_harvest=self.last_harvest,
            weekly_due=self._weekly_due(ctx, day),
            urgent_every=self.urgent_every,
            last_urgent=self.last_urgent,
        )

    def _weekly_due(self, ctx: NightContext, day: Day) -> bool:
        """The digest time of this week passed, its nights ran, and its digest is not recorded as sent (restarts
        included: the record is in the state's audit log)."""
        if self.config.weekly is None:
            return False
        moment = weekly_moment(day.now, self.config.weekly, self.config.tz)
        if day.now < moment:
            return False
        period = digest_period(moment)
        if not set(period.nights) & set(ctx.state.recorded_nights(14)):  # a week of nothing: no digest to send
            return False
        return not already_sent(ctx.state, "weekly_digest", period.label)

    def tick(self) -> list[str]:
        """Do every phase that is due now; returns their names."""
        day = self.day()
        with self.open_context() as ctx:
            actions = due(day, self.facts(ctx, day), self.config.schedule)
        done = []
        for action in actions:
            if self.stopping():
                break
            if self.blocked.get(action, day.now) > self.clock.now():
                continue
            if self._attempt(action, day):
                done.append(action)
        if not self.stopping():
            self._watch_board()
        return done

    def _watch_board(self) -> None:
        """Someone saved the workbook (an old copy over the night's outputs, or typed over sheetbot's cells):
        put back what the state holds, within a tick. Not a phase of the schedule, so not in ``done``."""
        now = self.clock.now()
        if self.blocked.get("repair", now) > now:
            return
        try:
            with self.open_context() as ctx:
                seen = board_fingerprint(ctx.board)
                if seen is None:
                    due = self.last_repair is None or (now - self.last_repair).total_seconds() >= REMOTE_REPAIR_EVERY_S
                else:
                    due = seen != self.board_seen
                if not due:
                    return
                from sheetbot.night.repair import repair

                ident = repair(ctx)
                self.board_seen, self.last_repair = board_fingerprint(ctx.board), now
        except Exception as exc:  # like a phase: logged, on /healthz, tried again later; never ends the process
            log.exception("repair failed: %s", exc, extra={"phase": "repair"})
            self.health.record("repair", at=now, ok=False, outcome=failed_outcome(exc))
            self.blocked["repair"] = self.clock.now() + self.retry_after
            return
        self.blocked.pop("repair", None)
        if ident.repaired or ident.claims:
            outcome = f"put back {ident.repaired} row(s) from the state, gave {len(ident.claims)} row(s) an id"
            log.info("repair: %s", outcome, extra={"phase": "repair"})
            self.health.record("repair", at=now, ok=True, outcome=outcome)

    def _attempt(self, action: str, day: Day) -> bool:
        started = self.clock.now()
        try:
            with self.open_context() as ctx:
                outcome = getattr(self, f"_do_{action}")(ctx, day)
                self.board_seen = board_fingerprint(ctx.board)  # our own save is not someone else's
        except Exception as exc:  # a phase failing must not end the process: log, show on /healthz, retry later
            log.exception("%s failed: %s", action, exc, extra={"phase": action, "night": day.tonight.night})
            self.health.record(action, at=started, ok=False, outcome=failed_outcome(exc))
            self.blocked[action] = self.clock.now() + self.retry_after
            if action == "run":
                self._alert_run_failed(day, exc)
            return False
        self.blocked.pop(action, None)
        self.health.record(action, at=started, ok=True, outcome=outcome)
        self.done.append((action, started))
        log.info("%s: %s", action, outcome, extra={"phase": action, "night": day.tonight.night})
        return True

    def _alert_run_failed(self, day: Day, exc: Exception) -> None:
        """The window is open, rows are locked and the run cannot start: people hear it now, not at 09:00."""
        text = f"the run could not start: {type(exc).__name__}: {exc}. sheetbot retries; rows stay locked."
        try:
            with self.open_context() as ctx:
                self._notify(ctx, alert("night_not_started", day.tonight.night, "the night did not start", text))
        except Exception:
            log.exception("could not send the night_not_started alert")

    # -- the phases -------------------------------------------------------------------
    def _do_expire(self, ctx: NightContext, day: Day) -> str:
        report = expire(ctx, day.tonight.night)
        for night, count in sorted(report.deferred.items()):
            if night in report.not_started:
                kind, title = "night_not_started", "the night did not start"
            else:
                kind, title = "night_not_finished", "the night did not finish"
            text = f"{count} row(s) were still waiting when the window ended; they are deferred to a later night."
            self._notify(ctx, alert(kind, night, title, text, deferred=count))
            self.health.night(night, ok=False, outcome=title)
        return f"deferred {report.deferred.total()} row(s) left from nights {', '.join(sorted(report.deferred))}"

    def _do_lock(self, ctx: NightContext, day: Day) -> str:
        from sheetbot.night.lock import lock

        report = lock(ctx)
        return f"night {report.night}: locked {report.locked.total()} row(s)"

    def _do_run(self, ctx: NightContext, day: Day) -> str:
        from sheetbot.night.run import run

        since = ctx.now()
        report = run(ctx, until=day.tonight.end, stop=self.stopping, grace_s=self.grace_s)
        for message in run_alerts(report, ctx.state, since=since):
            self._notify(ctx, message)
        if report.stopped:
            return f"night {report.night}: stopped early; {report.done.total()} done, the rest stay locked"
        self.health.night(report.night, ok=report.drained, outcome="drained" if report.drained else "did not drain")
        return (
            f"night {report.night}: {report.done.total()} done, {report.failed.total()} failed, "
            f"{report.deferred.total()} deferred, ${report.cost_usd:.4f}"
        )

    def _do_harvest(self, ctx: NightContext, day: Day) -> str:
        from sheetbot.morning.escalation import after_harvest
        from sheetbot.night.harvest import harvest

        report = harvest(ctx)
        self.last_harvest = ctx.now()
        try:  # drift, review capacity and escalations: never a reason for the harvest to fail
            alerts = after_harvest(ctx.state, ctx.config, self.notifier, now=ctx.now())
        except Exception:
            log.exception("alerts after the harvest failed")
            alerts = []
        return f"{report.decisions.total()} decision(s), {report.waiting} waiting, {len(alerts)} alert(s)"

    def _do_urgent(self, ctx: NightContext, day: Day) -> str:
        from sheetbot.night.urgent import run_urgent

        report = run_urgent(ctx, stop=self.stopping, grace_s=self.grace_s)
        self.last_urgent = ctx.now()
        return report.describe()

    def _do_summary(self, ctx: NightContext, day: Day) -> str:
        harvested = self._do_harvest(ctx, day)
        message = morning_message(ctx.state, day.last.night, board=ctx.board.describe())
        delivery = self._notify(ctx, message)
        return f"{said_of_summary(day.last.night, delivery)}; harvest: {harvested}"

    def _do_weekly(self, ctx: NightContext, day: Day) -> str:
        """The weekly review to the notify channels, then one alert per target missed (once per week each)."""
        from sheetbot.morning.alerts import deliver
        from sheetbot.morning.weekly import missed_alerts, weekly_message, weekly_report

        assert self.config.weekly is not None  # due only when configured
        period = digest_period(weekly_moment(day.now, self.config.weekly, self.config.tz))
        report = weekly_report(ctx.state, self.config, period, now=ctx.now())
        delivery = self._notify(ctx, weekly_message(report, board=ctx.board.describe()))
        alerts = deliver(ctx.state, self.notifier, missed_alerts(report, self.config.weekly), now=ctx.now())
        said = said_of_summary(period.label, delivery).replace("summary of night", "weekly review")
        return f"{said}; {len(alerts)} target(s) missed alerted"

    def _notify(self, ctx: NightContext, message: Message) -> Delivery | None:
        """Send once; which channels got it (None: it had been delivered before)."""
        night = str(message.facts.get("night", ""))
        if already_sent(ctx.state, message.kind, night):
            return None
        try:
            if isinstance(self.notifier, Fanout):
                delivery = self.notifier.deliver(message)
            else:
                ok = self.notifier.send(message)
                delivery = Delivery(reached=(self.notifier.name,)) if ok else Delivery(failed=(self.notifier.name,))
        except Exception:  # a notifier must never break the night, even a buggy one
            log.exception("notification %s failed", message.kind)
            delivery = Delivery(failed=(getattr(self.notifier, "name", "notifier"),))
        record_sent(ctx.state, message, now=ctx.now(), delivered=delivery.ok)
        return delivery

    # -- the loop ---------------------------------------------------------------------
    def wake_at(self) -> datetime:
        day = self.day()
        weekly = self.config.weekly
        wake = next_wake(
            day,
            self.config.schedule,
            self.config.tz,
            last_harvest=self.last_harvest,
            weekly_at=None if weekly is None else weekly_moment(day.now, weekly, self.config.tz),
            urgent_every=self.urgent_every,
            last_urgent=self.last_urgent,
        )
        later = [t for t in self.blocked.values() if t > day.now]
        return min([wake, *later])

    def loop(self, *, until: datetime | None = None) -> None:
        """Tick and sleep until stopped (or, for tests, until the clock reaches ``until``)."""
        with self.open_context() as ctx:  # /healthz tells the truth about last night from the first request
            for last in [n for n in ctx.state.nights(limit=7) if n.get("run_finished_at")][:1]:
                ok = bool(last.get("drained"))
                self.health.night(last["night"], ok=ok, outcome="drained" if ok else "did not drain or finish")
        while not self.stopping():
            self.tick()
            now = self.clock.now()
            if self.stopping() or (until is not None and now >= until):
                break
            wake = self.wake_at() if until is None else min(self.wake_at(), until)
            wait = min(max((wake - now).total_seconds(), 0.0), self.max_sleep_s)
            self.sleep(wait)
            jumped = (self.clock.now() - now).total_seconds() - wait
            if jumped > 120:
                log.warning("the clock jumped %.0f s past the planned wake-up (machine slept?): catching up", jumped)
        log.info("stopped")


def serve_forever(
    config_path: str,
    *,
    wait: bool = False,
    env: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    stop: threading.Event | None = None,
    grace_s: float = GRACE_S,
) -> int:
    """The production wiring: system clock, signals, notifications, /healthz and /metrics, the board lock.

    ``clock``, ``stop`` and ``grace_s`` are for tests, which run this very function in-process (so coverage
    sees it): a clock inside the night window, a stop event they set themselves (SIGTERM and SIGINT set it
    too) and a grace short enough that the stop path takes no real time to speak of."""
    from sheetbot.clock import SystemClock
    from sheetbot.config.load import load_config
    from sheetbot.errors import ConfigError
    from sheetbot.notify.factory import build_fanout
    from sheetbot.service.http_app import Intake, start_http_server
    from sheetbot.service.leader import serve_leadership
    from sheetbot.service.scheduler import describe_jobs
    from sheetbot.service.wiring import open_context

    config = load_config(config_path)
    clock = clock or SystemClock()
    env = dict(os.environ) if env is None else env
    secrets.learn_config(config, env)  # from here on every exit masks the values the YAML names
    stop = install_stop_handlers(stop or threading.Event())
    notifier, _ = build_fanout(config.notify, env)
    health = Health()
    http = None
    # One guard for the board: serve's phases hold it, the intake API's append waits for it (a row appended
    # while a phase saves the workbook could be lost in that save).
    guard = threading.RLock()

    def board_context() -> Iterator[NightContext]:
        with guard, open_context(config_path, config=config, env=env, clock=clock) as ctx:
            yield ctx

    if config.api is not None and config.serve.health_port is None:
        log.warning("api: is set but serve.health_port is not: the intake API is not served (set a port)")
    if config.serve.health_port is not None:
        from sheetbot.service.prometheus import metrics_registry

        api = None
        if config.api is not None:
            token = (env.get(config.api.token_env) or "").strip()
            if not token:
                raise ConfigError(f"the environment variable {config.api.token_env} is not set (api.token_env)")
            api = Intake(
                config,
                lambda: open_context(config_path, config=config, env=env, clock=clock),
                token,
                guard,
                leading=lambda: health.role != "standby",
            )
        http = start_http_server(
            health,
            host=config.serve.health_host,
            port=config.serve.health_port,
            metrics=metrics_registry(config),
            api=api,
        )
        served = ", the intake API on /tasks" if api is not None else ""
        log.info("health on http://%s:%d/healthz, Prometheus metrics on /metrics%s", *http.server_address[:2], served)
    try:
        with serve_leadership(config, health, stop, wait=wait) as lease:
            if lease is None:
                return 0  # stopped while a standby
            for line in describe_jobs(config.schedule, config.timezone):
                log.info("schedule: %s", line)
            server = Server(
                config=config,
                open_context=contextmanager(board_context),
                clock=clock,
                sleep=stop.wait,
                notifier=notifier,
                health=health,
                stop=stop,
                grace_s=grace_s,
            )
            server.loop()
            if lease.lost():
                log.error("stopped: this sheetbot lost the leadership of the board; start it again as a standby")
                return 1
    finally:
        if http is not None:
            http.shutdown()
            http.server_close()
    return 0
