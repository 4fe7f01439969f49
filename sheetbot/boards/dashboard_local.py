"""The workbook's `Dashboard` worksheet: the metrics table and an openpyxl line chart.

The sheet is sheetbot's alone and is rebuilt whole at every refresh (removed and created again at
the same position), chart included. openpyxl 3.1 keeps simple charts through a load and save, but
older releases and some Excel-made charts do not survive; rebuilding never depends on either.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from openpyxl import Workbook
from openpyxl.chart import LineChart, Reference
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from sheetbot.boards.dashboard_cells import HEADERS, Cell, ChartSpec

DASHBOARD_SHEET = "Dashboard"
_PERCENT = {"approval rate", "completion"}


def draw(workbook: Workbook, rows: Sequence[Mapping[str, Cell]], chart: ChartSpec, *, sheet: str) -> None:
    """Replace the dashboard worksheet: the table at A1, the chart's data and the chart to its right."""
    index = len(workbook.sheetnames)
    if sheet in workbook.sheetnames:
        index = workbook.sheetnames.index(sheet)
        workbook.remove(workbook[sheet])
    ws = workbook.create_sheet(sheet, index)
    _table(ws, [list(HEADERS), *([row.get(h) for h in HEADERS] for row in rows)], first_col=1)
    for col, header in enumerate(HEADERS, start=1):
        ws.column_dimensions[get_column_letter(col)].width = max(12, len(header) + 2)
        if header in _PERCENT:
            for r in range(2, len(rows) + 2):
                ws.cell(row=r, column=col).number_format = "0%"
        elif header == "cost per output":
            for r in range(2, len(rows) + 2):
                ws.cell(row=r, column=col).number_format = "$0.0000"
    data_col = len(HEADERS) + 2
    grid = chart.table()
    _table(ws, grid, first_col=data_col)
    if len(grid) > 1 and len(grid[0]) > 1:
        ws.add_chart(_line_chart(ws, chart, grid, data_col), f"{get_column_letter(data_col + len(grid[0]) + 1)}2")
    ws.freeze_panes = "A2"


def _table(ws: Worksheet, grid: Sequence[Sequence[Cell]], *, first_col: int) -> None:
    for r, line in enumerate(grid, start=1):
        for c, value in enumerate(line, start=first_col):
            cell = ws.cell(row=r, column=c, value=value)
            if isinstance(value, str):
                cell.data_type = "s"  # a workflow or night name is text, never a formula
            if r == 1:
                cell.font = Font(bold=True)


def _line_chart(ws: Worksheet, spec: ChartSpec, grid: Sequence[Sequence[Cell]], data_col: int) -> LineChart:
    chart = LineChart()
    chart.title = spec.title
    chart.y_axis.title = spec.y_title
    chart.x_axis.title = "night"
    chart.y_axis.scaling.min = 0
    chart.y_axis.scaling.max = 1
    chart.y_axis.number_format = "0%"
    chart.height, chart.width = 8, 16
    last_row = len(grid)
    data = Reference(ws, min_col=data_col + 1, max_col=data_col + len(grid[0]) - 1, min_row=1, max_row=last_row)
    chart.add_data(data, titles_from_data=True)
    chart.set_categories(Reference(ws, min_col=data_col, min_row=2, max_row=last_row))
    return chart
