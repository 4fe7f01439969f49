"""The Dashboard's plain table and chart, as every board draws them.

These are the words the morning and the boards share: the morning (sheetbot/morning/dashboard.py)
computes rows and a :class:`ChartSpec` from the state, and each backend draws them its own way.
They live here, below both, so a board never imports the morning that feeds it.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The table's columns, in order. sheetbot/morning/dashboard.py pairs each with a NightMetrics attribute;
#: the backends format by these names (percentages, Airtable's field precisions).
HEADERS: tuple[str, ...] = (
    "night",
    "workflow",
    "locked",
    "done",
    "approved",
    "edited",
    "rework",
    "approval rate",
    "completion",
    "cost per output",
)

#: A table cell: text, a number, or None for "no value" (a rate with nothing decided yet).
Cell = str | int | float | None


@dataclass(frozen=True)
class ChartSpec:
    """A line chart: one series per workflow, one point per night (oldest first); None is a gap."""

    title: str
    nights: tuple[str, ...]
    series: dict[str, tuple[float | None, ...]]
    y_title: str = "approval rate"

    def table(self) -> list[list[Cell]]:
        """The chart's data as a grid (header row, then one row per night): what backends chart from."""
        names = sorted(self.series)
        grid: list[list[Cell]] = [["night", *names]]
        for i, night in enumerate(self.nights):
            grid.append([night, *(self.series[n][i] for n in names)])
        return grid
