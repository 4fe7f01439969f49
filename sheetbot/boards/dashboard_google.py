"""The Dashboard tab of a Google Sheet: the metrics table and a line chart through the Sheets API.

Three requests a refresh, whatever the number of nights (the quota is 60 a minute per service
account): one ``spreadsheets.get`` for the tab and its chart, one ``spreadsheets:batchUpdate`` (the
tab when missing, the chart — ``addChart`` the first time, ``updateChartSpec`` afterwards, so the
chart a person moved or resized keeps its place while its data range follows the nights), and one
``values:batchUpdate`` (RAW) of the whole tab, blank cells included, so rows from a longer
table before are cleared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gspread.utils import absolute_range_name, rowcol_to_a1

from sheetbot.boards.dashboard_cells import HEADERS, Cell, ChartSpec

# Vendor JSON: chart specs, batchUpdate requests and cell values are the Sheets API's own JSON (Google's shape).

DASHBOARD_SHEET = "Dashboard"
#: Rows and columns the tab is created with (and grown to): 30 nights of several workflows fit.
ROWS, COLUMNS = 400, 26
META_FIELDS = "sheets(properties(sheetId,title,gridProperties(rowCount,columnCount)),charts(chartId))"


def tab_values(rows: Sequence[Mapping[str, Cell]], chart: ChartSpec, *, height: int, width: int) -> list[list[Any]]:
    """The whole tab as one grid: the table at A1 and the chart's data two columns to its right."""
    grid: list[list[Any]] = [["" for _ in range(width)] for _ in range(height)]
    table: list[list[Any]] = [list(HEADERS), *([row.get(h) for h in HEADERS] for row in rows)]
    for r, line in enumerate(table):
        for c, value in enumerate(line):
            grid[r][c] = "" if value is None else value
    start = chart_column()
    for r, line in enumerate(chart.table()):
        for c, value in enumerate(line):
            grid[r][start + c] = "" if value is None else value
    return grid


def chart_column() -> int:
    """0-based column of the chart's data: one blank column after the table."""
    return len(HEADERS) + 1


def needed(rows: Sequence[Mapping[str, Cell]], chart: ChartSpec) -> tuple[int, int]:
    return max(len(rows) + 1, len(chart.nights) + 1), chart_column() + len(chart.series) + 1


def chart_spec(chart: ChartSpec, sheet_id: int) -> dict[str, Any]:
    """A LINE basicChart: the nights as the domain, one series per workflow, row 1 as their names."""
    start, end = chart_column(), len(chart.nights) + 1

    def source(col: int) -> dict[str, Any]:
        span = {"sheetId": sheet_id, "startRowIndex": 0, "endRowIndex": end}
        return {"sourceRange": {"sources": [{**span, "startColumnIndex": col, "endColumnIndex": col + 1}]}}

    return {
        "title": chart.title,
        "basicChart": {
            "chartType": "LINE",
            "legendPosition": "BOTTOM_LEGEND",
            "headerCount": 1,
            "axis": [
                {"position": "BOTTOM_AXIS", "title": "night"},
                {"position": "LEFT_AXIS", "title": chart.y_title},
            ],
            "domains": [{"domain": source(start)}],
            "series": [{"series": source(start + 1 + i), "targetAxis": "LEFT_AXIS"} for i in range(len(chart.series))],
        },
    }


def structure_requests(
    meta: Mapping[str, Any] | None, chart: ChartSpec, *, free_id: int, height: int, width: int
) -> tuple[int, list[dict[str, Any]], tuple[int, int]]:
    """(sheet id, the batchUpdate requests, the tab's size after them) for the tab and its chart."""
    found = [s for s in (meta or {}).get("sheets", []) if s["properties"]["title"] == DASHBOARD_SHEET]
    requests_: list[dict[str, Any]] = []
    if found:
        props = found[0]["properties"]
        sheet_id = props["sheetId"]
        have = props.get("gridProperties", {})
        rows, cols = have.get("rowCount", 1000), have.get("columnCount", 26)
        for dimension, want, got in (("ROWS", height, rows), ("COLUMNS", width, cols)):
            if want > got:
                requests_.append(
                    {"appendDimension": {"sheetId": sheet_id, "dimension": dimension, "length": want - got}}
                )
        rows, cols = max(rows, height), max(cols, width)
        charts = found[0].get("charts", [])
    else:
        sheet_id, charts = free_id, []
        rows, cols = max(ROWS, height), max(COLUMNS, width)
        grid = {"rowCount": rows, "columnCount": cols, "frozenRowCount": 1}
        requests_.append(
            {"addSheet": {"properties": {"sheetId": sheet_id, "title": DASHBOARD_SHEET, "gridProperties": grid}}}
        )
    if chart.series and chart.nights:
        spec = chart_spec(chart, sheet_id)
        if charts:
            requests_.append({"updateChartSpec": {"chartId": charts[0]["chartId"], "spec": spec}})
        else:
            anchor = {"sheetId": sheet_id, "rowIndex": 1, "columnIndex": chart_column() + len(chart.series) + 2}
            position = {"overlayPosition": {"anchorCell": anchor}}
            requests_.append({"addChart": {"chart": {"spec": spec, "position": position}}})
    return sheet_id, requests_, (rows, cols)


def values_body(grid: Sequence[Sequence[Any]]) -> dict[str, Any]:
    last = rowcol_to_a1(len(grid), len(grid[0]))
    data = [{"range": absolute_range_name(DASHBOARD_SHEET, f"A1:{last}"), "values": [list(r) for r in grid]}]
    return {"valueInputOption": "RAW", "data": data}
