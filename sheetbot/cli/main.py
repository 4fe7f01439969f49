"""The command line: parse, call one function, print. Bad input exits 1 with one line, never a traceback."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from sheetbot import __version__
from sheetbot.config.load import DEFAULT_CONFIG
from sheetbot.errors import SheetbotError
from sheetbot.night.context import NightContext, no_progress
from sheetbot.night.context import Progress as ProgressFn
from sheetbot.safety.secrets import describe_error, scrub

if TYPE_CHECKING:
    from sheetbot.state import State

#: Tables keep their columns when output goes to a file, a pipe or CI (rich would assume 80 columns).
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def progress_bar(label: str) -> Iterator[ProgressFn]:
    """A progress bar on a terminal; silence when output goes to a file or CI."""
    if not err.is_terminal:
        yield no_progress
        return
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total)

        yield update


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
    from sheetbot.service.process_lock import board_lock
    from sheetbot.service.wiring import open_context

    # One sheetbot at a time per board: a running `serve` or another command is named, or waited for.
    with (
        board_lock(config.state_path, args.command, wait=getattr(args, "wait", False)),
        open_context(args.config, config=config, progress=progress) as ctx,
    ):
        ctx.adopt_unknown = getattr(args, "adopt_unknown", False)  # rows the state does not know: night/repair.py
        yield ctx


def cmd_init(args: argparse.Namespace) -> int:
    with _context(args) as ctx:
        # The columns the workflows' templates name ({{brand}}, {{keywords}}) too: without them `lock`
        # fails every row of those workflows, and `check` says so.
        added = ctx.board.ensure_schema(ctx.schema(with_template_columns=True))
        where = ctx.board.describe()
        from sheetbot.morning.dashboard import refresh_dashboard

        dashboard = refresh_dashboard(ctx, force=True)  # the Dashboard, drawn from what the state holds
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
    with _context(args) as ctx:
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
    with _context(args) as ctx:
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
    from sheetbot.service.serve import serve_forever

    return serve_forever(args.config, wait=args.wait)


def cmd_report(args: argparse.Namespace) -> int:
    from sheetbot.config.load import load_config
    from sheetbot.morning.metrics import night_metrics
    from sheetbot.morning.summary import metrics_table, trend_table
    from sheetbot.state import State

    config = load_config(args.config)
    metrics = []
    if config.state_path.exists():  # a fresh install has no nights: that is not an error
        with State(config.state_path) as state:
            metrics = night_metrics(state, nights=args.nights, prices=config.prices)
    if args.json:
        print(json.dumps([m.as_dict() for m in metrics], indent=2))
    elif not metrics:
        out.print("no nights recorded yet: run `sheetbot lock` and `sheetbot run` first", markup=False)
    else:
        out.print(metrics_table(metrics))
        if len({m.night for m in metrics}) > 1:
            out.print(trend_table(metrics))
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
    if not config.state_path.exists():
        raise SheetbotError(f"no state file at {config.state_path} yet: run `sheetbot lock` first")
    with State(config.state_path) as state:
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
    from sheetbot.morning.feedback import describe, feedback

    with _state(args) as state:
        report = feedback(state, args.workflow, nights=args.nights)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    else:
        out.print(describe(report), markup=False)
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from sheetbot.clock import SystemClock

    with _state(args) as state:
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


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line like every other error (and still exits 2)."""

    def error(self, message: str) -> NoReturn:
        err.print(f"{self.prog}: error: {message} (see `{self.prog} --help`)", markup=False)
        raise SystemExit(2)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be 1 or more")
    return value


def _one_line(text: str) -> str:
    return " ".join(text.split())


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sheetbot",
        description="Overnight LLM work with a spreadsheet as the queue and the review board.",
    )
    parser.add_argument("--version", action="version", version=f"sheetbot {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for unexpected errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Callable[[argparse.Namespace], int], text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--config", default=str(DEFAULT_CONFIG), help=f"the YAML file (default {DEFAULT_CONFIG})")
        p.add_argument("--wait", action="store_true", help="if another sheetbot works this board, wait for it")
        p.add_argument("--log-format", choices=("text", "json"), default="text", help="log lines as text or JSON")
        p.set_defaults(func=func)
        return p

    demo = command("demo", cmd_demo, "a sample workbook and a whole night in preview mode, offline")
    demo.add_argument("--dir", default="sheetbot-demo", help="folder for the demo (default ./sheetbot-demo)")
    demo.add_argument("--force", action="store_true", help="start over if the folder already has a demo")
    command("init", cmd_init, "create or repair the board's columns, dropdowns and header")
    command("check", cmd_check, "validate the YAML, the board and the credentials")
    lock = command("lock", cmd_lock, "the cutoff, now: lock the rows that run tonight")
    run = command("run", cmd_run, "the night window, now (stops at the window end, or --until)")
    run.add_argument("--until", help="stop at this time (ISO, with timezone), e.g. 2026-11-24T05:00+01:00")
    harvest = command("harvest", cmd_harvest, "read the morning's review decisions")
    for phase in (lock, run, harvest):
        phase.add_argument(
            "--adopt-unknown",
            action="store_true",
            help="take over board rows in sheetbot statuses that the state file does not know, as the board "
            "shows them (decisions kept; locked rows go back to the queue)",
        )
    command("serve", cmd_serve, "all of the above, on the YAML's schedule; stops cleanly on SIGTERM")
    trial = command("trial", cmd_trial, "run a workflow now on a sample, on its own sheet, before launch")
    trial.add_argument("workflow", help="the workflow to try")
    trial.add_argument("--sample", type=_positive, default=50, help="how many rows (default 50)")
    trial.add_argument("--seed", type=int, default=None, help="a random sample with this seed (default: the first N)")
    trial.add_argument("--harvest", action="store_true", help="read the review decisions on the trial sheet")
    report = command("report", cmd_report, "nightly metrics, as a table or --json")
    report.add_argument("--json", action="store_true", help="print JSON instead of a table")
    report.add_argument("--nights", type=_positive, default=7, help="how many recent nights (default 7)")
    audit = command("audit", cmd_audit, "export the audit log, e-mail addresses and phone numbers masked")
    audit.add_argument("--since", default="7d", help="e.g. 7d, 12h or 2026-11-01 (default 7d)")
    audit.add_argument("--out", help="a .csv or .jsonl file (default: JSON lines on stdout)")
    fb = command("feedback", cmd_feedback, "a workflow's most frequent rework notes and typical edits")
    fb.add_argument("workflow")
    fb.add_argument("--nights", type=_positive, default=14, help="how many recent nights (default 14)")
    fb.add_argument("--json", action="store_true", help="print JSON instead of text")
    show = command("show", cmd_show, "a row's whole stored output (every step or field), status and error")
    show.add_argument("id", help="the row's id, from the board's id column")
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    resume = command("resume", cmd_resume, "lift an escalation's pause: the workflow's rows are locked again")
    resume.add_argument("workflow")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import os

    from sheetbot.service.logs import setup_logging

    # Every command logs through the masking filter; a terminal command shows warnings, serve and JSON all.
    quiet = args.command != "serve" and args.log_format == "text"
    logger = logging.getLogger("sheetbot")
    level = logger.level
    handler = setup_logging(fmt=args.log_format, env=os.environ, level=logging.WARNING if quiet else logging.INFO)
    try:
        code = int(args.func(args))
        logger.info("%s finished with exit code %d", args.command, code, extra={"exit_code": code})
        return code
    except SheetbotError as exc:
        message = _one_line(scrub(str(exc)))
        if args.log_format == "json":  # a log collector sees the failure too, not only the terminal
            logger.error("%s failed: %s", args.command, message, extra={"exit_code": 1})
        err.print(f"sheetbot: error: {message}", markup=False)
        return 1
    except OSError as exc:  # a folder that cannot be written, a full disk: the user's to fix, not a bug
        where = f": {exc.filename}" if exc.filename else ""
        err.print(f"sheetbot: error: {exc.strerror or exc}{where}", markup=False)
        return 1
    except KeyboardInterrupt:
        err.print(
            "sheetbot: interrupted; finished outputs are stored and will be written on the next run",
            markup=False,
        )
        return 130
    except Exception as exc:  # a bug, not bad input: one line, the traceback only on request
        if args.debug:
            raise
        err.print(
            f"sheetbot: unexpected error: {describe_error(exc)} (run with --debug for details)",
            markup=False,
        )
        return 2
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


if __name__ == "__main__":
    sys.exit(main())
