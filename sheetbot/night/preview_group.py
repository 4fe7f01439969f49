"""Preview rows' state writes, committed a group at a time instead of twice a row.

A live answer is paid for, so it is committed the moment it arrives (sheetbot/night/keep.py). A preview
answer costs nothing: no model is called, the grader included. Committing each of them on its own made a
10,000-row preview night spend most of its bookkeeping on 20,000 commits, twice the time of loading and
saving the workbook. So preview rows run first, one after the other, each group of GROUP rows inside one
transaction (the rows' calls and outcomes are written together at the group's end, a few executemany
statements: Keeper.flush_group; other per-row writes join the transaction: State.transaction nests).

What a kill costs: the rows of the group not yet committed stay `running` in the state, and the next run
makes their previews again, for nothing; no paid answer is ever in such a group. A state locked by another
program when a group starts: that group runs row by row, through the keeper's usual waiting and journal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from sheetbot.errors import StateUnavailableError
from sheetbot.night.keep import Keeper
from sheetbot.state import Task

#: Rows a commit: large enough that commits are a small share of the work, small enough that a kill
#: redoes only seconds of free previews.
GROUP = 500


async def run_grouped(
    keep: Keeper,
    tasks: Sequence[Task],
    work: Callable[[Task], Awaitable[None]],
    *,
    group: int = GROUP,
    starting: Callable[[Sequence[Task]], None] = lambda chunk: None,
) -> None:
    """``work`` every task in order, GROUP of them a transaction. ``work`` never raises for a state fault (it
    hands it to the keeper); a failed BEGIN runs the group row by row, a failed COMMIT stops the night (the
    keeper's ``fail``: the group's rows stay `running` for the next run). ``starting`` is told each group's
    tasks inside its transaction, before the first row runs, and an empty list when the group ends."""
    for start in range(0, len(tasks), group):
        chunk = tasks[start : start + group]
        began = False
        try:
            with keep.state.transaction():
                began = keep.holding_lock = True
                try:
                    starting(chunk)
                    for task in chunk:
                        await work(task)
                    keep.flush_group()  # the group's calls and outcomes, a few executemany statements
                finally:
                    starting([])
                    keep.holding_lock = False
                    keep.drop_group()  # written above, or rolled back with the group
        except StateUnavailableError as exc:
            if began:
                keep.fail(exc)
                return
            for task in chunk:  # the state is locked by someone else: the keeper waits for it, row by row
                await work(task)
