"""What every phase of the night is given: the configuration and the seams, never a vendor.

The seams to the layers above the night are declared here too (``BatchMode``, ``MorningSteps``, and
``BatchNight``, what the run gives batch mode): the composition root (sheetbot/service/wiring.py) fills
them with sheetbot.batch's and sheetbot.morning's implementations, so the night imports neither.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Protocol

from sheetbot.boards.base import Board, SchemaSpec
from sheetbot.clock import Clock
from sheetbot.config.models import Config
from sheetbot.night.budget import Budget
from sheetbot.night.morning_reports import ActionsReport, DashboardReport
from sheetbot.night.task import Outcome, TaskRunner
from sheetbot.night.windows import NightWindow, night_at
from sheetbot.providers.base import EventHook as EventHook  # the provider seam's, named here for the night
from sheetbot.providers.base import Provider
from sheetbot.providers.batch_seam import BatchProvider
from sheetbot.state import State, Task
from sheetbot.status import Decision, Status

#: Reports progress on long work: (done, total, what).
Progress = Callable[[int, int, str], None]


def no_progress(done: int, total: int, what: str) -> None:
    return None


#: Makes the provider named in the YAML (e.g. "anthropic"); injected so tests control the transport.
ProviderFactory = Callable[[str, EventHook], Provider]


class BatchNight(Protocol):
    """The night's run as batch mode sees it: a public, typed API, and all batch mode may use of the night.

    run.py's night implements it. Batch mode builds each step's request with the ``runner`` (as live
    mode does), holds its worst case (task.worst_case) against the ``budget``, stops at ``out_of_time``
    (the ``deadline``, a stop, a broken state) and settles every row here, counted like a live one."""

    ctx: NightContext
    runner: TaskRunner
    budget: Budget
    #: The run report's notes: what the night did differently from the YAML.
    notes: list[str]
    #: The window end or --until; None when the run has no deadline (by hand, outside the window).
    deadline: datetime | None

    def out_of_time(self) -> bool:
        """Nothing new may start: the deadline passed, a stop came, or the state cannot record a call."""
        ...

    def stopping(self) -> bool:
        """A stop (SIGTERM) or a state that cannot be written: rows not finished stay for the next run."""
        ...

    def settle(self, task: Task, outcome: Outcome) -> None:
        """A batch row's outcome, recorded and counted in the run report."""
        ...

    async def work(self, task: Task) -> None:
        """Run the row live (its server has no Batch API): it resumes after its stored steps."""
        ...


class BatchMode(Protocol):
    """Batch mode (sheetbot.batch), a layer above the night: the run hands it the rows of ``mode: batch``."""

    def preview_notes(self, config: Config, tasks: Iterable[Task], aliases: Mapping[str, str]) -> list[str]:
        """One line per preview workflow for the run report: what its rows would cost live, in batch, cached."""
        ...

    async def run(self, night: BatchNight, tasks: list[Task]) -> None:
        """Every task reaches an outcome (``night.settle``), or runs live (``night.work``)."""
        ...


class MorningSteps(Protocol):
    """What the harvest asks of the morning (sheetbot.morning), in the harvest's order: each approved or
    edited row's action queued with its decision, the Dashboard staged in the harvest's own write and its
    outcome read after it, then the actions delivered (sheetbot/morning/on_approve.py's steps)."""

    def queue_action(self, ctx: NightContext, task: Task) -> bool: ...

    def refresh_dashboard(self, ctx: NightContext, *, stage: bool) -> DashboardReport: ...

    def staged_outcome(self, ctx: NightContext, report: DashboardReport) -> DashboardReport: ...

    def deliver_actions(self, ctx: NightContext) -> ActionsReport: ...


@dataclass
class NightContext:
    config: Config
    board: Board
    state: State
    clock: Clock
    providers: ProviderFactory
    progress: Progress = no_progress
    env: Mapping[str, str] = field(default_factory=dict)
    #: How the night waits between retries; tests pass one that returns at once.
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    #: Makes a provider entry's Batch API client (sheetbot.batch.factory); None: built from config and env.
    batch_providers: Callable[[str], BatchProvider] | None = None
    #: The admin's word (`--adopt-unknown`): take over rows the state does not know (sheetbot/night/repair.py).
    adopt_unknown: bool = False
    #: Batch mode (sheetbot.batch); None: a context built without it, whose batch rows wait (deferred).
    batch_mode: BatchMode | None = None
    #: The harvest's morning steps (sheetbot.morning); None: the harvest records the decisions only.
    morning: MorningSteps | None = None

    def now(self) -> datetime:
        return self.clock.now()

    def night(self) -> NightWindow:
        return night_at(self.clock.now(), self.config.schedule, self.config.tz)

    @cached_property
    def col(self) -> Mapping[str, str]:
        """Logical column name → the header on this board (asked for per row: computed once)."""
        return self.config.columns.logical()

    def schema(self, *, with_template_columns: bool = False) -> SchemaSpec:
        return schema_for(self.config, with_template_columns=with_template_columns)


#: A new board's columns, left to right (logical names): what the reviewer reads and decides on first. The
#: team's other inputs (priority, the columns templates name) follow, then sheetbot's bookkeeping and the
#: structured outputs' fields. The one place this order is made: `init`, the demo and trials all use it; a
#: board that already has columns keeps them where they are (missing ones are appended).
REVIEW_FIRST = ("id", "type", "input", "output", "review", "notes", "edited_output", "checklist", "checks", "reviewer")
BOOKKEEPING = ("status", "night", "error", "cost", "model")
#: Widths in characters (boards that size columns): the output widest, the review beside it on a laptop screen.
WIDTHS = {
    "id": 11,
    "type": 20,
    "input": 40,
    "output": 60,
    "review": 11,
    "notes": 30,
    "edited_output": 40,
    "checklist": 30,
    "checks": 30,
    "reviewer": 14,
    "priority": 9,
    "status": 10,
    "night": 11,
    "error": 40,
    "cost": 9,
    "model": 18,
    "parent": 14,
}


def schema_for(config: Config, *, with_template_columns: bool = False) -> SchemaSpec:
    """sheetbot's columns and the structured outputs' columns, in the reviewer's order (REVIEW_FIRST); with
    ``with_template_columns``, also every column the workflows' templates name (what `init` adds, so `lock`
    does not fail those rows). The `checklist` column only when a workflow has a checklist; the `reviewer` column
    only when ``board.reviewer_column`` asks for it (the harvest reads it wherever it is, and never needs it);
    the `model` column only when a workflow has a `fallback:`."""
    from sheetbot.night.fallback import shows_model
    from sheetbot.night.prompts import template_names

    col = config.columns.logical()
    workflows = config.workflows.values()
    unused = set() if any(wf.checklist for wf in workflows) else {"checklist"}
    if not any(wf.self_check for wf in workflows):
        unused.add("checks")
    if not config.board.reviewer_column:
        unused.add("reviewer")
    if not shows_model(config):  # the `model` column only when a workflow has a `fallback:` (issue 14)
        unused.add("model")
    if not any(wf.on_approve is not None and wf.on_approve.queues for wf in workflows):
        unused.add("parent")  # chained workflows (issue 14) name the row a chained row came from
    placed = {*REVIEW_FIRST, *BOOKKEEPING, "parent"}
    columns = [col[n] for n in REVIEW_FIRST if n not in unused]
    columns += [name for n, name in col.items() if n not in placed and n not in unused]  # priority, and any newer
    if with_template_columns:
        columns += [n for wf in workflows for n in template_names(wf) if not n.startswith("steps.") and n not in col]
    columns += [col[n] for n in BOOKKEEPING if n not in unused]
    columns += [] if "parent" in unused else [col["parent"]]
    columns += [f.name for wf in workflows for f in wf.outputs]
    return SchemaSpec(
        columns=list(dict.fromkeys(columns)),
        review_column=col["review"],
        review_choices=[str(d) for d in Decision],
        status_column=col["status"],
        status_choices=[str(s) for s in Status],
        wide_columns=[col[n] for n in ("input", "output", "notes", "edited_output", "error", "checklist", "checks")],
        type_column=col["type"],
        type_choices=list(config.workflows),
        widths={col[n]: width for n, width in WIDTHS.items()},
    )
