"""The command line: parse, call one function, print. Bad input exits 1 with one line, never a traceback.

The parser is here; the commands it calls are in `commands`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from sheetbot import __version__
from sheetbot.cli.commands import (
    cmd_audit,
    cmd_check,
    cmd_demo,
    cmd_feedback,
    cmd_harvest,
    cmd_init,
    cmd_lock,
    cmd_report,
    cmd_resume,
    cmd_run,
    cmd_schema,
    cmd_serve,
    cmd_show,
    cmd_trial,
)
from sheetbot.cli.console import err
from sheetbot.config.load import DEFAULT_CONFIG
from sheetbot.errors import SheetbotError
from sheetbot.safety.secrets import describe_error, scrub


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

    def command(
        name: str, func: Callable[[argparse.Namespace], int], text: str, *, many: bool = False
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text)
        if many:  # serve: many boards in one process (sheetbot/service/many.py)
            p.add_argument(
                "--config",
                action="append",
                help=f"a YAML file or a folder of them; repeat for more boards (default {DEFAULT_CONFIG})",
            )
        else:
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
    command("serve", cmd_serve, "all of the above, on the YAML's schedule; stops cleanly on SIGTERM", many=True)
    trial = command("trial", cmd_trial, "run a workflow now on a sample, on its own sheet, before launch")
    trial.add_argument("workflow", help="the workflow to try")
    trial.add_argument("--sample", type=_positive, default=50, help="how many rows (default 50)")
    trial.add_argument("--seed", type=int, default=None, help="a random sample with this seed (default: the first N)")
    trial.add_argument("--harvest", action="store_true", help="read the review decisions on the trial sheet")
    report = command("report", cmd_report, "nightly metrics, as a table or --json")
    report.add_argument("--json", action="store_true", help="print JSON instead of a table")
    report.add_argument("--nights", type=_positive, default=7, help="how many recent nights (default 7)")
    report.add_argument(
        "--week", nargs="?", const="last", default=None, metavar="YYYY-Www",
        help="the weekly review: service levels against the YAML's weekly targets (default: the last 7 nights)",
    )  # fmt: skip
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
    command(
        "schema",
        cmd_schema,
        "print the YAML's JSON Schema, for editors (shipped as sheetbot/config/sheetbot.schema.json)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    from sheetbot.service.logs import setup_logging

    # Every command logs through the masking filter; a terminal command shows warnings, serve and JSON all.
    quiet = args.command != "serve" and args.log_format == "text"
    logger = logging.getLogger("sheetbot")
    level = logger.level
    handler = setup_logging(fmt=args.log_format, env=os.environ, level=logging.WARNING if quiet else logging.INFO)
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a reader that left (`| head`) is found here, not at exit with a traceback
        logger.info("%s finished with exit code %d", args.command, code, extra={"exit_code": code})
        return code
    except BrokenPipeError:
        return _reader_left()
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


def _reader_left() -> int:
    """`sheetbot audit | head`: the reader took what it wanted and closed the pipe. Not an error to
    report: say nothing, send what is still buffered nowhere (so the flush at exit does not fail
    again) and exit 141, as a command stopped by SIGPIPE does in a shell."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141


if __name__ == "__main__":
    sys.exit(main())
