"""Where the CLI prints: stdout for results, stderr for errors and the progress bar."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from sheetbot.night.context import Progress as ProgressFn
from sheetbot.night.context import no_progress


class _Out(Console):
    def on_broken_pipe(self) -> None:
        """`sheetbot report | head`: rich would exit 1 on its own; main() handles every command alike."""
        self.quiet = True
        raise BrokenPipeError


#: Tables keep their columns when output goes to a file, a pipe or CI (rich would assume 80 columns).
out = _Out(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def progress_bar(label: str) -> Iterator[ProgressFn]:
    """A progress bar on a terminal; silence when output goes to a file or CI."""
    if not err.is_terminal:
        yield no_progress
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int, what: str) -> None:
            # total 0: not known yet (the board is being read): the bar pulses; `what` names the step.
            bar.update(
                task,
                completed=done,
                total=total or None,
                description=f"{label}: {what}" if what and what not in label else label,
            )

        yield update


def fitted(table: Table, console: Console, *, keep: int = 2) -> list[Table]:
    """``table`` as it is when it fits ``console``'s width, else split into tables side by side no longer:
    each repeats the first ``keep`` columns (night, workflow) and takes as many of the rest as fit.

    Why: `report` is 16 columns (~145 characters); a 100-column terminal would wrap every cell into a
    mess. Splitting keeps every figure and every header as it is, so nothing has to be abbreviated;
    output to a pipe or file is 160 wide (``out``) and keeps the one table."""

    def fits(candidate: Table) -> bool:  # its natural width, not clamped to the console's
        return console.measure(candidate, options=console.options.update_width(10_000)).maximum <= console.width

    if fits(table) or len(table.columns) <= keep + 1:
        return [table]
    cells = [list(column.cells) for column in table.columns]
    parts: list[Table] = []
    rest = list(range(keep, len(table.columns)))
    while rest:
        chosen = [rest.pop(0)]
        while rest and fits(_part(table, cells, [*range(keep), *chosen, rest[0]])):
            chosen.append(rest.pop(0))
        parts.append(_part(table, cells, [*range(keep), *chosen]))
    for number, part in enumerate(parts, 1):
        part.title = f"{table.title} ({number}/{len(parts)})" if table.title else None
    return parts


def _part(table: Table, cells: list[list[RenderableType]], indexes: list[int]) -> Table:
    """A table of some of ``table``'s columns, with their headers, alignment and every row."""
    part = Table(box=table.box, show_lines=table.show_lines, pad_edge=table.pad_edge, title=table.title)
    for index in indexes:
        column = table.columns[index]
        part.add_column(column.header, justify=column.justify, no_wrap=column.no_wrap, overflow=column.overflow)
    for row in range(table.row_count):
        part.add_row(*(cells[index][row] for index in indexes))
    return part
