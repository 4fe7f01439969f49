"""The commands: each reads what it needs, calls one function and prints what came back.

The YAML is read before the night machinery and the provider SDKs are imported (they are imported
inside each command), so a wrong path or a typo fails in a fraction of a second.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sheetbot.cli.console import err, fitted, out, progress_bar
from sheetbot.errors import SheetbotError
from sheetbot.night.context import NightContext, no_progress
from sheetbot.night.context import Progress as ProgressFn

if TYPE_CHECKING:
    from sheetbot.state import State


def _until(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SheetbotError(f"--until {text!r} is not a time: use ISO format, e.g. 2026-11-24T05:00+01:00") from None
    if moment.tzinfo is None:
        raise SheetbotError(f"--until {text!r} needs a timezone, e.g. {text}+01:00")
    return moment


def cmd_check(args: argparse.Namespace) -> int:
    from sheetbot.cli.check import run_check

    with progress_bar("check") as progress:  # reading a big workbook, probing credentials: seconds
        progress(0, 0, "reading the YAML, the board and the credentials")
        problems = run_check(args.config)
    if problems:
        for line in problems:
            out.print(f"✗ {line}", markup=False)
        out.print(f"{len(problems)} problem(s) in {args.config}", markup=False)
        return 1
    out.print(f"✓ {args.config} is valid; the board and credentials look right", markup=False)
    from sheetbot.batch.estimate import tonight
    from sheetbot.config.load import load_config

    for estimate in tonight(load_config(args.config)):  # tonight's locked rows: live vs batch vs caching
        out.print(f"  {estimate.line()}", markup=False)
    return 0


@contextmanager
def _context(args: argparse.Namespace, progress: ProgressFn = no_progress) -> Iterator[NightContext]:
    """The night's context, with the YAML read before the night machinery and the provider SDKs are
    imported: a wrong path or a typo fails in a fraction of a second, not after a second of imports."""
    from sheetbot.config.load import load_config

    config = load_config(args.config)
    from sheetbot.service.leader import leadership
    from sheetbot.service.wiring import open_context

    # One sheetbot at a time per board: a running `serve` or another command is named, or waited for (the lock
    # file with SQLite, the leader lock with PostgreSQL: sheetbot/service/leader.py).
    with (
        leadership(config, args.command, wait=getattr(args, "wait", False), sleep=time.sleep, poll_s=0.5),
        open_context(args.config, config=config, progress=progress) as ctx,
    ):
        ctx.adopt_unknown = getattr(args, "adopt_unknown", False)  # rows the state does not know: night/repair.py
        yield ctx


def cmd_init(args: argparse.Namespace) -> int:
    with progress_bar("init") as progress, _context(args, progress) as ctx:
        # The columns the workflows' templates name ({{brand}}, {{keywords}}) too: without them `lock`
        # fails every row of those workflows, and `check` says so.
        progress(0, 2, "adding missing columns")  # each step reads or saves the whole workbook: seconds
        added = ctx.board.ensure_schema(ctx.schema(with_template_columns=True))
        where = ctx.board.describe()
        from sheetbot.morning.dashboard import refresh_dashboard

        progress(1, 2, "drawing the dashboard")
        dashboard = refresh_dashboard(ctx, force=True)  # the Dashboard, drawn from what the state holds
        progress(2, 2, "done")
    if dashboard.problem:
        err.print(f"sheetbot: warning: {dashboard.problem}", markup=False)
    if added:
        out.print(
            f"{where}: added columns {', '.join(added)}; review dropdown and frozen header in place",
            markup=False,
        )
    else:
        out.print(f"{where}: every column is there; nothing to change", markup=False)
    return 0


def cmd_lock(args: argparse.Namespace) -> int:
    with progress_bar("lock") as progress, _context(args, progress) as ctx:
        from sheetbot.morning.summary import describe_lock
        from sheetbot.night.lock import lock

        report = lock(ctx)
    out.print(describe_lock(report), markup=False)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    until = _until(args.until)
    with progress_bar("running") as progress, _context(args, progress) as ctx:
        import threading

        from sheetbot.morning.summary import describe_run
        from sheetbot.night.outcomes import exit_code
        from sheetbot.night.run import run
        from sheetbot.service.process_lock import install_stop_handlers

        stop = install_stop_handlers(threading.Event())  # SIGTERM/Ctrl-C: store what arrived, write it, exit
        report = run(ctx, until=until, stop=stop.is_set)
    out.print(describe_run(report), markup=False)
    return exit_code(report.deferred_by)  # 3: rows deferred because a provider failed (README, exit codes)


def cmd_harvest(args: argparse.Namespace) -> int:
    with progress_bar("harvest") as progress, _context(args, progress) as ctx:
        from sheetbot.morning.summary import describe_harvest
        from sheetbot.night.harvest import harvest

        report = harvest(ctx)
        from sheetbot.morning.escalation import after_harvest
        from sheetbot.notify.factory import build_fanout

        channels, _ = build_fanout(ctx.config.notify, ctx.env)
        alerts = after_harvest(ctx.state, ctx.config, channels, now=ctx.now())
    out.print(describe_harvest(report), markup=False)
    from sheetbot.morning.dashboard import describe_dashboard
    from sheetbot.morning.on_approve import describe_actions

    for line in describe_actions(report.actions) + describe_dashboard(report.dashboard):
        out.print(line, markup=False)
    for message in alerts:
        out.print(f"alert ({message.severity}): {message.title}", markup=False)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """One YAML file: one board, as always. Several, or a folder: many boards in one process."""
    from sheetbot.config.load import DEFAULT_CONFIG
    from sheetbot.service.serve import serve_forever

    paths = args.config or [str(DEFAULT_CONFIG)]
    if len(paths) == 1 and not Path(paths[0]).is_dir():
        return serve_forever(paths[0], wait=args.wait)
    from sheetbot.service.many import serve_many

    return serve_many(paths, wait=args.wait)


def cmd_report(args: argparse.Namespace) -> int:
    from sheetbot.config.load import load_config
    from sheetbot.morning.metrics import night_metrics
    from sheetbot.morning.self_check_report import self_check_lines, with_self_check
    from sheetbot.morning.summary import metrics_table, trend_table
    from sheetbot.morning.urgent import urgent_table, with_urgent
    from sheetbot.state import State

    config = load_config(args.config)
    if getattr(args, "week", None) is not None:  # issue 14 item 5
        from sheetbot.cli.weekly import week_lines

        print(week_lines(config, args.week, as_json=args.json))
        return 0
    metrics = []
    entries: list[dict[str, object]] = []
    checks: list[str] = []  # the self-check against the reviewers' decisions, per workflow (issue 13 item 4)
    if config.state_exists:  # a fresh install has no nights: that is not an error
        with State(config.state_target) as state:
            metrics = with_urgent(night_metrics(state, nights=args.nights, prices=config.prices), state, config)
            entries = with_self_check(state, metrics)
            checks = self_check_lines(state, config, sorted({m.night for m in metrics}))
    if args.json:
        print(json.dumps(entries, indent=2))
    elif not metrics:
        out.print("no nights recorded yet: run `sheetbot lock` and `sheetbot run` first", markup=False)
    else:
        tables = [metrics_table(metrics)] + ([trend_table(metrics)] if len({m.night for m in metrics}) > 1 else [])
        from sheetbot.morning.model_costs import model_table, shows_models

        tables += [model_table(metrics)] if shows_models(config, metrics) else []  # the fallback's trade
        from sheetbot.morning.gate_report import gates_table

        tables += [t for t in [gates_table(metrics)] if t is not None]  # review gates between steps (issue 14)
        tables += [t for t in [urgent_table(metrics)] if t is not None]  # the daytime lane, apart
        for table in tables:  # split into parts on a narrow terminal (console.fitted): every figure stays
            for part in fitted(table, out):
                out.print(part)
        for line in checks:
            out.print(line, markup=False)
    if not args.json:
        from sheetbot.cli.trial import trial_lines

        for line in trial_lines(config):  # trials before launch, against trial.launch_bar
            out.print(line, markup=False)
    return 0


def cmd_trial(args: argparse.Namespace) -> int:
    with progress_bar("trial") as progress, _context(args, progress) as ctx:
        from sheetbot.cli.trial import harvest_trial, start_trial, trial_lines
        from sheetbot.morning.summary import describe_harvest

        if args.harvest:
            out.print(describe_harvest(harvest_trial(ctx, args.workflow)), markup=False)
        else:
            report = start_trial(ctx, args.workflow, sample=args.sample, seed=args.seed)
            done = report.ran.done.total() if report.ran else 0
            out.print(
                f"{report.label}: {report.copied} of {report.eligible} {args.workflow} rows copied to "
                f"[{report.sheet}], {done} outputs ready for review there; then run "
                f"`sheetbot trial {args.workflow} --harvest`",
                markup=False,
            )
        lines = [line for line in trial_lines(ctx.config) if line.startswith(f"trial {args.workflow} ")]
    for line in lines:
        out.print(line, markup=False)
    return 0


@contextmanager
def _state(args: argparse.Namespace) -> Iterator[State]:
    """The state file alone (no board, no providers): for commands that only read the record."""
    from sheetbot.config.load import load_config
    from sheetbot.state import State

    config = load_config(args.config)
    if not config.state_exists:
        raise SheetbotError(f"no state file at {config.state_path} yet: run `sheetbot lock` first")
    with State(config.state_target) as state:
        yield state


def cmd_audit(args: argparse.Namespace) -> int:
    from sheetbot.clock import SystemClock
    from sheetbot.morning.audit import audit_rows, export, parse_since

    since = parse_since(args.since, now=SystemClock().now())
    with _state(args) as state:
        rows = audit_rows(state, since=since)
    if args.out:
        export(rows, Path(args.out))
        out.print(f"wrote {len(rows)} audit entries since {since.isoformat(timespec='minutes')} to {args.out}")
    else:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
    return 0


def cmd_feedback(args: argparse.Namespace) -> int:
    from sheetbot.config.load import load_config
    from sheetbot.config.names import require_workflow
    from sheetbot.morning.feedback import describe, feedback

    require_workflow(load_config(args.config), args.workflow)
    with _state(args) as state:
        report = feedback(state, args.workflow, nights=args.nights)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    else:
        out.print(describe(report), markup=False)
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from sheetbot.clock import SystemClock
    from sheetbot.config.load import load_config
    from sheetbot.config.names import require_workflow

    with _state(args) as state:
        require_workflow(load_config(args.config), args.workflow, also=state.paused())
        resumed = state.resume(args.workflow)
        if resumed:
            state.audit("resume", now=SystemClock().now(), detail={"workflow": args.workflow})
    message = "resumed: its rows are locked again from the next cutoff" if resumed else "was not paused"
    out.print(f"{args.workflow} {message}", markup=False)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from sheetbot.cli.show import describe, show
    from sheetbot.config.load import load_config

    with _state(args) as state:
        shown = show(state, load_config(args.config), args.id)
    if args.json:
        print(json.dumps(shown.as_dict(), indent=2, ensure_ascii=False))
    else:
        print(describe(shown))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from sheetbot.cli.demo import run_demo

    return run_demo(Path(args.dir), console=out, force=args.force)


def cmd_schema(args: argparse.Namespace) -> int:
    """The YAML's JSON Schema on stdout, byte for byte the file shipped in the package (a test keeps them so)."""
    from sheetbot.config.schema import schema_text

    sys.stdout.write(schema_text())
    return 0
