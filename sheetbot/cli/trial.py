"""Trial runs before launch: a workflow run now on a sample of the queue, reviewed like a night.

A trial is the ordinary lifecycle (lock → run → harvest) pointed elsewhere, so what the trial
measures is exactly what the night will do:

* the board is the workflow's own trial sheet (``"Trial <workflow>"`` in the same workbook, tab or
  base), holding copies of the sampled rows with new ids; the queue itself is never touched;
* the state is the workflow's own SQLite file next to the main one (``sheetbot.cli.trial-<workflow>.db``),
  so trial tasks, costs and decisions never mix with the nightly metrics, budgets or the dashboard;
* the "night" is named ``trial-<date>`` and its window opens now and lasts ``trial.max_hours``;
* caps do not apply (the sample is the cap), and `on_approve` actions never fire for a trial.

Reviewers set `review` on the trial sheet; ``sheetbot trial WORKFLOW --harvest`` reads it, and
``sheetbot report`` compares the latest trial's approval rate with ``trial.launch_bar``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

from sheetbot.boards.base import Board, CellValue
from sheetbot.boards.capabilities import AppendsRows
from sheetbot.boards.factory import open_board
from sheetbot.config.models import Config
from sheetbot.config.names import require_workflow
from sheetbot.errors import SheetbotError
from sheetbot.morning.metrics import night_metrics
from sheetbot.night.context import NightContext
from sheetbot.night.harvest import HarvestReport, harvest
from sheetbot.night.identify import new_id
from sheetbot.night.lock import LockReport, lock
from sheetbot.night.run import RunReport, run
from sheetbot.night.windows import NightWindow
from sheetbot.state import State

#: The column on the trial sheet that names the queue row a trial row was copied from.
SOURCE_COLUMN = "trial_of"
_OWNED = ("id", "status", "night", "output", "review", "notes", "edited_output", "error", "cost", "model")


@dataclass
class TrialContext(NightContext):
    """A NightContext whose night is the trial: named ``label``, open from ``started`` for ``hours``."""

    label: str = ""
    started: datetime | None = None
    hours: float = 4.0
    #: Read by refresh_dashboard: a trial sheet gets no dashboard.
    trial: bool = True

    def night(self) -> NightWindow:
        start = self.started or self.now()
        return NightWindow(night=self.label, cutoff=start, start=start, end=start + timedelta(hours=self.hours))


@dataclass
class TrialReport:
    workflow: str
    label: str
    sheet: str
    copied: int
    eligible: int
    locked: LockReport | None = None
    ran: RunReport | None = None
    notes: list[str] = field(default_factory=list)


def trial_sheet(config: Config, workflow: str) -> str:
    return f"{config.trial.sheet} {workflow}"[:31]  # Excel's limit on a sheet name


def trial_state_path(config: Config, workflow: str) -> Path:
    main = config.state_path
    return main.with_name(f"{main.stem}.trial-{workflow}{main.suffix or '.db'}")


def trial_config(config: Config, workflow: str) -> Config:
    """The config a trial runs under: its sheet and state, no caps, no approval-gated actions."""
    workflows = {
        name: wf.model_copy(update={"nightly_rows": None, "on_approve": None}) for name, wf in config.workflows.items()
    }
    return config.model_copy(
        update={
            "board": config.board.model_copy(update={"sheet": trial_sheet(config, workflow)}),
            "state": str(trial_state_path(config, workflow)),
            "limits": config.limits.model_copy(update={"nightly_rows": 1_000_000}),
            "workflows": workflows,
        }
    )


@contextmanager
def trial_context(
    ctx: NightContext, workflow: str, *, board: Board | None = None, label: str = ""
) -> Iterator[TrialContext]:
    """The trial's context, built from the night's: same clock, providers and environment."""
    _known(ctx.config, workflow)
    config = trial_config(ctx.config, workflow)
    state = State(config.state_path)
    try:
        yield TrialContext(
            config=config,
            board=board if board is not None else open_board(config, env=ctx.env),
            state=state,
            clock=ctx.clock,
            providers=ctx.providers,
            progress=ctx.progress,
            env=ctx.env,
            sleep=ctx.sleep,
            batch_mode=ctx.batch_mode,
            morning=ctx.morning,
            label=label,
            started=ctx.now(),
            hours=ctx.config.trial.max_hours,
        )
    finally:
        state.close()


def _known(config: Config, workflow: str) -> None:
    require_workflow(config, workflow)


def _label(state: State, now: datetime, config: Config) -> str:
    local = now.astimezone(config.tz)
    label = f"trial-{local:%Y-%m-%d}"
    if state.night_has_tasks(label):
        label = f"{label}-{local:%H%M%S}"  # a second trial the same day is a round of its own
    return label


def start_trial(
    ctx: NightContext,
    workflow: str,
    *,
    sample: int = 50,
    seed: int | None = None,
    board: Board | None = None,
) -> TrialReport:
    """Copy a sample of the queue's rows of ``workflow`` to its trial sheet, then lock and run them now.

    ``seed`` None takes the first ``sample`` eligible rows in sheet order; a seed takes a random,
    repeatable sample (kept in sheet order, so reviewers see the queue's order).
    """
    _known(ctx.config, workflow)
    col = ctx.col
    rows = [r for r in ctx.board.read().rows if r.get(col["type"]).strip() == workflow and r.get(col["input"]).strip()]
    if not rows:
        raise SheetbotError(
            f"{ctx.board.describe()} has no rows of type {workflow!r} with an input: add some, then run the trial"
        )
    chosen = list(range(len(rows)))
    if seed is not None:
        chosen = sorted(random.Random(seed).sample(chosen, min(sample, len(rows))))
    picked = [rows[i] for i in chosen[:sample]]
    with trial_context(ctx, workflow, board=board) as tctx:
        tctx.label = _label(tctx.state, ctx.now(), ctx.config)
        sheet = tctx.board
        if not isinstance(sheet, AppendsRows):
            raise SheetbotError(
                f"{sheet.describe()} cannot take a trial's rows: "
                "copy the sample there by hand, then run `sheetbot trial WORKFLOW --harvest` after review"
            )
        spec = tctx.schema(with_template_columns=True)
        tctx.board.ensure_schema(replace(spec, columns=[*spec.columns, SOURCE_COLUMN]))
        taken = set(tctx.state.tasks()) | {r.get(col["id"]).strip() for r in tctx.board.read().rows}
        owned = {col[c] for c in _OWNED}
        copies: list[dict[str, CellValue]] = []
        for row in picked:
            values: dict[str, CellValue] = {k: v for k, v in row.values.items() if k not in owned and v.strip()}
            copies.append({col["id"]: new_id(taken), **values, SOURCE_COLUMN: row.get(col["id"]) or None})
        sheet.append_rows(copies)
        report = TrialReport(workflow, tctx.label, trial_sheet(ctx.config, workflow), len(copies), len(rows))
        report.locked = lock(tctx)
        report.ran = run(tctx)
    return report


def harvest_trial(ctx: NightContext, workflow: str, *, board: Board | None = None) -> HarvestReport:
    """Read the reviewers' decisions on the trial sheet (rework rows run again in the next trial round)."""
    with trial_context(ctx, workflow, board=board) as tctx:
        return harvest(tctx)


def trial_lines(config: Config) -> list[str]:
    """One line per workflow with a trial: its latest round's approval as-is against the launch bar."""
    bar = config.trial.launch_bar
    lines = []
    for workflow in sorted(config.workflows):
        path = trial_state_path(config, workflow)
        if not path.exists():
            continue
        with State(path) as state:
            latest = [m for m in night_metrics(state, nights=1) if m.workflow == workflow]
        if not latest:
            continue
        m = latest[0]
        decided = m.approved + m.edited + m.rework
        head = f"trial {workflow} ({m.night}):"
        if not decided:
            lines.append(f"{head} none of {m.done} outputs reviewed yet; launch bar {bar:.0%}")
            continue
        rate = m.approved / decided
        sign = "≥" if rate >= bar else "<"
        line = f"{head} {m.approved}/{decided} approved as-is = {rate:.0%} {sign} {bar:.0%} launch bar"
        if m.waiting:
            line += f": {m.waiting} still to review"
        else:
            line += ": ready" if rate >= bar else ": not ready"
        if m.failed:
            line += f" ({m.failed} failed)"
        lines.append(line)
    return lines
