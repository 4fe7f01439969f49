"""The Dashboard tab of a Google Sheet: the metrics table and a line chart through the Sheets API.

The quota is 60 requests a minute per service account, shared by every board on it, so a refresh is
one ``spreadsheets:batchUpdate`` carrying everything: the tab when missing (``addSheet``) or grown
(``appendDimension``), the chart (``addChart`` the first time, ``updateChartSpec`` afterwards, so a
chart a person moved or resized keeps its place while its data range follows the nights), and the
whole tab's values (``updateCells`` over the tab's range: cells the new table does not cover are
cleared, so rows from a longer table before go; values are typed, never parsed, so text stays text).

That one request needs the tab's and the chart's ids and the tab's size. The caller keeps the
:class:`Layout` each drawing returns (the state's meta table) and hands it to the next. Without one
(the first drawing) the request creates the tab with the id :data:`NEW_SHEET_ID`. Google refuses a
request whole (HTTP 400, nothing applied) when its layout went stale (a person deleted the tab or the
chart, or shrank the tab) or the tab it would create is already there (an older sheetbot drew it, or
the state was started afresh): then, and only then, a ``spreadsheets.get`` looks the tab up and a
second batchUpdate draws onto it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from sheetbot.boards.dashboard_cells import HEADERS, Cell, ChartSpec

# Vendor JSON: chart specs, batchUpdate requests and cell values are the Sheets API's own JSON (Google's shape).

DASHBOARD_SHEET = "Dashboard"
#: The id a new Dashboard tab is created with, so its first drawing needs no look-up. Google gives new
#: tabs random ids below 2^31 (the first is 0); should this one be taken, the tab is looked up instead.
NEW_SHEET_ID = 580_617_023
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


@dataclass(frozen=True)
class Layout:
    """Where the tab and its chart are and how big the tab is: what one batchUpdate needs to redraw them."""

    sheet_id: int
    chart_id: int | None
    rows: int
    cols: int

    def dumps(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def loads(cls, text: str | None) -> Layout | None:
        """The layout :meth:`dumps` wrote; None for none, or for anything else (the refresh then asks Google)."""
        try:
            data = json.loads(text or "")
            layout = cls(**data)
        except (ValueError, TypeError):
            return None
        numbers = (layout.sheet_id, layout.rows, layout.cols, 0 if layout.chart_id is None else layout.chart_id)
        return layout if all(type(n) is int and n >= 0 for n in numbers) and layout.rows and layout.cols else None


def layout_of(meta: Mapping[str, Any] | None) -> Layout | None:
    """The Dashboard tab's layout as ``spreadsheets.get`` (:data:`META_FIELDS`) tells it; None: no such tab."""
    found = [s for s in (meta or {}).get("sheets", []) if s["properties"]["title"] == DASHBOARD_SHEET]
    if not found:
        return None
    props = found[0]["properties"]
    have = props.get("gridProperties", {})
    charts = found[0].get("charts", [])
    return Layout(
        sheet_id=props["sheetId"],
        chart_id=charts[0]["chartId"] if charts else None,
        rows=have.get("rowCount", 1000),
        cols=have.get("columnCount", 26),
    )


def draw_requests(
    layout: Layout | None, rows: Sequence[Mapping[str, Cell]], chart: ChartSpec, *, free_id: int
) -> tuple[list[dict[str, Any]], Layout]:
    """The one batchUpdate that draws the dashboard onto ``layout`` (None: a new tab, ``free_id``), and
    the layout after it. A chart added here gets its id from Google's reply: see :func:`after_reply`."""
    height, width = needed(rows, chart)
    requests_: list[dict[str, Any]] = []
    if layout is None:
        layout = Layout(sheet_id=free_id, chart_id=None, rows=max(ROWS, height), cols=max(COLUMNS, width))
        grid = {"rowCount": layout.rows, "columnCount": layout.cols, "frozenRowCount": 1}
        props = {"sheetId": layout.sheet_id, "title": DASHBOARD_SHEET, "gridProperties": grid}
        requests_.append({"addSheet": {"properties": props}})
    for dimension, want, got in (("ROWS", height, layout.rows), ("COLUMNS", width, layout.cols)):
        if want > got:
            grow = {"sheetId": layout.sheet_id, "dimension": dimension, "length": want - got}
            requests_.append({"appendDimension": grow})
    layout = replace(layout, rows=max(layout.rows, height), cols=max(layout.cols, width))
    if chart.series and chart.nights:
        spec = chart_spec(chart, layout.sheet_id)
        if layout.chart_id is not None:
            requests_.append({"updateChartSpec": {"chartId": layout.chart_id, "spec": spec}})
        else:
            anchor = {"sheetId": layout.sheet_id, "rowIndex": 1, "columnIndex": chart_column() + len(chart.series) + 2}
            position = {"overlayPosition": {"anchorCell": anchor}}
            requests_.append({"addChart": {"chart": {"spec": spec, "position": position}}})
    whole = {"sheetId": layout.sheet_id, "startRowIndex": 0, "endRowIndex": layout.rows}
    whole |= {"startColumnIndex": 0, "endColumnIndex": layout.cols}
    cells = [{"values": [_cell(v) for v in line]} for line in tab_values(rows, chart, height=height, width=width)]
    requests_.append({"updateCells": {"range": whole, "rows": cells, "fields": "userEnteredValue"}})
    return requests_, layout


def after_reply(layout: Layout, reply: Mapping[str, Any] | None) -> Layout:
    """``layout`` with the id of the chart the batchUpdate added, if it added one."""
    for answer in (reply or {}).get("replies", []) or []:
        added = (answer or {}).get("addChart", {}).get("chart", {}).get("chartId")
        if isinstance(added, int):
            return replace(layout, chart_id=added)
    return layout


def _cell(value: Any) -> dict[str, Any]:
    """A cell's typed value: text is a ``stringValue`` (never parsed as a formula or a date), a number a
    ``numberValue``; an empty cell (or a number JSON cannot carry) has no value, which with ``fields``
    clears whatever was there."""
    if value is None or value == "" or (isinstance(value, float) and not math.isfinite(value)):
        return {}  # JSON has no NaN or infinity: Google would refuse the whole request
    if isinstance(value, bool):
        return {"userEnteredValue": {"boolValue": value}}
    if isinstance(value, int | float):
        return {"userEnteredValue": {"numberValue": value}}
    return {"userEnteredValue": {"stringValue": str(value)}}
